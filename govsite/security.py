"""Login throttling glue: the client address django-axes counts, and the audit trail.

django-axes counts failed logins per username and per client address and refuses
further attempts for a cool-off period (settings: AXES_*). This module tells it where
the client address is behind a reverse proxy and writes failures and lock-outs to the
hash-chained audit trail: once per username and address per cool-off period, the repeats
counted outside the chain and summarised when the period ends (core.audit_repeats), so
that no anonymous client can grow the trail without bound.
"""

import json

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from core.audit_repeats import audit_record_repeat


def client_ip(request) -> str:
    """The client address: REMOTE_ADDR, or, behind PROXY_COUNT proxies, the address the
    outermost trusted proxy appended to X-Forwarded-For (earlier entries are the
    client's to forge)."""
    count = settings.PROXY_COUNT
    if count > 0:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= count:
            return hops[-count]
    return request.META.get("REMOTE_ADDR", "")


def _where(request) -> dict:
    if request is None:
        return {}
    return {"ip": client_ip(request), "path": request.path}


def _audit_repeat(action: str, payload: dict) -> None:
    key = json.dumps([payload["username"], payload.get("ip", "")], ensure_ascii=False)
    audit_record_repeat(
        action=action,
        key=key,
        payload=payload,
        period=settings.AXES_COOLOFF_TIME,
        keys_limit=settings.LOGIN_FAILURE_AUDIT_PAIRS,
    )


@receiver(user_login_failed, dispatch_uid="govsite.audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked the password in credentials; keep only the name.
    username = str(credentials.get("username", ""))[:150]
    _audit_repeat("auth.login_failed", {"username": username, **_where(request)})


@receiver(user_locked_out, dispatch_uid="govsite.audit_locked_out")
def audit_locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    payload = {
        "username": str(username or "")[:150],
        "ip": ip_address or "",
        "path": request.path if request is not None else "",
        "cooloff_seconds": int(settings.AXES_COOLOFF_TIME.total_seconds()),
    }
    _audit_repeat("auth.locked_out", payload)
