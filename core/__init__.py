"""Shared plumbing, below every app: settings helpers, DRF classes, logging, middleware, admin helpers,
the Celery broker transports."""
