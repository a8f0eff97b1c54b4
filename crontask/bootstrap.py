"""First-start chores: the files the embedded defaults keep under ``var/``, and the admin account.

Importing the settings writes nothing (they only read ``var/secret_key`` if it is there).
``prepare_var_dir`` makes what they point at; ``manage.py init_var`` and ``manage.py runall``
(``bin/run``) run it before anything that needs those files starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

#: The filesystem broker's folders, as named in its transport options (crontask/settings.py).
BROKER_FOLDERS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


def prepare_var_dir() -> list[Path]:
    """Create what the embedded defaults need on disk; return what was created (nothing, once done).

    - ``CRONTASK_VAR_DIR`` (``var/``), where the default SQLite database lives;
    - the filesystem broker's folders, when it is the broker;
    - ``STATIC_ROOT``, which collectstatic fills and whitenoise serves;
    - ``var/secret_key``, unless ``SECRET_KEY`` is set: 50 random characters, readable by the
      owner only, generated once and kept, so that web, worker and beat of one install share it.

    Safe to run again and from several processes at once: existing files are left alone.
    """
    dirs = [Path(settings.VAR_DIR), Path(settings.STATIC_ROOT)]
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        dirs += [Path(options[name]) for name in BROKER_FOLDERS if name in options]
    created = []
    for path in dirs:
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            created.append(path)
    key_file = Path(settings.SECRET_KEY_FILE)
    if not os.environ.get("SECRET_KEY") and _write_secret_key(key_file):
        created.append(key_file)
    return created


def _write_secret_key(path: Path) -> bool:
    """Write a new key to ``path`` unless it exists; whether this call wrote it.

    Written to a private temporary file first (mode 0600) and linked into place, which fails if
    the file exists: a process never reads a half-written key, and two inits never both write.
    """
    if path.exists():
        return False
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def require_secret_key() -> None:
    """Stop a web process at its start, not at its first sign-in, when it has no secret key."""
    try:
        settings.SECRET_KEY  # noqa: B018 - Django raises ImproperlyConfigured when it is empty
    except ImproperlyConfigured:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set and {settings.SECRET_KEY_FILE} does not exist: set SECRET_KEY, "
            "or run `python manage.py init_var` to generate the key (bin/run does)."
        ) from None


def check_var_dir(app_configs: Sequence[AppConfig] | None = None, **kwargs: object) -> list[checks.CheckMessage]:
    """A warning when the embedded defaults point into a ``var/`` that was never made (the first
    command on a fresh clone, before ``bin/run``), instead of SQLite's "unable to open database file"."""
    var_dir = Path(settings.VAR_DIR)
    database = settings.DATABASES["default"]
    in_use = settings.CELERY_BROKER_URL.startswith("filesystem://") or (
        database["ENGINE"] == "django.db.backends.sqlite3" and Path(database["NAME"]).parent == var_dir
    )
    if not in_use or var_dir.is_dir():
        return []
    return [
        checks.Warning(
            f"{var_dir} does not exist; the embedded database and broker keep their files there.",
            hint="Run `python manage.py init_var` (bin/run does), or set DATABASE_URL and CELERY_BROKER_URL.",
            id="crontask.W001",
        )
    ]


def ensure_admin_user(*, username: str = "admin", password: str = "") -> str | None:
    """Create a superuser when there is none. Returns the generated password, if one was made.

    An existing superuser is left alone, so a password set by the operator is never reset.
    """
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    generated = not password
    password = password or secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=username, email="", password=password)
    return password if generated else None
