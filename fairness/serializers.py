from typing import TYPE_CHECKING

from django.urls import reverse
from rest_framework import serializers

from fairness.models import FairnessAudit
from fairness.services import MAX_ATTRIBUTES

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class AuditRequestSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="Id of the model version")
    # A field named "source": the stubs know only Field.source (the attribute path).
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=FairnessAudit.Source.choices, default=FairnessAudit.Source.EVALUATION
    )
    period_start = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Logged source: first event time (inclusive)"
    )
    period_end = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Logged source: last event time (exclusive)"
    )
    attributes = serializers.ListField(
        child=serializers.CharField(max_length=64),
        min_length=1,
        max_length=MAX_ATTRIBUTES,
        default=["geo_region"],
        help_text="Sensitive attributes; several give intersectional groups",
    )

    def to_internal_value(self, data):
        if not hasattr(data, "keys"):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = set(data.keys()) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in sorted(unknown)})
        return super().to_internal_value(data)


class FairnessAuditSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="version.model.name")
    version_label = serializers.CharField(source="version.version")
    requested_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    verdict = serializers.ChoiceField(
        FairnessAudit.Verdict.choices,
        allow_blank=True,
        read_only=True,
        help_text="empty until the audit completes",
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = FairnessAudit
        fields = [
            "id",
            "model",
            "version",
            "version_label",
            "source",
            "period_start",
            "period_end",
            "attributes",
            "status",
            "progress",
            "verdict",
            "reasons",
            "trigger",
            "requested_by",
            "created_at",
            "completed_at",
            "url",
            "result",
        ]
        read_only_fields = fields

    def get_url(self, obj) -> str:
        return reverse("fairness:audit", args=[obj.pk])
