"""Login throttling glue: the client address django-axes counts, and the audit trail.

django-axes counts failed logins per username and per client address and refuses
further attempts for a cool-off period (settings: AXES_*). This module tells it where
the client address is behind a reverse proxy and writes every failure and lock-out to
the hash-chained audit trail.
"""

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from core.audit import audit_record


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


@receiver(user_login_failed, dispatch_uid="govsite.audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked the password in credentials; keep only the name.
    audit_record(
        action="auth.login_failed",
        payload={"username": str(credentials.get("username", ""))[:150], **_where(request)},
    )


@receiver(user_locked_out, dispatch_uid="govsite.audit_locked_out")
def audit_locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    audit_record(
        action="auth.locked_out",
        payload={
            "username": str(username or "")[:150],
            "ip": ip_address or "",
            "path": request.path if request is not None else "",
            "cooloff_seconds": int(settings.AXES_COOLOFF_TIME.total_seconds()),
        },
    )
