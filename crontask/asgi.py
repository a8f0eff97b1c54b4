from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from crontask.bootstrap import require_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")

application = get_asgi_application()
# Without a secret key, refuse to start rather than fail every sign-in later.
require_secret_key()
