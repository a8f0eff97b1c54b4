"""Crontask settings, read from the environment (every variable: docs/contract.md, "Settings").

With nothing set, everything lives under ``var/``: a SQLite database in WAL mode and a
filesystem Celery broker, so web, worker and beat run on one machine with nothing to install.
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis/RabbitMQ.

Importing this module writes nothing: the directories of the embedded defaults and the
generated secret key are made by ``manage.py init_var`` (``crontask.bootstrap.prepare_var_dir``),
which ``bin/run`` (``manage.py runall``) runs before it starts web, worker and beat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.env import envbool, envemail, envhosts, envint, envlist, envrate, envstr
from core.multiprocess import metrics_dir

BASE_DIR = Path(__file__).resolve().parent.parent
# Where the embedded defaults keep their files; tests point it at a temporary directory.
VAR_DIR = Path(envstr("CRONTASK_VAR_DIR", str(BASE_DIR / "var")))
# Without SECRET_KEY, the key ``manage.py init_var`` generated once for this install, so that web,
# worker and beat share it and sessions survive restarts.
SECRET_KEY_FILE = VAR_DIR / "secret_key"


def _secret_key() -> str:
    """SECRET_KEY, else the install's generated key, else empty.

    Empty (neither is there: ``init_var`` has not run) is safe: Django refuses to sign anything
    with it, and the web entry points (``crontask.wsgi``, ``crontask.asgi``) refuse to start,
    saying what to do. Worker, beat and the other commands need no key.
    """
    key = envstr("SECRET_KEY", "")
    if key:
        return key
    try:
        return SECRET_KEY_FILE.read_text().strip()
    except FileNotFoundError:
        return ""


SECRET_KEY = _secret_key()
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# Production behind HTTPS (a proxy that sets X-Forwarded-Proto): redirects, secure cookies, HSTS.
CRONTASK_HTTPS = envbool("CRONTASK_HTTPS", False)
if CRONTASK_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^api/health/$"]  # container health checks speak plain HTTP
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "crontask.apps.CrontaskConfig",
    "heartbeats.apps.HeartbeatsConfig",
    "audit.apps.AuditConfig",
    "jobs.apps.JobsConfig",
    "calendars.apps.CalendarsConfig",
    "runs.apps.RunsConfig",
    "monitoring.apps.MonitoringConfig",
    "alerts.apps.AlertsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions (the admin's language switch is kept in a cookie, read with Accept-Language)
    # and before CommonMiddleware, as Django asks: every page and API error in the request's language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "monitoring.middleware.DisplayTimezoneMiddleware",  # the admin in the staff user's chosen time zone
    "core.origin.OriginMiddleware",  # who, through what, from where and why: read by versions and the audit trail
    "audit.middleware.AdminRefusedWriteMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "crontask.urls"
WSGI_APPLICATION = "crontask.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
_SQLITE_OPTIONS = {
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at the start
    # of a transaction so two processes never deadlock upgrading a read lock; the timeout
    # makes a writer wait for the lock instead of failing with "database is locked".
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}

DATABASE_URL = envstr("DATABASE_URL", "")
# PostgreSQL plans a statement each time it gets its text: for a job's create through the API,
# parsing and planning were 45 % of the database's CPU, and the database shares the host's cores.
# With server-side binding psycopg sends the values apart from the statement, and a statement a
# connection has sent 5 times is prepared there, then only executed (Django leaves both off by
# default). A PgBouncer in transaction mode must carry prepared statements between its server
# connections (1.22 or later, with max_prepared_statements above 0): else set
# DATABASE_PREPARED_STATEMENTS=false. core.prepared_statements: what a migration does to them.
DATABASE_PREPARED_STATEMENTS = envbool("DATABASE_PREPARED_STATEMENTS", True)
_PREPARED_STATEMENTS = {"server_side_binding": True, "prepare_threshold": 5} if DATABASE_PREPARED_STATEMENTS else {}
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "crontask.sqlite3")}
if _db["ENGINE"] == "django.db.backends.postgresql":
    # A database host that does not answer must fail a connection attempt, not hang it: every
    # process retries, and one stuck on a dead host would never see the database return.
    _db["OPTIONS"] = {"connect_timeout": 5, **_PREPARED_STATEMENTS, **_db.get("OPTIONS", {})}
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {**_SQLITE_OPTIONS, **_db.get("OPTIONS", {})}
    _db["CONN_MAX_AGE"] = 0
    # A file, not Django's in-memory default, so processes the tests fork (python jobs) see it.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DATABASES = {"default": _db}
# An index's included columns (runs' run_job_recent_at_idx includes started_at, for PostgreSQL's
# index-only scans) are left out on SQLite, which has none: the index is still there, by its key.
SILENCED_SYSTEM_CHECKS = ["models.W040"] if _db["ENGINE"] == "django.db.backends.sqlite3" else []

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The language of a request without a choice of its own (no language cookie from the admin's
# switch, no Accept-Language we speak). Must be one of LANGUAGES (checked at start).
LANGUAGE_CODE = envstr("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# One top-level catalogue rather than one per app: the apps share many words (job, run, schedule)
# that should read the same everywhere, and a translator works in one file per domain.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# The admin's one time format, with seconds and the zone: "2026-12-03 05:25:10 UTC" (core.times).
FORMAT_MODULE_PATH = ["crontask.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # whitenoise serves the collected files, compressed; no CDN, no separate web server needed
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "admin:login"

# --- Crontask -----------------------------------------------------------------------------
CRONTASK_DEFAULT_TIMEOUT = envint("CRONTASK_DEFAULT_TIMEOUT", 10, minimum=1)
CRONTASK_ALLOW_SHELL = envbool("CRONTASK_ALLOW_SHELL", False)
CRONTASK_SCRIPTS_DIR = Path(envstr("CRONTASK_SCRIPTS_DIR", str(BASE_DIR / "scripts")))
CRONTASK_RUN_RETENTION_DAYS = envint("CRONTASK_RUN_RETENTION_DAYS", 30, minimum=1)
# How long the audit trail is kept: prune_audit (run it daily) removes entries older than this.
CRONTASK_AUDIT_RETENTION_DAYS = envint("CRONTASK_AUDIT_RETENTION_DAYS", 365, minimum=1)
# How long the versions of a deleted job are kept (jobs.versions): until then it can be restored.
CRONTASK_VERSION_RETENTION_DAYS = envint("CRONTASK_VERSION_RETENTION_DAYS", 90, minimum=1)
CRONTASK_MAX_OUTPUT_BYTES = envint("CRONTASK_MAX_OUTPUT_BYTES", 65536, minimum=1024)
CRONTASK_ALLOW_ANONYMOUS_API = envbool("CRONTASK_ALLOW_ANONYMOUS_API", False)
CRONTASK_HANDLER_PACKAGES = envlist("CRONTASK_HANDLER_PACKAGES", [])
# Egress policy of HTTP jobs (jobs.egress): CIDRs and host names no job may reach, on top of the
# built-in list (link-local, cloud metadata services), which always applies; and, when set, the
# only ones a job may reach. Loopback and private ranges are allowed unless denied here.
CRONTASK_EGRESS_DENY = envhosts("CRONTASK_EGRESS_DENY")
CRONTASK_EGRESS_ALLOW = envhosts("CRONTASK_EGRESS_ALLOW")
# Extra names (comma-separated, case-insensitive substrings) of headers, handler kwargs and URL or
# body parameters whose values are secrets, on top of jobs.secrets.SECRET_NAMES: masked when shown.
CRONTASK_SECRET_NAMES = [name.lower() for name in envlist("CRONTASK_SECRET_NAMES", [])]
# A run still "running" this long after its timeout lost its worker: the reaper marks it lost.
CRONTASK_LOST_GRACE_SECONDS = envint("CRONTASK_LOST_GRACE_SECONDS", 60, minimum=1)
# A cancelled python or shell run's process group gets SIGTERM, then SIGKILL this many seconds later.
CRONTASK_CANCEL_GRACE_SECONDS = envint("CRONTASK_CANCEL_GRACE_SECONDS", 5, minimum=0, maximum=600)
CRONTASK_REAPER_INTERVAL = envint("CRONTASK_REAPER_INTERVAL", 30, minimum=1)
CRONTASK_QUEUED_EXPIRY_SECONDS = envint("CRONTASK_QUEUED_EXPIRY_SECONDS", 86400, minimum=60)
# How often the scheduler looks at the job table at the longest; it wakes sooner when a job
# is due sooner. Bounds how long a change made by another process takes to be seen.
CRONTASK_SCHEDULER_MAX_SLEEP = 0.5
# Beat re-checks every job's next fire once per this many seconds (in small steps), so a change
# made around the services (queryset.update(), raw SQL) is picked up within it.
CRONTASK_RECONCILE_SECONDS = envint("CRONTASK_RECONCILE_SECONDS", 300, minimum=10)
# HTTP jobs due at the same time go to the workers this many to a message, and a worker makes
# their calls at once, a thread each; 1 sends each fire on its own.
CRONTASK_FIRE_BATCH_SIZE = envint("CRONTASK_FIRE_BATCH_SIZE", 20, minimum=1, maximum=100)
# Beat sends a fire this many milliseconds before its time, and the worker that takes it claims
# the run at once and makes the call (or runs the job) at the fire's time: the message's trip and
# the claim are paid before the fire is due, not after. 0 sends each fire when it is due.
CRONTASK_FIRE_LEAD_MS = envint("CRONTASK_FIRE_LEAD_MS", 250, minimum=0, maximum=1000)

# --- Metrics ------------------------------------------------------------------------------
# GET /metrics (monitoring.metrics): with a token, only a request that sends it as a bearer token
# is answered; without one, anyone who reaches web may read the metrics.
CRONTASK_METRICS_TOKEN = envstr("CRONTASK_METRICS_TOKEN", "")
# Runs counted per job too (a `job` label on crontask_runs_total): one series per job and status.
CRONTASK_METRICS_PER_JOB = envbool("CRONTASK_METRICS_PER_JOB", False)
# Where each process writes its metrics (prometheus_client's multiprocess mode, core.metrics):
# PROMETHEUS_MULTIPROC_DIR, else var/metrics/. The processes that share it add up in /metrics.
PROMETHEUS_MULTIPROC_DIR = metrics_dir(VAR_DIR)

# --- Alerts -------------------------------------------------------------------------------
# Where the links in notifications point: the address users open the admin at.
CRONTASK_BASE_URL = envstr("CRONTASK_BASE_URL", "http://127.0.0.1:8000")
# Seconds a channel's receiver (a webhook, a robot, the SMTP server) has to answer.
CRONTASK_ALERT_TIMEOUT = envint("CRONTASK_ALERT_TIMEOUT", 10, minimum=1, maximum=120)
# A notification is tried this many times, the n-th retry after base * 2^(n-1) seconds
# (30 s: 30, 60, 120, 240, about 7.5 minutes in all), then recorded as failed.
CRONTASK_ALERT_MAX_ATTEMPTS = envint("CRONTASK_ALERT_MAX_ATTEMPTS", 5, minimum=1, maximum=20)
CRONTASK_ALERT_RETRY_BASE_SECONDS = envint("CRONTASK_ALERT_RETRY_BASE_SECONDS", 30, minimum=0, maximum=3600)
# How often no_success rules are checked and reminders sent (alerts.sweep), by any worker or beat.
CRONTASK_ALERT_SWEEP_SECONDS = envint("CRONTASK_ALERT_SWEEP_SECONDS", 15, minimum=1, maximum=3600)
# Email channels: the SMTP server, from EMAIL_URL (smtp://, smtp+tls://, smtp+ssl://user:password@host:port)
# or from the separate EMAIL_* variables (Django's names).
_email = envemail("EMAIL_URL")
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = str(_email.get("EMAIL_HOST") or envstr("EMAIL_HOST", "localhost"))
EMAIL_PORT = int(str(_email.get("EMAIL_PORT") or envint("EMAIL_PORT", 25, minimum=1, maximum=65535)))
EMAIL_HOST_USER = str(_email["EMAIL_HOST_USER"] if _email else envstr("EMAIL_HOST_USER", ""))
EMAIL_HOST_PASSWORD = str(_email["EMAIL_HOST_PASSWORD"] if _email else envstr("EMAIL_HOST_PASSWORD", ""))
EMAIL_USE_TLS = bool(_email["EMAIL_USE_TLS"]) if _email else envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = bool(_email["EMAIL_USE_SSL"]) if _email else envbool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one of them")
EMAIL_TIMEOUT = CRONTASK_ALERT_TIMEOUT
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "crontask@localhost")

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"  # its folders are made by init_var, like var/ itself
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {  # kombu's transport options: values of any kind
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Redis re-delivers an unacknowledged message after this long. It exceeds the longest
        # job timeout (24 h), so a slow run is not delivered again while it is going (a second
        # delivery would be refused by the run claim anyway, but would cost a message).
        "visibility_timeout": envint("CRONTASK_VISIBILITY_TIMEOUT", 25 * 3600, minimum=60),
    }
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        # A Redis that stops answering (a network partition, a host gone) fails a connection
        # attempt or a command within seconds instead of hanging beat or a request. (RabbitMQ:
        # the connection timeout and AMQP heartbeats do this.)
        CELERY_BROKER_TRANSPORT_OPTIONS |= {"socket_connect_timeout": 3, "socket_timeout": 10, "socket_keepalive": True}
CELERY_TASK_DEFAULT_QUEUE = envstr("CRONTASK_QUEUE", "crontask")
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_RESULT_EXPIRES = None  # no result backend, so no backend_cleanup task
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Processes per worker container (default: one per CPU).
CELERY_WORKER_CONCURRENCY = envint("CRONTASK_WORKER_CONCURRENCY", 0, minimum=0) or None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes every database connection around every task unless this is set;
# crontask/celery.py checks them the way Django does between requests instead (CONN_MAX_AGE).
CELERY_DB_REUSE_MAX = 2**62
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers wait for a broker outage to end, however long it lasts (Celery's default gives up after
# 100 attempts and stops the worker); crontask.celery.Consumer retries every 1 to 5 s.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CONSUMER = "crontask.celery:Consumer"
CELERY_BEAT_SCHEDULER = "crontask.scheduler:CrontaskScheduler"
# Installed into django-celery-beat's table by the scheduler at start (not a job: housekeeping).
CELERY_BEAT_SCHEDULE = {
    "crontask-reap-lost-runs": {
        "task": "runs.tasks.reap_lost_runs",
        "schedule": float(CRONTASK_REAPER_INTERVAL),
        "options": {"expires": float(CRONTASK_REAPER_INTERVAL)},
    },
}
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- REST framework -----------------------------------------------------------------------
# Rate limits of the API, as DRF rates ("100/minute", "1000/hour"); empty (the default) is no limit.
# Counted in the default cache: per web process unless CRONTASK_CACHE_URL names a shared one.
CRONTASK_API_THROTTLE_USER = envrate("CRONTASK_API_THROTTLE_USER")
CRONTASK_API_THROTTLE_ANON = envrate("CRONTASK_API_THROTTLE_ANON")
# Proxies in front of web that append the client's address to X-Forwarded-For (one behind HTTPS).
CRONTASK_NUM_PROXIES = envint("CRONTASK_NUM_PROXIES", 1 if CRONTASK_HTTPS else 0, minimum=0)
# The cache (only the API rate limits use it): process memory, or a Redis shared by web processes.
CRONTASK_CACHE_URL = envstr("CRONTASK_CACHE_URL", "")
if CRONTASK_CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CRONTASK_CACHE_URL}}
elif CRONTASK_CACHE_URL:
    raise ImproperlyConfigured(f"CRONTASK_CACHE_URL must be a redis:// URL or empty, not {CRONTASK_CACHE_URL!r}")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "core.authentication.TokenAuthentication",  # DRF's, its query built once a process
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.ApiPermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "core.search.BoundedSearchFilter",  # at most 10 terms of 100 characters
        "rest_framework.filters.OrderingFilter",
    ],
    # JSON in; the browsable API still posts raw JSON.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # core.exceptions.api_exception_handler, with refused writes (403) recorded in the audit trail.
    "EXCEPTION_HANDLER": "audit.api.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    # Each reads its rate from CRONTASK_API_THROTTLE_USER / _ANON and is off while that is empty.
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.UserThrottle", "core.throttling.AnonThrottle"],
    # Anonymous requests are counted per client address: the last of X-Forwarded-For's addresses that
    # this many proxies added (0: the connection's address). Never the whole header, which a client writes.
    "NUM_PROXIES": CRONTASK_NUM_PROXIES,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Crontask API",
    "DESCRIPTION": "Jobs, their runs, handlers and health. Errors are JSON keyed by field.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobTriggerEnum": "jobs.models.Job.Trigger",
        "JobStatusEnum": "jobs.models.Job.Status",
        "JobVersionActionEnum": "jobs.models.JobVersion.Action",
        "RunTriggerEnum": "runs.models.Run.Trigger",
        "RunStatusEnum": "runs.models.Run.Status",
        "KindEnum": "jobs.models.Job.Kind",  # the name it had before another model had a kind
        "WindowKindEnum": "calendars.models.Window.Kind",
        "ChannelKindEnum": "alerts.models.Channel.Kind",
        "NotificationStatusEnum": "alerts.models.Notification.Status",
        "NotificationEventEnum": "alerts.models.Notification.Event",
        "AlertRuleEventEnum": "alerts.models.AlertRule.Event",  # the incidents' event too
    },
}

# --- Logging ------------------------------------------------------------------------------
# One line per event on stdout; LOG_FORMAT=json for log collectors (run_id, job_id, status, duration_ms
# are fields of their own there).
LOG_FORMAT = envstr("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
