"""Registry data model: models, versions, approvals, traffic splits and experiments."""

import re
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

SEMVER_RE = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


def validate_semver(value: str) -> None:
    if not SEMVER_RE.match(value or ""):
        raise ValidationError(
            f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.0)",
            code="semver",
        )


def semver_key(value: str) -> tuple:
    """Sort key for semver strings; a release sorts after its pre-releases."""
    match = SEMVER_RE.match(value)
    if not match:
        return (-1, -1, -1, 0, "")
    major, minor, patch, pre, _ = match.groups()
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre or "")


def _new_salt() -> str:
    return secrets.token_hex(8)


FLOOR_FIELDS = ("min_precision", "min_recall", "min_f1", "min_auc")
POLICY_FIELDS = ("required_approvals", "fairness_gate", "protected_attributes", *FLOOR_FIELDS)


def default_protected_attributes() -> list[str]:
    return ["geo_region"]


class MLModel(models.Model):
    # The SOC backend's key for routing and logging: fixed once the model has a version.
    name = models.SlugField(max_length=64, unique=True)
    display_label = models.CharField(
        max_length=100, blank=True, help_text="Friendlier name shown on pages (the name stays)."
    )
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_models",
    )
    feature_schema = models.JSONField(
        default=list, blank=True, help_text="Default ordered feature schema for new versions."
    )
    # Approval policy.
    min_precision = models.FloatField(null=True, blank=True)
    min_recall = models.FloatField(null=True, blank=True)
    min_f1 = models.FloatField(null=True, blank=True)
    min_auc = models.FloatField(null=True, blank=True)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    fairness_gate = models.BooleanField(
        default=True,
        help_text="Require a complete, passing fairness audit of every protected attribute "
        "before approval and promotion.",
    )
    policy_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    protected_attributes = models.JSONField(
        default=default_protected_attributes,
        blank=True,
        help_text='Attributes the fairness gate audits, e.g. ["geo_region"]. Set by approvers.',
    )
    # Monitoring and explanation policy.
    drift_window_minutes = models.PositiveIntegerField(default=60)
    degradation_threshold = models.FloatField(
        default=0.1, help_text="Alert when a labelled metric falls by more than this."
    )
    explain_threshold = models.FloatField(
        default=0.7, help_text="Precompute explanations for predictions scoring above this."
    )
    experiment_salt = models.CharField(max_length=32, default=_new_salt)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model"

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.pk is not None:
            stored = type(self).objects.filter(pk=self.pk).values_list("name", flat=True).first()
            if stored is not None and stored != self.name and self.versions.exists():
                raise ValidationError(
                    {
                        "name": f"{stored} has versions: its name is the SOC's key and cannot "
                        "change (set a display label instead)"
                    }
                )
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        return self.display_label or self.name

    def policy(self) -> dict[str, Any]:
        """What decides whether a version may pass (registry.policy changes it)."""
        return {
            "required_approvals": self.required_approvals,
            "fairness_gate": self.fairness_gate,
            "protected_attributes": sorted(self.protected_attributes or []),
            **{f: getattr(self, f) for f in FLOOR_FIELDS},
        }

    def production_version(self) -> "MLModelVersion | None":
        return self.versions.filter(status=MLModelVersion.Status.PRODUCTION).first()


