from __future__ import annotations

import socket
from collections.abc import Iterator
from email.message import Message as EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from tests.alerts.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


class Inbox(Message):
    """What the local SMTP server received, as email.message.Message objects."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[EmailMessage] = []

    def handle_message(self, message: EmailMessage) -> None:
        self.messages.append(message)


@pytest.fixture
def smtp(settings) -> Iterator[Inbox]:
    """A real SMTP server on a free local port, and the settings pointing at it."""
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's controller connects to it to start)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def eager(settings) -> Iterator[None]:
    """Celery tasks run in this process, retries included (their countdowns are not waited)."""
    from crontask.celery import app

    settings.CRONTASK_ALERT_RETRY_BASE_SECONDS = 0
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True  # not propagating: an eager retry is raised, not re-run, when it does
    try:
        yield
    finally:
        app.conf.task_always_eager = before
