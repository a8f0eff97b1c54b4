"""Where a change comes from: a request's source, client and reason; a command's; the system's."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from core import origin


def test_outside_any_request_or_command_it_is_the_system():
    assert origin.current().source == "system"
    assert origin.current().actor_name == "system"


def test_a_command_says_where_it_comes_from_and_a_write_why():
    with origin.origin("import"):
        assert (origin.current().source, origin.current().actor_name) == ("import", "import")
        with origin.reason("nightly sync"):
            assert origin.current().reason == "nightly sync"
        assert origin.current().reason == ""
    assert origin.current().source == "system"


@pytest.mark.parametrize(
    ("path", "source"), [("/api/jobs/", "api"), ("/admin/jobs/job/", "admin"), ("/jobs/x", "weizhi")]
)
def test_a_request_gives_its_source_client_reason_and_user(path, source, admin_user):
    seen = []

    def view(request):
        request.user = admin_user  # as authentication does, after the middleware
        seen.append(origin.current())
        return HttpResponse()

    request = RequestFactory().post(path, HTTP_X_CHANGE_REASON="rollback after incident", REMOTE_ADDR="10.1.2.3")
    origin.OriginMiddleware(view)(request)
    [made] = seen
    assert (made.source, made.client_ip, made.reason) == (source, "10.1.2.3", "rollback after incident")
    assert made.actor_name == admin_user.get_username()
    assert origin.current().source == "system"  # after the request
