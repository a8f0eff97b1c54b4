"""The Job: what to run, when, and how. The source of truth for beat's schedule."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from jobs.triggers import MAX_JITTER_SECONDS, DstPolicy, Schedule, Trigger, jitter_offset

MAX_INTERVAL_SECONDS = 10 * 366 * 86400  # ten years
# \Z, not $: "$" also matches before a final newline, so "abc\n" was a valid id.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}\Z"
#: Ids a job cannot take: /api/jobs/<id>/ is an action's path for them (bulk, restore, import).
RESERVED_JOB_IDS = frozenset({"bulk", "restore", "import"})


def default_timezone() -> str:
    return settings.TIME_ZONE


def default_timeout() -> int:
    return settings.CRONTASK_DEFAULT_TIMEOUT


class BlackoutPolicy(models.TextChoices):
    SKIP = "skip", _("Skip: record the fire skipped, naming the calendar")
    DEFER = "defer", _("Defer: run once at the window's end")


class Job(models.Model):
    BlackoutPolicy = BlackoutPolicy

    class Kind(models.TextChoices):
        HTTP = "http", _("HTTP request")
        PYTHON = "python", _("Python handler")
        SHELL = "shell", _("Shell command")

    Trigger = Trigger  # defined with the trigger maths (jobs.triggers), where Schedule reads it
    DstPolicy = DstPolicy  # likewise

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        COMPLETED = "completed", _("Completed")

    class Method(models.TextChoices):
        # Labelled as written: without a label Django shows "Get", "Post".
        GET = "GET", "GET"
        POST = "POST", "POST"
        PUT = "PUT", "PUT"
        PATCH = "PATCH", "PATCH"
        DELETE = "DELETE", "DELETE"
        HEAD = "HEAD", "HEAD"

    class AfterMode(models.TextChoices):
        ANY = "any", _("Each matching upstream run fires it")
        ALL = "all", _("Fires once every upstream has a matching run")

    class ConcurrencyPolicy(models.TextChoices):
        ALLOW = "allow", _("Allow overlapping runs")
        FORBID = "forbid", _("Skip a fire while a run is going")
        REPLACE = "replace", _("Cancel the going run and start the new one")

    id = models.CharField(
        _("id"),
        primary_key=True,
        max_length=100,
        validators=[
            RegexValidator(
                JOB_ID_PATTERN,
                _("Use 1-100 letters, digits, '_', '.', ':' or '-', starting with a letter or digit."),
            )
        ],
        help_text=_("Chosen by the client, or generated."),
    )
    name = models.CharField(_("name"), max_length=200, blank=True, help_text=_("Defaults to the id."))
    description = models.TextField(_("description"), blank=True)
    # Rules (jobs.tags): at most 20, each 1-50 of a-z 0-9 - _ . : (lowercased), no duplicates.
    tags = models.JSONField(
        _("tags"),
        default=list,
        blank=True,
        help_text=_("Short labels to find the job by and aim alert rules at: prod, team:billing."),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.HTTP)
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)

    cron = models.CharField(
        _("cron"),
        max_length=200,
        blank=True,
        help_text=_("5 fields 'm h dom mon dow', or 6 with seconds first 's m h dom mon dow'."),
    )
    interval_seconds = models.PositiveIntegerField(
        _("interval (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_INTERVAL_SECONDS)],
    )
    run_at = models.DateTimeField(_("run at"), null=True, blank=True, help_text=_("For a one-off job."))
    timezone = models.CharField(
        _("time zone"), max_length=64, default=default_timezone, help_text=_("IANA name the cron is read in.")
    )
    jitter_seconds = models.PositiveIntegerField(
        _("jitter (seconds)"),
        default=0,
        validators=[MaxValueValidator(MAX_JITTER_SECONDS)],
        help_text=_(
            "Move every fire by the same offset in [0, jitter), derived from the job's id, to spread jobs "
            "that share a schedule. Less than the time between two fires. 0: on time."
        ),
    )
    # Calendars by id: the calendars app sits above jobs (calendars.apps registers the check that
    # the ids exist, jobs.validators); beat reads them with the job (scheduling.blackouts).
    calendars = models.JSONField(
        _("calendars"), default=list, blank=True,
        help_text=_("Ids of the calendars whose windows this job must not run in, e.g. [1, 3]."),
    )  # fmt: skip
    blackout_policy = models.CharField(
        _("blackout policy"), max_length=6, choices=BlackoutPolicy.choices, default=BlackoutPolicy.SKIP,
        help_text=_("A fire in a calendar's window: recorded skipped, or run once at the window's end."),
    )  # fmt: skip
    dst_policy = models.CharField(
        _("DST policy"),
        max_length=12,
        choices=DstPolicy.choices,
        default=DstPolicy.SHIFT_ONCE,
        help_text=_(
            "For a cron that names its minute and hour: on the day a daylight-saving change skips its "
            "time, run at the next valid time (shift) or not at all (skip); on the day it repeats it, "
            "run once or twice."
        ),
    )

    url = models.CharField(_("URL"), max_length=2000, blank=True)
    method = models.CharField(_("method"), max_length=6, choices=Method.choices, default=Method.GET)
    headers = models.JSONField(_("headers"), default=dict, blank=True, help_text=_("A JSON object of strings."))
    body = models.TextField(_("body"), blank=True)
    follow_redirects = models.BooleanField(
        _("follow redirects"),
        default=True,
        help_text=_("Follow 3xx answers (each hop checked by the egress policy). Off: the 3xx is the outcome."),
    )

    handler = models.CharField(
        _("handler"), max_length=200, blank=True, help_text=_("'scripts:<name>' or 'package.module:function'.")
    )
    handler_kwargs = models.JSONField(_("handler arguments"), default=dict, blank=True)

    command = models.TextField(_("command"), blank=True, help_text=_("Needs CRONTASK_ALLOW_SHELL=true."))

    timeout_seconds = models.PositiveIntegerField(
        _("timeout (seconds)"), default=default_timeout, validators=[MinValueValidator(1), MaxValueValidator(86400)]
    )
    max_retries = models.PositiveSmallIntegerField(_("max retries"), default=0, validators=[MaxValueValidator(100)])
    retry_backoff_seconds = models.PositiveIntegerField(
        _("retry backoff (seconds)"),
        default=10,
        validators=[MaxValueValidator(86400)],
        help_text=_("Delay before the first retry; doubled for each further one."),
    )
    concurrency_policy = models.CharField(
        _("concurrency policy"), max_length=10, choices=ConcurrencyPolicy.choices, default=ConcurrencyPolicy.ALLOW
    )
    max_concurrent = models.PositiveIntegerField(
        _("max concurrent runs"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text=_("With 'allow': a fire beyond this many runs going at once is skipped. Empty: no limit."),
    )
    misfire_grace_seconds = models.PositiveIntegerField(
        _("misfire grace (seconds)"),
        null=True,
        blank=True,
        help_text=_("A fire starting later than this after its time is skipped. Empty: always run."),
    )

    # Workflows (jobs.dependencies): the jobs whose runs fire this one, besides its schedule.
    after = models.JSONField(
        _("runs after"),
        default=list,
        blank=True,
        help_text=_(
            'Upstream jobs whose runs fire this one: [{"job": "<id>", "on": "success" | "failure" | "finish"}].'
        ),
    )
    after_mode = models.CharField(
        _("after mode"),
        max_length=3,
        choices=AfterMode.choices,
        default=AfterMode.ANY,
        help_text=_("'any': each matching upstream run fires it; 'all': once every upstream has one."),
    )
    after_window_seconds = models.PositiveIntegerField(
        _("after window (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_INTERVAL_SECONDS)],
        help_text=_("With 'all': the upstream runs must have ended within this many seconds. Empty: no limit."),
    )

    # Derived by the services from the fields above: what search looks in. Search over the raw url
    # or command would let anyone who may read jobs find a masked secret one guessed character at
    # a time, so it sees only what is shown.
    shown_target = models.TextField(
        _("target, secrets masked"), blank=True, default="", editable=False,
        help_text=_("What a run runs, as shown: secrets masked. Searched by the API and the admin."),
    )  # fmt: skip

    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Set by a pause with a time to come back (``jobs.services.job_pause``): beat resumes the job
    # then (``job_resume_due``). ``paused_at``: when it was paused, so that what fell due while it
    # was paused (and only that) is caught up on by its misfire policy.
    paused_until = models.DateTimeField(
        _("paused until"), null=True, blank=True, editable=False,
        help_text=_("The job resumes by itself at this time."),
    )  # fmt: skip
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True, editable=False)
    is_system = models.BooleanField(_("system job"), default=False, help_text=_("System jobs cannot be deleted."))

    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True, editable=False)
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True, editable=False)
    last_run_status = models.CharField(_("last run status"), max_length=10, blank=True, editable=False)
    # The nominal time of the latest fire claimed (by beat from next_run_at, or by a worker from a
    # message of another scheduler): whether a paused one-off had fired, read when it is resumed.
    last_fired_at = models.DateTimeField(_("last fired at"), null=True, blank=True, editable=False)
    run_count = models.PositiveIntegerField(_("runs"), default=0, editable=False)
    success_count = models.PositiveIntegerField(_("successes"), default=0, editable=False)
    failure_count = models.PositiveIntegerField(_("failures"), default=0, editable=False)

    # Derived: rebuilt from the job by jobs.beat_sync (``manage.py sync_schedules``).
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="crontask_job",
    )

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["id"]
        # Stored in auth_permission by migrate, in no language: as Django's own permission names.
        permissions = [("manage_shell_jobs", "Can create and change shell jobs")]
        indexes = [
            # The scheduler's due query: active jobs with next_run_at <= now, oldest first.
            models.Index(
                fields=["next_run_at"],
                name="job_due_idx",
                condition=Q(status="active", next_run_at__isnull=False),
            ),
            # The API's and admin's list filters.
            models.Index(fields=["status", "kind"], name="job_status_kind_idx"),
            # Beat's look for the paused jobs due to resume (jobs.services.job_resume_due).
            models.Index(
                fields=["paused_until"],
                name="job_paused_until_idx",
                condition=Q(status="paused", paused_until__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                name="job_trigger_fields",
                condition=(
                    Q(trigger="cron", interval_seconds__isnull=True, run_at__isnull=True) & ~Q(cron="")
                    | Q(trigger="interval", cron="", run_at__isnull=True, interval_seconds__gte=1)
                    | Q(trigger="date", cron="", interval_seconds__isnull=True, run_at__isnull=False)
                    | Q(trigger="manual", cron="", interval_seconds__isnull=True, run_at__isnull=True)
                ),
            ),
            models.CheckConstraint(
                name="job_kind_fields",
                condition=(
                    Q(kind="http") & ~Q(url="") | Q(kind="python") & ~Q(handler="") | Q(kind="shell") & ~Q(command="")
                ),
            ),
            models.CheckConstraint(name="job_status_valid", condition=Q(status__in=["active", "paused", "completed"])),
            models.CheckConstraint(name="job_timeout_positive", condition=Q(timeout_seconds__gte=1)),
        ]

    def __str__(self) -> str:
        return self.name or self.id

    @property
    def schedule(self) -> Schedule:
        return Schedule(
            trigger=self.trigger,
            cron=self.cron,
            interval_seconds=self.interval_seconds,
            run_at=self.run_at,
            timezone=self.timezone,
            offset_seconds=jitter_offset(self.id, self.jitter_seconds),
            dst_policy=self.dst_policy,
        )

    @property
    def target(self) -> str:
        """What a run of this job runs, in one line: ``POST http://…``, ``scripts:sync``, the command."""
        fields = {"method": self.method, "url": self.url, "handler": self.handler, "command": self.command}
        return self.target_of(kind=self.kind, **fields)

    @classmethod
    def target_of(cls, *, kind: str, method: str, url: str, handler: str, command: str) -> str:
        """``target`` from the fields alone (beat reads them without loading the job)."""
        if kind == cls.Kind.HTTP:
            return f"{method} {url}"
        if kind == cls.Kind.PYTHON:
            return handler
        return command


