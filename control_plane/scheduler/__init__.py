"""Periodic control-plane housekeeping: Celery worker + beat (Redis broker, or an embedded one)."""
