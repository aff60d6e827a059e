from rest_framework import serializers

from registry.models import MLModel, MLModelVersion


class MLModelSerializer(serializers.ModelSerializer):
    production_version = serializers.SerializerMethodField()

    class Meta:
        model = MLModel
        fields = [
            "name",
            "description",
            "required_approvals",
            "fairness_gate",
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
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    registered_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    parent = serializers.SlugRelatedField(slug_field="version", read_only=True)

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
        import json

        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise serializers.ValidationError(f"metadata is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise serializers.ValidationError("metadata must be a JSON object")
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