def _any(*values: bool | None) -> bool | None:
    """SQL's OR: true if any is, else unknown (NULL) if any is, else false."""
    return True if True in values else (None if None in values else False)


def _all(*values: bool | None) -> bool | None:
    """SQL's AND: false if any is, else unknown (NULL) if any is, else true."""
    return False if False in values else (None if None in values else True)


def _at_least(value: int | None, bound: int) -> bool | None:
    return None if value is None else value >= bound


#: ``Job.Meta.constraints`` read in Python, as the database reads them (a CHECK fails only on false,
#: not on NULL), with the fields each reads: ``jobs.preparation`` checks a job against them without
#: a query per constraint (``validate_constraints`` runs one each, in a savepoint).
#: ``tests/jobs/test_constraints.py`` holds them to the database's answers.
CONSTRAINTS_IN_PYTHON: dict[str, tuple[frozenset[str], Callable[[Job], bool | None]]] = {
    "job_trigger_fields": (
        frozenset({"trigger", "cron", "interval_seconds", "run_at"}),
        lambda job: _any(
            _all(job.trigger == "cron", job.interval_seconds is None, job.run_at is None, job.cron != ""),
            _all(job.trigger == "interval", job.cron == "", job.run_at is None, _at_least(job.interval_seconds, 1)),
            _all(job.trigger == "date", job.cron == "", job.interval_seconds is None, job.run_at is not None),
            _all(job.trigger == "manual", job.cron == "", job.interval_seconds is None, job.run_at is None),
        ),
    ),
    "job_kind_fields": (
        frozenset({"kind", "url", "handler", "command"}),
        lambda job: _any(
            _all(job.kind == "http", job.url != ""),
            _all(job.kind == "python", job.handler != ""),
            _all(job.kind == "shell", job.command != ""),
        ),
    ),
    "job_status_valid": (frozenset({"status"}), lambda job: job.status in ("active", "paused", "completed")),
    "job_timeout_positive": (frozenset({"timeout_seconds"}), lambda job: _at_least(job.timeout_seconds, 1)),
}

