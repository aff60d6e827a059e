"""The audit trail through its real interfaces: the audit page (verification from the
newest checkpoint), the user admin (users in the trail are deactivated, not deleted),
and a real Celery worker writing checkpoints."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import ProtectedError
from django.test import Client

from conftest import PASSWORD
from core.audit import audit_record, audit_verify
from core.models import AuditCheckpoint, AuditEvent
from core.signing import Checkpoint, key_generate
from core.tests import tamper
from core.tests.support import checkpoint

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def keyed(settings):
    settings.AUDIT_SIGNING_KEY = key_generate()
    settings.AUDIT_VERIFY_KEYS = []
    settings.AUDIT_CHECKPOINT_SINKS = ["file"]
    settings.AUDIT_CHECKPOINT_EVERY = 0


@pytest.fixture
def events(keyed, approver):
    def record(n: int) -> list[AuditEvent]:
        return [
            audit_record(action="test.step", actor=approver if i % 2 else None, payload={"i": i})
            for i in range(n)
        ]

    return record


@pytest.fixture
def auditor_client(auditor):
    client = Client()
    client.force_login(auditor)
    return client


# --- the audit page -----------------------------------------------------------------------


def test_the_page_verifies_only_the_events_since_the_newest_checkpoint(
    events, auditor_client, monkeypatch
):
    events(20)
    checkpoint()
    events(3)
    hashed = []
    compute = AuditEvent.compute_hash
    monkeypatch.setattr(AuditEvent, "compute_hash", lambda e: hashed.append(e.pk) or compute(e))

    page = auditor_client.get("/registry/audit/")
    chain = page.context["chain"]
    assert chain.ok and not chain.full and chain.checked == 3
    # The checkpoint's own event and the three after it; none of the twenty before.
    assert len(hashed) == 4
    html = page.content.decode()
    assert "23 events: 3 new since the checkpoint of" in html
    assert "Last full verification:" in html and "overdue" not in html

    hashed.clear()
    page = auditor_client.get("/registry/audit/?verify=full")
    assert page.context["chain"].full and page.context["chain"].checked == 23
    assert len(hashed) == 23


def test_the_page_reports_a_rewrite_before_the_checkpoint(events, auditor_client):
    written = events(10)
    checkpoint()
    events(2)
    tamper.rewrite(written[3].pk, actor_label="nobody")
    page = auditor_client.get("/registry/audit/")
    assert not page.context["chain"].ok
    html = page.content.decode()
    assert "broken" in html and "no longer has the hash of the checkpoint" in html


def test_the_page_reports_emptied_tables_from_the_local_checkpoint_file(events, auditor_client):
    events(10)
    checkpoint()
    tamper.empty()  # events, head and the database's checkpoint copies
    page = auditor_client.get("/registry/audit/")
    assert not page.context["chain"].ok
    assert "covers 10 events but the chain head records 0" in page.content.decode()


def test_an_edit_in_place_before_the_checkpoint_needs_the_full_verification(events, auditor_client):
    """The documented limit of the page's quick check: an event before the newest
    checkpoint edited without touching any hash. The nightly full verification, the
    page's "verify the whole chain" link and audit_verify find it."""
    written = events(10)
    checkpoint()
    tamper.edit(written[2].pk, action="test.innocent")
    assert auditor_client.get("/registry/audit/").context["chain"].ok
    full = auditor_client.get("/registry/audit/?verify=full").context["chain"]
    assert not full.ok and full.broken_id == written[2].pk
    assert not audit_verify().ok


def test_without_a_full_verification_for_a_day_the_page_says_overdue(events, auditor_client):
    events(2)
    html = auditor_client.get("/registry/audit/").content.decode()
    assert "no signed checkpoint yet" in html and "none yet" in html and "overdue" in html


# --- users in the trail -------------------------------------------------------------------


@pytest.fixture
def admin_client(db):
    root = User.objects.create_superuser("root", "root@example.test", PASSWORD)
    client = Client()
    client.force_login(root)
    return client


def test_a_user_in_the_trail_cannot_be_deleted_in_the_admin(events, approver, admin_client):
    events(6)  # three of them by the approver
    delete_url = f"/admin/auth/user/{approver.pk}/delete/"
    page = admin_client.get(delete_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "named in 3 audit events" in html and "deactivate the account instead" in html

    admin_client.post(delete_url, {"post": "yes"})
    assert User.objects.filter(pk=approver.pk).exists()
    assert audit_verify().ok  # the bypass: deletion used to null actor_id and break it
    refused = AuditEvent.objects.filter(action="user.delete_refused")
    assert refused.count() == 2 and refused.last().actor_label == "root"
    assert refused.last().payload == {"username": approver.username, "audit_events": 3}


def test_the_bulk_delete_action_refuses_them_too(events, approver, analyst, admin_client):
    events(2)
    response = admin_client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [approver.pk, analyst.pk], "post": "yes"},
    )
    assert "named in 1 audit events" in response.content.decode()
    assert User.objects.filter(pk__in=[approver.pk, analyst.pk]).count() == 2


def test_no_other_path_deletes_them_either(events, approver):
    events(2)
    with pytest.raises(ProtectedError):
        approver.delete()


def test_a_user_in_the_trail_is_deactivated_instead_and_that_is_audited(
    events, approver, admin_client
):
    events(2)
    url = f"/admin/auth/user/{approver.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update(
        groups=[g.pk for g in approver.groups.all()],
        user_permissions=[],
        date_joined_0=approver.date_joined.strftime("%Y-%m-%d"),
        date_joined_1=approver.date_joined.strftime("%H:%M:%S"),
        is_staff="on",
    )
    data.pop("is_active", None)  # the box unticked
    data.pop("last_login", None)
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    approver.refresh_from_db()
    assert not approver.is_active
    event = AuditEvent.objects.get(action="user.deactivated")
    assert event.payload == {"username": approver.username} and event.actor_label == "root"
    visitor = Client()
    visitor.post("/accounts/login/", {"username": approver.username, "password": PASSWORD})
    assert "_auth_user_id" not in visitor.session
    assert audit_verify().ok


def test_a_user_never_in_the_trail_can_be_deleted_and_the_deletion_is_audited(
    keyed, make_user, admin_client
):
    temp = make_user(None, "temp_contractor")
    response = admin_client.post(f"/admin/auth/user/{temp.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=temp.pk).exists()
    event = AuditEvent.objects.get(action="user.deleted")
    assert (event.object_id, event.payload) == (str(temp.pk), {"username": "temp_contractor"})
    assert audit_verify().ok


# --- the worker ---------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_writes_the_checkpoint_queued_after_n_events(celery_worker, settings):
    settings.AUDIT_SIGNING_KEY = key_generate()
    settings.AUDIT_CHECKPOINT_SINKS = ["file"]
    settings.AUDIT_CHECKPOINT_EVERY = 5
    with transaction.atomic():
        for i in range(5):
            audit_record(action="test.worker", payload={"i": i})
        time.sleep(0.3)
        assert not AuditCheckpoint.objects.exists()  # nothing before commit
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not AuditCheckpoint.objects.exists():
        time.sleep(0.1)
    assert AuditCheckpoint.objects.get().seq == 5
    [line] = settings.AUDIT_CHECKPOINT_FILE.read_text().splitlines()
    assert Checkpoint.from_line(line).seq == 5
