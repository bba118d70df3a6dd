"""Lab sessions: one learner doing one lab — gates, setup, checks run by the controller, results."""
