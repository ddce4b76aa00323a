"""Serving benchmark (bench/serving.py): model project, peers, load generator, our stack, report."""
