from rest_framework import serializers

from registry.models import MLModel, MLModelVersion


class MLModelSerializer(serializers.ModelSerializer):
    production_version = serializers.SerializerMethodField()

    class Meta:
        model = MLModel
        fields = [
            "name", "description", "required_approvals", "fairness_gate",
            "min_precision", "min_recall", "min_f1", "min_auc", "production_version",
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
            "id", "model", "version", "status", "created_at", "model_hash", "artifact_format",
            "training_dataset_hash", "training_samples", "training_duration_seconds",
            "hyperparameters", "accuracy", "precision", "recall", "f1_score", "auc",
            "decision_threshold", "feature_schema", "reference_summary", "intended_use",
            "limitations", "ethical_considerations", "evaluation_data", "parent",
            "registered_by", "deployed_at", "deprecated_at", "approved_by", "approved_at",
            "approval_notes", "traffic_percentage",
        ]
        read_only_fields = fields


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