class MLModelVersion(models.Model):
    class Status(models.TextChoices):
        TRAINING = "training"
        TESTING = "testing"
        STAGING = "staging"
        PRODUCTION = "production"
        ARCHIVED = "archived"

    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=32, validators=[validate_semver])
    created_at = models.DateTimeField(auto_now_add=True)

    # Artifact (content-addressed, see registry.artifacts).
    model_path = models.CharField(max_length=512)
    model_hash = models.CharField(max_length=64, help_text="SHA-256 of the artifact file")
    artifact_format = models.CharField(max_length=8, default="json")

    # Training metadata.
    training_dataset_hash = models.CharField(max_length=64, blank=True)
    training_samples = models.PositiveIntegerField(null=True, blank=True)
    training_duration_seconds = models.FloatField(null=True, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)

    # Validation metrics.
    accuracy = models.FloatField(null=True, blank=True)
    precision = models.FloatField(null=True, blank=True)
    recall = models.FloatField(null=True, blank=True)
    f1_score = models.FloatField(null=True, blank=True)
    auc = models.FloatField(null=True, blank=True)
    decision_threshold = models.FloatField(default=0.5)

    class MetricsSource(models.TextChoices):
        EVALUATION = "evaluation", "Computed from the stored evaluation set"
        SELF_REPORTED = "self_reported", "Self-reported at registration"

    metrics_source = models.CharField(
        max_length=16, choices=MetricsSource.choices, default=MetricsSource.SELF_REPORTED
    )

    feature_schema = models.JSONField(help_text="Ordered [{name, type, levels?}]")
    reference_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the stored reference profile"
    )
    reference_summary = models.JSONField(default=dict, blank=True)
    evaluation_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the stored held-out evaluation set"
    )
    evaluation_rows = models.PositiveIntegerField(null=True, blank=True)

    # Model card.
    intended_use = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    ethical_considerations = models.TextField(blank=True)
    evaluation_data = models.TextField(blank=True)

    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="registered_versions",
    )

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.TRAINING, db_index=True
    )
    deployed_at = models.DateTimeField(null=True, blank=True)
    deprecated_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approved_versions",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approval_notes = models.TextField(blank=True)
    traffic_percentage = models.FloatField(default=0.0)

    class Meta:
        db_table = "ml_model_versions"
        ordering = ["model__name", "-created_at"]
        verbose_name = "model version"
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="uniq_model_version"),
            # At most one production champion per model, enforced by the database.
            models.UniqueConstraint(
                fields=["model"], condition=Q(status="production"), name="one_production_per_model"
            ),
            models.CheckConstraint(
                condition=Q(traffic_percentage__gte=0) & Q(traffic_percentage__lte=100),
                name="traffic_percentage_range",
            ),
        ]
        permissions = [
            ("register_version", "Can register model versions"),
            ("request_approval", "Can request approval of a version"),
            ("approve_version", "Can approve or reject versions"),
            ("promote_version", "Can promote, archive and roll back versions"),
            ("set_traffic", "Can change A/B traffic and shadow versions"),
        ]

    def __str__(self):
        return f"{self.model.name} {self.version}"

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.feature_schema]

    def metrics(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1_score": self.f1_score,
            "auc": self.auc,
        }

    def is_approved(self) -> bool:
        return self.approved_at is not None

    @property
    def metrics_self_reported(self) -> bool:
        return self.metrics_source == self.MetricsSource.SELF_REPORTED


class ApprovalRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"

    version = models.ForeignKey(
        MLModelVersion, on_delete=models.PROTECT, related_name="approval_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    evidence = models.JSONField(default=dict)
    evidence_hash = models.CharField(max_length=64)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["version"], condition=Q(status="pending"), name="one_pending_request"
            )
        ]

    def __str__(self):
        return f"Approval of {self.version} ({self.status})"


class ApprovalDecision(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.PROTECT, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    notes = models.TextField(blank=True)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["decided_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"], name="one_decision_per_approver"
            )
        ]

    def __str__(self):
        return f"{self.decision} by {self.approver_id}"


