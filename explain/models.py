"""Cached SHAP explanations, keyed by the exact version and feature vector."""

import numpy as np
from django.db import models


class Explanation(models.Model):
    version = models.ForeignKey(
        "registry.MLModelVersion", on_delete=models.CASCADE, related_name="explanations"
    )
    feature_hash = models.CharField(max_length=64, help_text="SHA-256 of the float64 features")
    base_value = models.FloatField()
    margin = models.FloatField()
    probability = models.FloatField()
    contributions = models.BinaryField(help_text="float64 SHAP values in schema order")
    # The explained row itself, so global views (beeswarm colours) need no join back
    # to the prediction log, whose rows may be pruned by retention.
    features = models.BinaryField(default=b"", help_text="float64 feature values in schema order")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "feature_hash"], name="uniq_explanation")
        ]
        indexes = [models.Index(fields=["version", "-created_at"], name="explanation_version_time")]
        permissions = [("view_explanations", "Can view prediction explanations")]

    def __str__(self):
        return f"explanation {self.feature_hash[:12]} of {self.version_id}"

    def contribution_vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.contributions), dtype="<f8")

    def feature_vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.features), dtype="<f8")
