"""Process heartbeats: the last sign of life of beat and of each worker (the ``Heartbeat`` model,
recording it, and the worker's consumer step that records it). Below every domain app: it imports
none of them, so beat (``crontask.scheduler``) and the worker (``crontask.celery``) record into it and
``monitoring`` reads it."""
