"""Cohorts as instructors run them: build, validate, apply, wait, report, delete
(:mod:`.operations`), and learners' short-lived kubeconfigs (:mod:`.credentials`)."""
