from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from crontask.bootstrap import require_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")

application = get_wsgi_application()

from jobs.validators import compile_url_pattern  # noqa: E402  (after setup: it reads the models)

compile_url_pattern()  # not in the first requests, nor once by each thread
# Without a secret key, refuse to start rather than fail every sign-in later.
require_secret_key()
