"""Failed logins reach the audit trail once per username and address per cool-off
period: four anonymous clients once added 1,204 rows in 20 seconds."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.audit import audit_verify
from core.audit_repeats import audit_repeats_close
from core.models import AuditEvent, AuditRepeat
from core.tasks import audit_repeats_close as audit_repeats_close_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def throttle(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return settings.AXES_COOLOFF_TIME


def _fail(client: Client, username: str, ip: str) -> int:
    data = {"username": username, "password": "guess"}
    return client.post("/accounts/login/", data, REMOTE_ADDR=ip).status_code


def _auth_events():
    return AuditEvent.objects.filter(action__startswith="auth.")


def test_four_clients_hammering_a_locked_account_add_a_bounded_number_of_events(throttle, approver):
    addresses = [f"203.0.113.{n}" for n in range(1, 5)]
    clients = [Client() for _ in addresses]
    statuses = [
        _fail(client, approver.username, ip)
        for _ in range(30)
        for client, ip in zip(clients, addresses, strict=True)
    ]
    assert statuses.count(429) >= 115  # locked out after the first three
    # Was two rows per attempt (240); now one failure and one lock-out per address.
    events = _auth_events()
    assert (
        sorted(events.values_list("action", flat=True))
        == ["auth.locked_out"] * 4 + ["auth.login_failed"] * 4
    )
    assert {e.payload["ip"] for e in events} == set(addresses)
    first = events.filter(action="auth.login_failed").first()
    assert "repeats_counted_until" in first.payload

    # When the period has ended, one summary per address and action, with the count.
    audit_repeats_close(now=timezone.now() + throttle + timedelta(seconds=1))
    summaries = AuditEvent.objects.filter(action="auth.login_failed.repeated")
    assert sorted(s.payload["count"] for s in summaries) == [30, 30, 30, 30]
    assert AuditEvent.objects.filter(action="auth.locked_out.repeated").count() == 4
    assert _auth_events().count() == 16
    assert audit_verify().ok


def test_a_new_period_opens_a_new_event_and_summarises_the_last(throttle, settings, approver):
    client = Client()
    _fail(client, approver.username, "198.51.100.7")
    _fail(client, approver.username, "198.51.100.7")
    window = AuditRepeat.objects.get(action="auth.login_failed")
    AuditRepeat.objects.filter(pk=window.pk).update(closes_at=timezone.now())  # it ended
    settings.AXES_FAILURE_LIMIT = 100  # keep this attempt below the lock-out
    _fail(client, approver.username, "198.51.100.7")
    actions = list(_auth_events().order_by("id").values_list("action", flat=True))
    assert actions == ["auth.login_failed", "auth.login_failed.repeated", "auth.login_failed"]


def test_made_up_names_and_addresses_are_capped_by_the_flood_window(throttle, settings):
    settings.LOGIN_FAILURE_AUDIT_PAIRS = 5
    for n in range(40):
        _fail(Client(), f"guess{n}", f"192.0.2.{n + 1}")
    failed = AuditEvent.objects.filter(action="auth.login_failed")
    assert failed.count() == 6
    assert [e.payload.get("flood", False) for e in failed.order_by("id")] == [False] * 5 + [True]
    assert failed.order_by("id").last().payload["keys_limit"] == 5

    AuditRepeat.objects.update(closes_at=timezone.now())  # every period has ended
    assert audit_repeats_close_task() == 1  # the beat entry's task
    [flood] = AuditEvent.objects.filter(action="auth.login_failed.repeated")
    assert flood.payload["count"] == 35 and flood.payload["flood"] is True
    assert audit_verify().ok


def test_closed_windows_are_summarised_once_and_forgotten_after_a_month(throttle, approver):
    for _ in range(2):
        _fail(Client(), approver.username, "198.51.100.9")
    later = timezone.now() + throttle + timedelta(seconds=1)
    assert audit_repeats_close(now=later) == 1
    assert audit_repeats_close(now=later) == 0
    assert AuditRepeat.objects.filter(action="auth.login_failed").exists()
    audit_repeats_close(now=later + timedelta(days=31))
    assert not AuditRepeat.objects.exists()


def test_a_long_made_up_name_is_counted_under_its_digest(throttle):
    name = '"' * 150  # 300 characters once quoted in the key
    for _ in range(3):
        _fail(Client(), name, "2001:db8::1")
    [window] = AuditRepeat.objects.filter(action="auth.login_failed")
    assert window.key.startswith("sha256:") and window.count == 3
    assert AuditEvent.objects.get(action="auth.login_failed").payload["username"] == name
