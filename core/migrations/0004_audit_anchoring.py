"""Anchor the audit chain outside the database (docs/governance.md, "What a database
administrator can and cannot hide").

- ``actor_ref``: a plain copy of the actor's id, which the hash covers from now on
  instead of the foreign key (the canonical content keeps the key ``actor_id``, so every
  stored hash stays valid). Rows whose actor was deleted before users in the trail were
  protected (the foreign key was SET NULL, which broke the chain there) get their
  original id back: it is the one id with which the row's own hash verifies again.
- ``actor`` becomes PROTECT: a user named in the trail is deactivated, never deleted.
- ``AuditCheckpoint``: the database's copies of the signed checkpoints.
- ``AuditRepeat``: repeated events (failed logins) counted outside the chain.
"""

import hashlib
import json

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import F, Max

# Deleted users had ids below the highest id seen plus this margin.
ID_MARGIN = 10_000


def _hash(row, actor_id):
    # AuditEvent.content() as of this migration (historical models have no methods).
    content = {
        "created_at": row.created_at.isoformat(),
        "actor_id": actor_id,
        "actor_label": row.actor_label,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "model_name": row.model_name,
        "payload": row.payload,
        "prev_hash": row.prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def actor_ref_fill(apps, schema_editor):
    AuditEvent = apps.get_model("core", "AuditEvent")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    AuditEvent.objects.update(actor_ref=F("actor_id"))
    orphans = AuditEvent.objects.filter(actor__isnull=True).exclude(actor_label="system")
    if not orphans.exists():
        return
    highest = max(
        User.objects.aggregate(m=Max("id"))["m"] or 0,
        AuditEvent.objects.aggregate(m=Max("actor_id"))["m"] or 0,
    )
    found = {}
    for row in orphans.order_by("id").iterator():
        if _hash(row, None) == row.row_hash:
            continue
        known = found.get(row.actor_label)
        candidates = ([known] if known else []) + list(range(1, highest + ID_MARGIN))
        for candidate in candidates:
            if _hash(row, candidate) == row.row_hash:
                found[row.actor_label] = candidate
                AuditEvent.objects.filter(pk=row.pk).update(actor_ref=candidate)
                break


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_roles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="actor_ref",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(actor_ref_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveBigIntegerField(db_index=True)),
                ("kind", models.CharField(max_length=16)),
                ("verified", models.CharField(max_length=16)),
                ("created_at", models.DateTimeField(db_index=True)),
                ("line", models.TextField()),
            ],
            options={"ordering": ["-seq", "-created_at"]},
        ),
        migrations.CreateModel(
            name="AuditRepeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("action", models.CharField(max_length=64)),
                ("key", models.CharField(max_length=300)),
                ("payload", models.JSONField(default=dict)),
                ("opened_at", models.DateTimeField()),
                ("closes_at", models.DateTimeField(db_index=True)),
                ("last_at", models.DateTimeField()),
                ("count", models.PositiveIntegerField(default=1)),
                ("event_id", models.BigIntegerField(blank=True, null=True)),
                ("summarised", models.BooleanField(default=False)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("summarised", False)),
                        fields=("action", "key"),
                        name="one_open_audit_repeat_per_key",
                    )
                ],
            },
        ),
    ]
