"""Grading: plans, running checks for learners, recording attempts, reports and gradebooks."""
