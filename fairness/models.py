"""Fairness audits of a model version.

An audit is a record of evidence: once complete it never changes. `save()` and
`delete()` refuse to touch a complete audit, and the queryset's bulk `update()`
and `delete()` skip or refuse complete rows, so no code path (services, admin,
shell) can rewrite a verdict after the fact.
"""

from django.conf import settings
from django.db import models

from core.errors import DomainError


class AuditImmutableError(DomainError):
    """Someone tried to change or delete a complete audit (409)."""

    status = 409


class FairnessAuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # Complete audits are final: a bulk update silently leaves them out.
        return super(
            FairnessAuditQuerySet, self.exclude(status=FairnessAudit.Status.COMPLETE)
        ).update(**kwargs)

    def delete(self):
        if self.filter(status=FairnessAudit.Status.COMPLETE).exists():
            raise AuditImmutableError("complete fairness audits cannot be deleted")
        return super().delete()


class FairnessAudit(models.Model):
    class Source(models.TextChoices):
        EVALUATION = "evaluation", "Held-out evaluation data"
        LOGGED = "logged", "Logged predictions with feedback"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETE = "complete"
        FAILED = "failed"

    class Verdict(models.TextChoices):
        PASS = "pass"
        FAIL = "fail"
        INCONCLUSIVE = "inconclusive"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "On demand"
        APPROVAL = "approval", "Approval request"
        SCHEDULE = "schedule", "Quarterly schedule"

    version = models.ForeignKey(
        "registry.MLModelVersion", on_delete=models.PROTECT, related_name="fairness_audits"
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    attributes = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    reasons = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    # Set when a worker claims the audit and renewed with its progress: a running audit
    # whose heartbeat is older than FAIRNESS_AUDIT_LEASE_SECONDS lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = FairnessAuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("run_audit", "Can run fairness audits"),
            ("view_fairness", "Can view fairness audits and reports"),
        ]

    def __str__(self):
        return f"Fairness audit #{self.pk} of {self.version}"

    def save(self, *args, **kwargs):
        if self.pk is not None and self._stored_complete():
            raise AuditImmutableError(f"fairness audit #{self.pk} is complete and cannot change")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.pk is not None and self._stored_complete():
            raise AuditImmutableError(
                f"fairness audit #{self.pk} is complete and cannot be deleted"
            )
        return super().delete(*args, **kwargs)

    def _stored_complete(self) -> bool:
        return type(self).objects.filter(pk=self.pk, status=self.Status.COMPLETE).exists()

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.COMPLETE, self.Status.FAILED)

    @property
    def groups(self) -> list[dict]:
        return self.result.get("groups", [])

    @property
    def data_summary(self) -> dict:
        return self.result.get("data", {})