#: The fields a client sets, each with the part of a job it belongs to: the one list of them. In
#: this order they are the API's writable fields (``jobs.serializers``), the admin form's fields
#: and, by part, its fieldsets (``jobs.admin``), an export's keys and what an import may give
#: (``jobs.importer``), and what ``jobs.preparation`` accepts.
EDITABLE_PARTS: dict[str, str] = {
    "id": "job", "name": "job", "description": "job", "tags": "job", "kind": "job",
    "trigger": "schedule", "cron": "schedule", "interval_seconds": "schedule", "run_at": "schedule",
    "timezone": "schedule", "jitter_seconds": "schedule", "dst_policy": "schedule",
    "calendars": "schedule", "blackout_policy": "schedule",
    "url": "http", "method": "http", "headers": "http", "body": "http", "follow_redirects": "http",
    "handler": "python", "handler_kwargs": "python",
    "command": "shell",
    "timeout_seconds": "policies", "max_retries": "policies", "retry_backoff_seconds": "policies",
    "concurrency_policy": "policies", "max_concurrent": "policies", "misfire_grace_seconds": "policies",
    "after": "dependencies", "after_mode": "dependencies", "after_window_seconds": "dependencies",
    "status": "job",
}  # fmt: skip
EDITABLE_FIELDS: tuple[str, ...] = tuple(EDITABLE_PARTS)
#: What the system maintains and shows: read-only in the API (a GET's output sent back in a PUT
#: ignores them) and in the admin. The job's other fields (``shown_target``, ``last_fired_at``,
#: ``periodic_task``) are for the system's own use and not shown.
STATE_FIELDS: tuple[str, ...] = (
    "is_system", "paused_until", "next_run_at", "last_run_at", "last_run_status", "run_count", "success_count",
    "failure_count", "created_at", "updated_at",
)  # fmt: skip


