"""The Celery application. Worker: ``celery -A crontask worker``; beat: ``celery -A crontask beat``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")

app = Celery("crontask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
