"""Every route in the URL conf refuses anonymous callers and users without a role.

The routes are enumerated from the URL resolver, so a new page or endpoint without a
permission check fails here. Public routes are listed explicitly.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

PUBLIC = {
    "",  # landing page (shows only a login link to anonymous visitors)
    "healthz",
    "accounts/login/",
    "accounts/logout/",
    "api/schema/",
    "api/docs/",
    "metrics",  # network- or token-restricted; the test client calls from loopback
}
SAMPLE = {"int": "999999", "slug": "no-such-model", "str": "no-such-thing", "path": "x"}
# Open to any signed-in account, whatever its role: it only tells the caller who it is.
SELF_SERVICE = {"api/v1/me/"}
REFUSED_ANONYMOUS = {302, 401, 403, 405}
REFUSED_NO_ROLE = {302, 403, 405}


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # Django's admin has its own staff and permission checks
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str | None:
    if "^" in route or "(?P<" in route:
        route = route.replace("^", "").replace("$", "").replace("\\.", ".")
        route = re.sub(r"\(\?P<(\w+)>\[0-9\]\+\)", SAMPLE["int"], route)
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: "csv", route)
    route = re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE.get(m.group(1) or "str", "x"), route)
    return None if any(c in route for c in "()[]*+?\\") else route


ROUTES = sorted({r for r in (_concrete(p) for p in _walk(get_resolver().url_patterns)) if r})
GUARDED = [r for r in ROUTES if r not in PUBLIC and not r.startswith("static")]


def test_the_url_conf_was_enumerated():
    assert len(GUARDED) > 40
    assert "api/v1/predictions/" in GUARDED and "explain/" in GUARDED


@pytest.mark.parametrize("route", GUARDED)
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_callers_are_refused(client, route, method):
    response = getattr(client, method)("/" + route)
    assert response.status_code in REFUSED_ANONYMOUS, (route, response.status_code)
    if response.status_code == 302:
        assert "/login/" in response["Location"]


@pytest.mark.parametrize("route", [r for r in GUARDED if r not in SELF_SERVICE])
@pytest.mark.parametrize("method", ["get", "post"])
def test_users_without_a_role_are_refused(client, make_user, route, method):
    client.force_login(make_user(None, "roleless"))
    response = getattr(client, method)("/" + route)
    assert response.status_code in REFUSED_NO_ROLE, (route, response.status_code)
