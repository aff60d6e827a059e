"""The hash covers a plain copy of the actor's id, not the foreign key; the upgrade
restores the id in rows whose user was deleted when the key was still SET NULL."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection

from core.audit import audit_record, audit_verify
from core.models import AuditEvent

pytestmark = pytest.mark.django_db
upgrade = importlib.import_module("core.migrations.0004_audit_anchoring")


def test_the_hash_does_not_depend_on_the_foreign_key(approver):
    event = audit_record(action="test.one", actor=approver)
    assert event.actor_ref == approver.pk
    with connection.cursor() as cursor:
        cursor.execute("UPDATE registry_auditevent SET actor_id = NULL WHERE id = %s", [event.pk])
    assert audit_verify().ok
    # The canonical content still names it actor_id: hashes stored before stay valid.
    assert AuditEvent.objects.get(pk=event.pk).content()["actor_id"] == approver.pk


def test_the_upgrade_restores_the_ids_the_old_set_null_erased(make_user, approver):
    leaver = make_user("Analyst", "leaver")
    audit_record(action="test.before", actor=approver)
    gone = [audit_record(action="test.by_leaver", actor=leaver, payload={"n": n}) for n in (1, 2)]
    audit_record(action="test.system")
    # What deleting the user did before: actor_id set to NULL (actor_ref did not exist).
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE registry_auditevent SET actor_id = NULL, actor_ref = NULL WHERE actor_id = %s",
            [leaver.pk],
        )
    get_user_model().objects.filter(pk=leaver.pk).delete()
    report = audit_verify()
    assert not report.ok and report.broken_id == gone[0].pk

    upgrade.actor_ref_fill(apps, None)

    assert audit_verify().ok
    assert set(
        AuditEvent.objects.filter(action="test.by_leaver").values_list("actor_ref", flat=True)
    ) == {leaver.pk}
    assert AuditEvent.objects.get(action="test.system").actor_ref is None
