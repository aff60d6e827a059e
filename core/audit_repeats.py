"""Repeated events counted outside the hash chain, so that no anonymous client can grow
the trail without bound.

A failed login is audited, but a client that keeps failing (or keeps knocking while
locked out) must not add a row per attempt: four clients once added 1,204 rows in
20 seconds. ``audit_record_repeat`` writes the **first** occurrence of an ``(action,
key)`` in a period (for logins: the username and client address, for the lock-out's
cool-off period) as an audit event and only counts the others on an ``AuditRepeat`` row.
When the period has ended, ``audit_repeats_close`` (beat, every 5 minutes; or the next
occurrence of the same key) writes one ``<action>.repeated`` event with the count, first
and last time. So each key adds at most two events per period, however many attempts.

Keys are chosen by the caller, so a client that makes up a new username and address for
every attempt would still open a window per attempt. ``keys_limit`` caps that: once that
many keys of the action have open windows, occurrences of further keys are counted in
one shared window (key ``*``, payload ``flood: true``), whose first occurrence and
summary are two more events. At most ``2 * (keys_limit + 1)`` events per action per
period, whatever the request rate or the number of addresses.
"""

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.audit import audit_record
from core.models import AuditEvent, AuditRepeat

FLOOD_KEY = "*"
KEY_LENGTH = 300  # AuditRepeat.key
# Closed windows are kept this long for investigation (they are not part of the trail).
KEEP_CLOSED = timedelta(days=30)


def _summarise(window: AuditRepeat) -> AuditEvent | None:
    """Close a locked window: one summary event when it counted more than its first."""
    claimed = AuditRepeat.objects.filter(pk=window.pk, summarised=False).update(summarised=True)
    if not claimed or window.count < 2:
        return None
    return audit_record(
        action=f"{window.action}.repeated",
        payload={
            **window.payload,
            "count": window.count,
            "first_at": window.opened_at.isoformat(),
            "last_at": window.last_at.isoformat(),
            "period_seconds": int((window.closes_at - window.opened_at).total_seconds()),
            "first_event": window.event_id,
        },
    )


def _open_keys(action: str, now: datetime) -> int:
    return (
        AuditRepeat.objects.filter(action=action, summarised=False, closes_at__gt=now)
        .exclude(key=FLOOD_KEY)
        .count()
    )


def _repeat(
    *,
    action: str,
    key: str,
    payload: dict[str, Any],
    period: timedelta,
    keys_limit: int,
    now: datetime,
) -> AuditEvent | None:
    window = (
        AuditRepeat.objects.select_for_update()
        .filter(action=action, key=key, summarised=False)
        .first()
    )
    if window is not None and window.closes_at > now:
        AuditRepeat.objects.filter(pk=window.pk).update(count=F("count") + 1, last_at=now)
        return None
    if window is not None:
        _summarise(window)
    if key != FLOOD_KEY and _open_keys(action, now) >= keys_limit:
        flood = {**payload, "flood": True, "keys_limit": keys_limit}
        return _repeat(
            action=action,
            key=FLOOD_KEY,
            payload=flood,
            period=period,
            keys_limit=keys_limit,
            now=now,
        )
    window = AuditRepeat.objects.create(
        action=action,
        key=key,
        payload=payload,
        opened_at=now,
        closes_at=now + period,
        last_at=now,
    )
    event = audit_record(
        action=action,
        payload={**payload, "repeats_counted_until": window.closes_at.isoformat()},
    )
    AuditRepeat.objects.filter(pk=window.pk).update(event_id=event.pk)
    return event


def audit_record_repeat(
    *,
    action: str,
    key: str,
    payload: dict[str, Any],
    period: timedelta,
    keys_limit: int,
    now: datetime | None = None,
) -> AuditEvent | None:
    """Record one occurrence; the audit event when it opened a period, else None."""
    now = now or timezone.now()
    if len(key) > KEY_LENGTH:  # a client-chosen name can be long; its digest stands in
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _repeat(
                    action=action,
                    key=key,
                    payload=payload,
                    period=period,
                    keys_limit=keys_limit,
                    now=now,
                )
        except IntegrityError:
            # Another request opened the same window first: count into it.
            if attempt == 2:
                raise
    return None  # pragma: no cover (the loop returns or raises)


def audit_repeats_close(*, now: datetime | None = None) -> int:
    """Summarise every window whose period ended; forget closed windows after
    KEEP_CLOSED. Returns the number of summary events written."""
    now = now or timezone.now()
    written = 0
    ended = AuditRepeat.objects.filter(summarised=False, closes_at__lte=now).order_by("closes_at")
    for pk in list(ended.values_list("pk", flat=True)[:1000]):
        with transaction.atomic():
            window = AuditRepeat.objects.select_for_update().filter(pk=pk).first()
            if window is not None and _summarise(window) is not None:
                written += 1
    AuditRepeat.objects.filter(summarised=True, closes_at__lt=now - KEEP_CLOSED).delete()
    return written
