from decimal import Decimal
from typing import TYPE_CHECKING

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import has_unstorable_text, json_loads_strict
from registry.extensions import evidence_section
from registry.models import MLModel, MLModelVersion

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class MLModelSerializer(serializers.ModelSerializer):
    production_version = serializers.SerializerMethodField()

    class Meta:
        model = MLModel
        fields = [
            "name",
            "display_label",
            "description",
            "required_approvals",
            "fairness_gate",
            "protected_attributes",
            "min_precision",
            "min_recall",
            "min_f1",
            "min_auc",
            "production_version",
            "created_at",
        ]

    def get_production_version(self, obj) -> str | None:
        version = obj.production_version()
        return version.version if version else None


class MLModelVersionSerializer(serializers.ModelSerializer):
    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    registered_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    approved_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    # A field named "parent": the stubs know only Field.parent (the enclosing serializer).
    parent: serializers.SlugRelatedField[MLModelVersion] = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="version", read_only=True, allow_null=True
    )

    class Meta:
        model = MLModelVersion
        fields = [
            "id",
            "model",
            "version",
            "status",
            "created_at",
            "model_hash",
            "artifact_format",
            "training_dataset_hash",
            "training_samples",
            "training_duration_seconds",
            "hyperparameters",
            "accuracy",
            "precision",
            "recall",
            "f1_score",
            "auc",
            "metrics_source",
            "decision_threshold",
            "feature_schema",
            "reference_summary",
            "intended_use",
            "limitations",
            "ethical_considerations",
            "evaluation_data",
            "parent",
            "registered_by",
            "deployed_at",
            "deprecated_at",
            "approved_by",
            "approved_at",
            "approval_notes",
            "traffic_percentage",
        ]
        read_only_fields = fields


class FairnessAuditSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    attributes = serializers.ListField(child=serializers.CharField())
    # A field named "source": the stubs know only Field.source (the attribute path).
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="evaluation (the stored set) or logged (traffic)"
    )
    status = serializers.CharField()
    verdict = serializers.CharField(allow_blank=True)
    reasons = serializers.ListField(child=serializers.DictField())
    trigger = serializers.CharField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField(help_text="The audit's page")


class FairnessDecisionSerializer(serializers.Serializer):
    attribute = serializers.CharField()
    passed = serializers.BooleanField()
    deciding_audits = serializers.ListField(child=serializers.IntegerField())
    detail = serializers.CharField()


class FairnessEvidenceSerializer(serializers.Serializer):
    gate = serializers.BooleanField(help_text="Whether the model's policy turns the gate on")
    protected_attributes = serializers.ListField(child=serializers.CharField())
    decisions = FairnessDecisionSerializer(many=True, help_text="The gate, per attribute")
    audits = FairnessAuditSummarySerializer(many=True, help_text="Every audit, newest first")


class MLModelVersionDetailSerializer(MLModelVersionSerializer):
    """One version with every fairness audit of it and the gate's decision."""

    fairness = serializers.SerializerMethodField()

    class Meta(MLModelVersionSerializer.Meta):
        fields = [*MLModelVersionSerializer.Meta.fields, "fairness"]
        read_only_fields = fields

    @extend_schema_field(FairnessEvidenceSerializer(allow_null=True))
    def get_fairness(self, obj) -> dict | None:
        return evidence_section("fairness", obj)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class RegisterVersionSerializer(serializers.Serializer):
    version = serializers.CharField(max_length=32)
    artifact = serializers.FileField(help_text="XGBoost model in JSON or UBJSON format")
    metadata = serializers.CharField(
        help_text="JSON object: feature_schema (required), metrics, hyperparameters, model card"
    )
    evaluation = serializers.FileField(
        required=False,
        help_text=".npz with X (rows x features), optional y and group attributes (held-out data)",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    MAX_ARTIFACT_BYTES = 256 * 1024 * 1024

    def validate_metadata(self, value):
        try:
            parsed = json_loads_strict(value)
        except ValueError as exc:
            raise serializers.ValidationError(f"metadata is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise serializers.ValidationError("metadata must be a JSON object")
        if has_unstorable_text(parsed):
            raise serializers.ValidationError(
                "metadata must not contain NUL characters or unpaired surrogates"
            )
        return parsed

    def validate_artifact(self, value):
        if value.size > self.MAX_ARTIFACT_BYTES:
            raise serializers.ValidationError("artifact is larger than 256 MiB")
        return value


class NotesSerializer(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class TransitionSerializer(NotesSerializer):
    to = serializers.ChoiceField(choices=MLModelVersion.Status.choices)


class ApprovalRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.CharField(source="version.version")
    model = serializers.CharField(source="version.model.name")
    status = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    requested_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    evidence = serializers.JSONField()


# --- A/B traffic -------------------------------------------------------------------


class TrafficSetSerializer(serializers.Serializer):
    """PUT /api/v1/models/{name}/traffic/: the whole split at once (absent challenger: none)."""

    challenger = serializers.CharField(
        required=False, allow_null=True, default=None, max_length=32, help_text="semver or null"
    )
    challenger_percentage = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=0,
        max_value=100,
        required=False,
        default=Decimal(0),
    )
    champion_percentage = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=0,
        max_value=100,
        required=False,
        help_text="optional; when given it must equal 100 - challenger_percentage",
    )
    shadows = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, default=list, max_length=20
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    hypothesis = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=5000
    )
    primary_metric = serializers.ChoiceField(
        choices=["precision", "recall", "accuracy"], required=False, default="precision"
    )
    minimum_sample_size = serializers.IntegerField(
        min_value=30, max_value=10_000_000, required=False, default=400
    )
    alpha = serializers.FloatField(min_value=0.001, max_value=0.2, required=False, default=0.05)
    revision = serializers.IntegerField(
        min_value=0,
        required=False,
        help_text="the revision you read; a mismatch answers 412 instead of overwriting",
    )

    def validate(self, attrs):
        unknown = set(getattr(self, "initial_data", {}) or {}) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({f: ["unknown field"] for f in sorted(unknown)})
        champion = attrs.get("champion_percentage")
        if champion is not None and champion + attrs["challenger_percentage"] != 100:
            raise serializers.ValidationError(
                {"champion_percentage": ["champion and challenger percentages must sum to 100"]}
            )
        if attrs["challenger"] is None and attrs["challenger_percentage"]:
            raise serializers.ValidationError(
                {"challenger": ["a challenger_percentage above 0 needs a challenger version"]}
            )
        attrs["challenger_bp"] = int(attrs["challenger_percentage"] * 100)
        return attrs


class TrafficEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.CharField()
    status = serializers.CharField()
    share_bp = serializers.IntegerField()
    percentage = serializers.FloatField()


class TrafficConfigSerializer(serializers.Serializer):
    model = serializers.CharField()
    revision = serializers.IntegerField()
    salt = serializers.CharField()
    assignment = serializers.CharField()
    champion = TrafficEntrySerializer(allow_null=True)
    challenger = TrafficEntrySerializer(allow_null=True)
    shadows = TrafficEntrySerializer(many=True)


class RouteSerializer(serializers.Serializer):
    model = serializers.CharField()
    entity = serializers.CharField()
    version = serializers.CharField()
    version_id = serializers.IntegerField()
    arm = serializers.ChoiceField(choices=["champion", "challenger"])
    shadows = serializers.ListField(child=serializers.DictField())