class PolicyChange(models.Model):
    """A proposed weakening of a model's approval policy: it takes effect only when a
    second approver, not the proposer, confirms it (registry.policy)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPLIED = "applied"
        REJECTED = "rejected"
        SUPERSEDED = "superseded"

    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="policy_changes")
    changes = models.JSONField(help_text='{"field": {"old": ..., "new": ...}}')
    notes = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="policy_proposals"
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="policy_decisions",
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-proposed_at"]
        verbose_name = "policy change"

    def __str__(self):
        return f"policy change #{self.pk} of {self.model.name} ({self.status})"


# --- A/B traffic and experiments (see docs/ab-testing.md) ----------------------------

BASIS_POINTS = 10_000  # 100 % of traffic; shares are stored in basis points so sums are exact


class TrafficSplit(models.Model):
    """The live split of one model: champion and challenger shares in one row.

    Both shares live in the same row so that a CheckConstraint can hold their sum at
    100 % in the database; writers lock the model row first (registry.traffic), so
    concurrent edits are serialised and never interleave.
    """

    model = models.OneToOneField(MLModel, on_delete=models.CASCADE, related_name="traffic")
    champion = models.ForeignKey(
        MLModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    challenger = models.ForeignKey(
        MLModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    champion_bp = models.PositiveIntegerField(default=BASIS_POINTS)
    challenger_bp = models.PositiveIntegerField(default=0)
    shadows = models.ManyToManyField(
        MLModelVersion, through="ShadowDeployment", related_name="shadowing", blank=True
    )
    revision = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "traffic split"
        constraints = [
            models.CheckConstraint(
                condition=Q(champion_bp__lte=BASIS_POINTS) & Q(challenger_bp__lte=BASIS_POINTS),
                name="traffic_split_range",
            ),
            models.CheckConstraint(
                condition=Q(champion_bp=BASIS_POINTS - models.F("challenger_bp")),
                name="traffic_split_sums_to_100",
            ),
            models.CheckConstraint(
                condition=Q(challenger__isnull=False) | Q(challenger_bp=0),
                name="traffic_split_share_needs_challenger",
            ),
        ]

    def __str__(self):
        return f"traffic of {self.model.name} (rev {self.revision})"

    @property
    def champion_percentage(self) -> float:
        return self.champion_bp / 100

    @property
    def challenger_percentage(self) -> float:
        return self.challenger_bp / 100


class ShadowDeployment(models.Model):
    """A version that scores every request of its model without acting on it."""

    split = models.ForeignKey(TrafficSplit, on_delete=models.CASCADE)
    version = models.ForeignKey(MLModelVersion, on_delete=models.PROTECT)
    added_at = models.DateTimeField(auto_now_add=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["split", "version"], name="one_shadow_per_version")
        ]

    def __str__(self):
        return f"{self.version} shadowing"


class Experiment(models.Model):
    """One champion-vs-challenger comparison: planned, then running while the challenger
    takes traffic, ended by a promotion, a replacement, a stop or a guardrail rollback."""

    class Status(models.TextChoices):
        PLANNED = "planned"
        RUNNING = "running"
        ROLLED_BACK = "rolled_back"
        ENDED = "ended"

    class Metric(models.TextChoices):
        PRECISION = "precision", "precision of flagged, analyst-labelled incidents"
        RECALL = "recall", "recall on analyst-confirmed threats"
        ACCURACY = "accuracy", "accuracy on analyst-labelled incidents"

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="experiments")
    champion = models.ForeignKey(
        MLModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    challenger = models.ForeignKey(MLModelVersion, on_delete=models.PROTECT, related_name="+")
    hypothesis = models.TextField(blank=True)
    primary_metric = models.CharField(
        max_length=16, choices=Metric.choices, default=Metric.PRECISION
    )
    minimum_sample_size = models.PositiveIntegerField(
        default=400, help_text="Labelled outcomes per arm before a conclusion is drawn."
    )
    alpha = models.FloatField(default=0.05)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PLANNED, db_index=True
    )
    challenger_bp = models.PositiveIntegerField(default=0, help_text="Current share (bp).")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)
    # Smallest always-valid p-value seen by any look (mixture SPRT; see experiments.py).
    min_p_value = models.FloatField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(status__in=["planned", "running"]),
                name="one_open_experiment_per_model",
            ),
            models.CheckConstraint(
                condition=Q(alpha__gt=0) & Q(alpha__lt=0.5), name="experiment_alpha_range"
            ),
        ]

    def __str__(self):
        return f"{self.model.name}: {self.challenger.version} vs champion ({self.status})"


class ExperimentEvent(models.Model):
    """The decision history of an experiment (also in the audit trail)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=32)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.action} on experiment {self.experiment_id}"
