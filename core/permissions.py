"""API access: every request needs a user with the model's Django permission, reads included.

Who may do what (docs/operations.md, "Security", draws the whole matrix):

- reads need the view permission of what they read (``jobs.view_job``, ``runs.view_run``);
- writes need add/change/delete on the model, or what a view's custom action names
  (``required_permission``); shell jobs need ``jobs.manage_shell_jobs`` besides, checked by
  the services on the kind a job ends up with;
- ``CRONTASK_ALLOW_ANONYMOUS_API=true`` lets anonymous clients *read* the Weizhi-compatible
  paths (their clients never authenticated); it grants no write and nothing under /api/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission

if TYPE_CHECKING:
    from django.db.models import Model
    from rest_framework.request import Request
    from rest_framework.views import APIView

WRITE_PERMS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


def model_permission(model: type[Model], action: str) -> str:
    """``jobs.view_job`` for (Job, "view")."""
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


class ApiPermission(BasePermission):
    """A view names its model as ``permission_model`` (reads need its view permission, writes
    the permission of the method: POST add, PUT/PATCH change, DELETE delete). A view may name a
    write's permission through ``required_permission(request)`` (its custom actions), and a
    read's through ``read_permission`` (a view over another model's rows). A view with neither
    reads nothing stored (the cron preview) and needs only a signed-in user; its writes need staff.
    A view with ``anonymous_reads = True`` (the Weizhi-compatible paths) may be read anonymously
    when CRONTASK_ALLOW_ANONYMOUS_API is on.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        reading = request.method in SAFE_METHODS
        if not (user and user.is_authenticated):
            return reading and settings.CRONTASK_ALLOW_ANONYMOUS_API and getattr(view, "anonymous_reads", False)
        model = getattr(view, "permission_model", None)
        if reading:
            perm = getattr(view, "read_permission", None) or (model and model_permission(model, "view"))
            return user.has_perm(perm) if perm else True
        required = getattr(view, "required_permission", None)
        perm = required(request) if required is not None else None
        if perm is None:
            if model is None:
                return bool(user.is_staff)
            perm = model_permission(model, WRITE_PERMS.get(request.method or "", "change"))
        allowed = user.has_perm(perm)
        if not allowed:  # what the refused write lacked, for the audit trail (audit.api)
            request.refused_permission = perm  # type: ignore[attr-defined]
        return allowed
