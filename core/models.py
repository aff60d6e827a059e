"""Records every app writes: the hash-chained audit trail and the notification outbox.

These tables were created by the registry app and keep its table names
(``registry_*``); core took them over with state-only migrations.
"""

import hashlib
import json
from typing import Any, NoReturn

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Append-only; each row's hash covers its content and the previous row's hash."""

    created_at = models.DateTimeField()
    # A user named in the trail cannot be deleted (deactivate them): PROTECT here, and the
    # user admin says why. The hash covers actor_ref, a plain copy of the id, never the
    # foreign key itself, so no change to users can break the chain.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_ref = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=64, blank=True, db_index=True)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        db_table = "registry_auditevent"
        ordering = ["id"]
        permissions = [("export_audit", "Can export the audit trail")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_label or 'system'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ValueError("audit events are append-only")

    def content(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at.isoformat(),
            "actor_id": self.actor_ref,
            "actor_label": self.actor_label,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "model_name": self.model_name,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


class AuditChainHead(models.Model):
    """Single row holding the last hash and count; locked to serialise appends."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "registry_auditchainhead"

    def __str__(self) -> str:
        return f"audit chain head ({self.count} events)"


class AuditCheckpoint(models.Model):
    """The database's copy of a signed checkpoint of the chain head (core.signing).

    Not the authority: that is the signature, made with a key the database does not
    hold, and the copy in the external sink (core.sinks). A row here whose signature
    fails is reported as tampering; a deleted row is still in the sink."""

    seq = models.PositiveBigIntegerField(db_index=True)
    kind = models.CharField(max_length=16)
    verified = models.CharField(max_length=16)
    created_at = models.DateTimeField(db_index=True)
    line = models.TextField()

    class Meta:
        ordering = ["-seq", "-created_at"]

    def __str__(self) -> str:
        return f"audit {self.kind} after {self.seq} events ({self.created_at:%Y-%m-%d %H:%M})"


class AuditRepeat(models.Model):
    """Repeats of one event (a failed login for one username and address) counted outside
    the chain: the chain gets the first occurrence of a period and, when the period
    ends, one summary with the count (core.audit_repeats)."""

    action = models.CharField(max_length=64)
    key = models.CharField(max_length=300)
    payload = models.JSONField(default=dict)
    opened_at = models.DateTimeField()
    closes_at = models.DateTimeField(db_index=True)
    last_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)
    event_id = models.BigIntegerField(null=True, blank=True)
    summarised = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["action", "key"],
                condition=models.Q(summarised=False),
                name="one_open_audit_repeat_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.key}: {self.count} since {self.opened_at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """Outbox row for an email and/or webhook; delivered by a Celery task after commit."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    event = models.CharField(max_length=64)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    recipients = models.JSONField(default=list, blank=True)
    webhook_url = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "registry_notification"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event}: {self.subject}"


class TaskDelivery(models.Model):
    """How many times a guarded task body started for one key (a fairness audit, a
    message's precompute of one version) without reaching its end: each start is
    committed before the body runs, and a normal end deletes the row, so what is left
    counts the worker deaths (core.quarantine). Past the limit the key is quarantined:
    its body no longer runs until an operator deletes the row."""

    key = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=200)
    label = models.CharField(max_length=300, help_text="the object the body works on")
    attempts = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    quarantined_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        verbose_name_plural = "task deliveries"

    def __str__(self) -> str:
        state = "quarantined" if self.quarantined_at else "running or died"
        return f"{self.task} on {self.label}: {self.attempts} attempts, {state}"
