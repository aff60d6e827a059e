"""Email and Slack-compatible webhook notifications, queued in an outbox and sent after commit."""

import json
import urllib.request
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import timezone

from core.models import Notification
from core.queue import enqueue_on_commit


def role_emails(role: str) -> list[str]:
    User = get_user_model()
    return list(
        User.objects.filter(groups__name=role, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def notification_queue(
    *,
    event: str,
    subject: str,
    body: str,
    roles: Iterable[str] = (),
    payload: dict[str, Any] | None = None,
) -> Notification:
    """Store an outbox row and enqueue its delivery once the caller's transaction commits."""
    recipients = sorted({email for role in roles for email in role_emails(role)})
    note = Notification.objects.create(
        event=event,
        subject=subject,
        body=body,
        recipients=recipients,
        webhook_url=settings.ALERT_WEBHOOK_URL,
        payload=payload or {},
    )
    if not recipients and not note.webhook_url:
        Notification.objects.filter(pk=note.pk).update(status=Notification.Status.SENT)
        return note
    enqueue_on_commit("core.tasks.notification_deliver", note.pk)
    return note


def notifications_pending(*, now: datetime | None = None) -> list[int]:
    """Outbox rows still pending ``PENDING_REQUEUE_SECONDS`` after they were stored: their
    enqueue met a broker that was down, or the message was lost. The requeue sweep sends
    them again; delivery claims a row first, so a duplicate message sends nothing twice."""
    now = now or timezone.now()
    waited = now - timedelta(seconds=settings.PENDING_REQUEUE_SECONDS)
    pending = Notification.objects.filter(
        status=Notification.Status.PENDING, created_at__lt=waited
    ).order_by("created_at")
    return list(pending.values_list("pk", flat=True)[:500])


def _post_webhook(url: str, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
        if response.status >= 300:
            raise ConnectionError(f"webhook answered {response.status}")


def notification_deliver_now(*, notification_id: int) -> bool:
    """Send one notification; claims it first so two workers never both send it."""
    claimed = Notification.objects.filter(
        pk=notification_id, status__in=[Notification.Status.PENDING, Notification.Status.FAILED]
    ).update(status=Notification.Status.SENDING)
    if not claimed:
        return False
    note = Notification.objects.get(pk=notification_id)
    try:
        if note.recipients:
            send_mail(note.subject, note.body, settings.DEFAULT_FROM_EMAIL, note.recipients)
        if note.webhook_url:
            # "text" is what Slack-compatible receivers display; the rest is for machines.
            _post_webhook(
                note.webhook_url,
                {
                    "text": f"*{note.subject}*\n{note.body}",
                    "event": note.event,
                    "data": note.payload,
                },
            )
    except Exception as exc:
        Notification.objects.filter(pk=note.pk).update(
            status=Notification.Status.FAILED,
            attempts=note.attempts + 1,
            last_error=str(exc)[:2000],
        )
        raise
    Notification.objects.filter(pk=note.pk).update(
        status=Notification.Status.SENT, attempts=note.attempts + 1, sent_at=timezone.now()
    )
    return True
