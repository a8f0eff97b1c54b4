"""Domain errors raised by jobs.services; the API maps each to its HTTP status."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.exceptions import Conflict

#: The permission that shell jobs need, beyond the job model's own.
SHELL_PERMISSION = "jobs.manage_shell_jobs"
SHELL_REFUSED = gettext_noop("Shell jobs need the 'Can create and change shell jobs' permission.")


class JobConflict(Conflict):
    """The request conflicts with the job's state (HTTP 409)."""


class JobAlreadyExists(JobConflict):
    def __init__(self, job_id: str) -> None:
        super().__init__(_("A job with id %(id)s already exists.") % {"id": repr(job_id)})


class JobProtected(JobConflict):
    def __init__(self, job_id: str) -> None:
        super().__init__(_("%(id)s is a system job and cannot be deleted.") % {"id": repr(job_id)})


class ShellNotPermitted(PermissionDenied):
    """The user may not create, change, resume or run shell jobs (HTTP 403)."""

    def __init__(self) -> None:
        super().__init__(_(SHELL_REFUSED))
