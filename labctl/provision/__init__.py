"""Pure rendering of what each learner gets: tenancy guard-rails and stacks."""
