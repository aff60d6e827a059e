"""Prediction log, label feedback and alerts."""

import numpy as np
from django.conf import settings
from django.db import models


class PredictionLog(models.Model):
    class Role(models.TextChoices):
        CHAMPION = "champion"
        CHALLENGER = "challenger"
        SHADOW = "shadow"

    version = models.ForeignKey(
        "registry.MLModelVersion", on_delete=models.PROTECT, related_name="predictions"
    )
    request_id = models.CharField(max_length=128, unique=True)
    incident_id = models.CharField(max_length=128, blank=True, db_index=True)
    entity = models.CharField(max_length=256, blank=True)
    # Little-endian float64 values in the version's feature-schema order: a window
    # of rows becomes one numpy matrix with a single frombuffer, no JSON parsing.
    features = models.BinaryField()
    score = models.FloatField()
    confidence = models.FloatField(null=True, blank=True)
    decision = models.BooleanField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CHAMPION)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(help_text="Event time (from the item, else arrival)")
    received_at = models.DateTimeField(auto_now_add=True)
    label = models.SmallIntegerField(null=True, blank=True, help_text="1 threat, 0 benign")
    labelled_at = models.DateTimeField(null=True, blank=True)
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        indexes = [
            models.Index(fields=["version", "created_at"], name="pred_version_time"),
            # Performance windows and logged fairness audits read only labelled rows.
            models.Index(
                fields=["version", "created_at"],
                condition=models.Q(label__isnull=False),
                name="pred_labelled_time",
            ),
        ]
        permissions = [
            ("log_prediction", "Can log predictions"),
            ("give_feedback", "Can record analyst verdicts"),
            ("view_monitoring", "Can view monitoring dashboards"),
            ("run_drift", "Can run drift jobs on demand"),
        ]

    def __str__(self):
        return self.request_id

    def feature_vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.features), dtype="<f8")

    def feature_dict(self) -> dict[str, float]:
        return dict(zip(self.version.feature_names, self.feature_vector().tolist(), strict=True))


class FeedbackEvent(models.Model):
    """Every verdict ever given; PredictionLog.label holds the latest."""

    prediction = models.ForeignKey(
        PredictionLog, on_delete=models.CASCADE, related_name="feedback_events"
    )
    label = models.SmallIntegerField()
    previous_label = models.SmallIntegerField(null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"verdict {self.label} on {self.prediction_id}"


class Alert(models.Model):
    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    model = models.ForeignKey("registry.MLModel", on_delete=models.CASCADE, related_name="alerts")
    version = models.ForeignKey(
        "registry.MLModelVersion", null=True, blank=True, on_delete=models.CASCADE
    )
    kind = models.CharField(max_length=32)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    dedupe_key = models.CharField(max_length=200, db_index=True)
    title = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)
    clear_windows = models.PositiveIntegerField(default=0)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty when the condition cleared by itself.",
    )

    ACTIVE = (Status.OPEN, Status.ACKNOWLEDGED)

    class Meta:
        ordering = ["-last_seen"]
        permissions = [("manage_alert", "Can acknowledge and resolve alerts")]
        constraints = [
            # One live alert per condition: repeats update it (see monitoring.alerts).
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=~models.Q(status="resolved"),
                name="one_active_alert_per_key",
            )
        ]
        indexes = [models.Index(fields=["model", "status"], name="alert_model_status")]

    def __str__(self):
        return self.title


class DriftRun(models.Model):
    """One drift/performance job over a range of windows, with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        UI = "ui"
        API = "api"
        CLI = "cli"
        DEMO = "demo"

    model = models.ForeignKey("registry.MLModel", on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField(help_text="Start of the first window")
    end = models.DateTimeField(help_text="End of the last window (exclusive)")
    window_minutes = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    windows_total = models.PositiveIntegerField(default=0)
    windows_done = models.PositiveIntegerField(default=0)
    rows_read = models.PositiveBigIntegerField(default=0)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Renewed after every window: a running run whose lease lapsed lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker claimed the run")
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"drift run #{self.pk} of {self.model_id} ({self.status})"

    @property
    def progress(self) -> float:
        return self.windows_done / self.windows_total if self.windows_total else 0.0


class DriftResult(models.Model):
    """Drift statistics of one version over one window; re-runs replace the row."""

    version = models.ForeignKey(
        "registry.MLModelVersion", on_delete=models.CASCADE, related_name="drift_results"
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    span_start = models.DateTimeField(
        help_text="Start of the compared period (window_start, or earlier for a trailing span)"
    )
    n_rows = models.PositiveIntegerField(help_text="Predictions in the compared period")
    status = models.CharField(max_length=20, help_text="ok or insufficient_data")
    drift = models.BooleanField(null=True)
    severity = models.CharField(max_length=16, blank=True)
    share_drifted = models.FloatField(null=True)
    drifted_features = models.JSONField(default=list)
    score_psi = models.FloatField(null=True)
    score_mean = models.FloatField(null=True)
    # Per feature: drift_core.FeatureResult.to_dict() (statistics, p-values, verdict).
    features = models.JSONField(default=dict)
    dataset = models.JSONField(default=dict)
    # Page-Hinkley changes signalled while this window's scores were streamed.
    score_changes = models.PositiveIntegerField(default=0)
    run = models.ForeignKey(DriftRun, null=True, blank=True, on_delete=models.SET_NULL)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["version", "window_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "window_start", "window_end"], name="uniq_drift_window"
            )
        ]

    def __str__(self):
        return f"drift of {self.version_id} at {self.window_start:%Y-%m-%d %H:%M}"


class PerformanceResult(models.Model):
    """Labelled-feedback metrics of one version over one window."""

    version = models.ForeignKey(
        "registry.MLModelVersion", on_delete=models.CASCADE, related_name="performance_results"
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    n_predictions = models.PositiveIntegerField()
    n_labels = models.PositiveIntegerField()
    n_positive = models.PositiveIntegerField()
    status = models.CharField(max_length=20, help_text="ok or insufficient_labels")
    precision = models.FloatField(null=True)
    recall = models.FloatField(null=True)
    f1 = models.FloatField(null=True)
    auc = models.FloatField(null=True)
    # Metric name -> {"registered", "observed", "drop"} for drops beyond the threshold.
    degraded = models.JSONField(default=dict)
    run = models.ForeignKey(DriftRun, null=True, blank=True, on_delete=models.SET_NULL)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["version", "window_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "window_start", "window_end"], name="uniq_performance_window"
            )
        ]

    def __str__(self):
        return f"performance of {self.version_id} at {self.window_start:%Y-%m-%d %H:%M}"


class DetectorState(models.Model):
    """Page-Hinkley state on a version's score stream, kept between worker runs."""

    version = models.OneToOneField(
        "registry.MLModelVersion", on_delete=models.CASCADE, related_name="detector_state"
    )
    state = models.JSONField(help_text="drift_core.PageHinkley.state_dict()")
    # Scores are streamed in (created_at, id) order up to this point.
    cursor_time = models.DateTimeField(null=True, blank=True)
    cursor_id = models.BigIntegerField(default=0)
    changes = models.PositiveIntegerField(default=0)
    last_change_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Page-Hinkley state of {self.version_id}"
