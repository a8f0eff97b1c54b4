"""Health of the parts (database, broker, beat, workers) from their heartbeats: ``/api/health/``, the
admin dashboard and ``manage.py healthcheck``. Above ``scheduling``: it reads ``heartbeats`` and the
runs' selectors, and nothing below imports it."""
