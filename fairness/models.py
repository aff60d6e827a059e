"""Fairness audits of a model version."""

from django.conf import settings
from django.db import models


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
    trigger = models.CharField(max_length=16, default="manual")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("run_audit", "Can run fairness audits"),
            ("view_fairness", "Can view fairness audits and reports"),
        ]

    def __str__(self):
        return f"Fairness audit #{self.pk} of {self.version}"
