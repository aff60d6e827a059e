"""Records every app writes: the hash-chained audit trail and the notification outbox.

These tables were created by the registry app and keep its table names
(``registry_*``); core took them over with state-only migrations.
"""

import hashlib
import json

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Append-only; each row's hash covers its content and the previous row's hash."""

    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
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

    def __str__(self):
        return f"#{self.pk} {self.action} by {self.actor_label or 'system'}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")

    def content(self) -> dict:
        return {
            "created_at": self.created_at.isoformat(),
            "actor_id": self.actor_id,
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

    def __str__(self):
        return f"audit chain head ({self.count} events)"


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

    def __str__(self):
        return f"{self.event}: {self.subject}"
