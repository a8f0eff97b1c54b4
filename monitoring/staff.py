"""The staff user's display preferences page (``/admin/preferences/``): the time zone of the admin."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from monitoring.preferences import display_zone_of, display_zone_set, zone_names


@staff_member_required
def preferences(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        try:
            display_zone_set(user=request.user, timezone=request.POST.get("timezone", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, _("Times are now shown in %(zone)s.") % {"zone": display_zone_of(request.user)})
            back = request.POST.get("next", "")
            if not url_has_allowed_host_and_scheme(back, {request.get_host()}, require_https=request.is_secure()):
                back = reverse("display-preferences")
            return HttpResponseRedirect(back)
    context = {
        **admin.site.each_context(request),
        "title": _("Display preferences"),
        "subtitle": None,
        "zones": zone_names(),
        "chosen": display_zone_of(request.user),
        "error": error,
        "next": request.GET.get("next", ""),
    }
    return TemplateResponse(request, "admin/preferences.html", context)