#: The fields a version keeps: the definition, without ``status``. Pausing and resuming are
#: actions (the audit trail's), not changes to what the job is: a revert keeps the job's status,
#: and a restored job comes back paused whatever it was.
VERSIONED_FIELDS: tuple[str, ...] = tuple(name for name in EDITABLE_FIELDS if name != "status")


class JobTag(models.Model):
    """A tag some job has, or had (``jobs.tags``): what the admin's filter by tag offers, read
    without unnesting every job's tags on each page. Derived from the jobs: added by the services
    as a job is saved with a new tag, rebuilt from the jobs (the tags no job has any more dropped)
    by ``sync_schedules`` and by the daily ``cleanup-runs`` system job."""

    name = models.CharField(_("name"), max_length=50, primary_key=True)

    class Meta:
        verbose_name = _("job tag")
        verbose_name_plural = _("job tags")

    def __str__(self) -> str:
        return self.name


class JobVersion(models.Model):
    """One state of a job's definition, written by the job services (``jobs.versions``) after each
    change. Keyed by the job's id, not a foreign key: a deleted job's versions stay, to restore it
    from (``CRONTASK_VERSION_RETENTION_DAYS``). Secrets are stored as in the job; every view masks them."""

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        RESTORE = "restore"
        REVERT = "revert"

    job_id = models.CharField(_("job id"), max_length=100)
    number = models.PositiveIntegerField(_("number"))
    definition = models.JSONField(_("definition"), default=dict)
    changed_fields = models.JSONField(_("changed fields"), default=list)
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    source = models.CharField(_("source"), max_length=10)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("job version")
        verbose_name_plural = _("job versions")
        ordering = ["job_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["job_id", "number"], name="jobversion_job_number_unique")]
        indexes = [
            models.Index(fields=["job_id", "-number"], name="jobversion_job_number_idx"),
            # The job list's "changed in the last day" and the retention's age.
            models.Index(fields=["created_at"], name="jobversion_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} v{self.number}"


class JobDependency(models.Model):
    """One edge of a workflow: ``job`` runs after ``upstream_id``'s runs that end ``on`` so.

    Derived from ``Job.after`` (the source of truth, versioned) by the job services
    (``jobs.dependencies.dependencies_sync``), in the transaction that saves the job, so that a
    finished run finds the jobs it fires with one indexed query. ``upstream_id`` is not a foreign
    key: an upstream job may be deleted, and its downstream jobs still say what they wait for."""

    class On(models.TextChoices):
        SUCCESS = "success", _("Success")
        FAILURE = "failure", _("Failure")
        FINISH = "finish", _("Finish")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependencies", verbose_name=_("job"))
    upstream_id = models.CharField(_("upstream job id"), max_length=100)
    on = models.CharField(_("on"), max_length=7, choices=On.choices)

    class Meta:
        verbose_name = _("job dependency")
        verbose_name_plural = _("job dependencies")
        constraints = [
            models.UniqueConstraint(fields=["job", "upstream_id"], name="jobdependency_one_per_upstream"),
        ]
        indexes = [
            # runs.dependencies: the jobs a finished run of upstream_id fires; the graph's walk downstream.
            models.Index(fields=["upstream_id"], name="jobdependency_upstream_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.upstream_id} ({self.on})"
