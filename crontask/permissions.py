"""API access: authenticated users read; writes need the job model's Django permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

WRITE_PERMS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


class ApiPermission(BasePermission):
    """Anonymous access only with CRONTASK_ALLOW_ANONYMOUS_API=true (trusted networks).

    A view may name the permission a write needs through ``required_permission(request)``
    (its custom actions); otherwise the HTTP method decides (POST add, PUT/PATCH change, DELETE delete) on the
    view's ``permission_model``.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        if settings.CRONTASK_ALLOW_ANONYMOUS_API:
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        required = getattr(view, "required_permission", None)
        perm = required(request) if required is not None else None
        if perm is None:
            model = getattr(view, "permission_model", None)
            if model is None:
                return bool(user.is_staff)
            action = WRITE_PERMS.get(request.method or "", "change")
            perm = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        return user.has_perm(perm)
