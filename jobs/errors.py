"""Domain errors raised by jobs.services; the API maps each to its HTTP status."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from core.exceptions import Conflict

#: The permission that shell jobs need, beyond the job model's own.
SHELL_PERMISSION = "jobs.manage_shell_jobs"
SHELL_REFUSED = "Shell jobs need the 'Can create and change shell jobs' permission."


class JobConflict(Conflict):
    """The request conflicts with the job's state (HTTP 409)."""


class JobAlreadyExists(JobConflict):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"A job with id {job_id!r} already exists.")


class JobProtected(JobConflict):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"{job_id!r} is a system job and cannot be deleted.")


class ShellNotPermitted(PermissionDenied):
    """The user may not create, change, resume or run shell jobs (HTTP 403)."""

    def __init__(self) -> None:
        super().__init__(SHELL_REFUSED)
