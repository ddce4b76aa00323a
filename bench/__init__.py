"""Benchmarks: scripts that print figures (`make bench`), not pass/fail tests."""
