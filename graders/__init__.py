"""Reusable outcome checks: a check is a function of (context, params) -> result."""
