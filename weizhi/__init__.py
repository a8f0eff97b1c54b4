"""The Weizhi Crontask service's paths (``/jobs``, ``/health``, ...) for its existing clients: a
thin layer over jobs and runs, above both."""
