from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from fairness.models import FairnessAudit


class RunAuditForm(forms.Form):
    """The "Run audit" form on the version page; dates are whole UTC days, end inclusive."""

    source = forms.ChoiceField(choices=FairnessAudit.Source.choices)
    period_start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    attributes = forms.CharField(
        max_length=200, initial="geo_region", help_text="Comma-separated, e.g. geo_region"
    )

    def clean_attributes(self):
        return [a.strip() for a in self.cleaned_data["attributes"].split(",") if a.strip()]

    def audit_params(self) -> dict:
        data = self.cleaned_data
        tz = timezone.get_current_timezone()
        start, end = data.get("period_start"), data.get("period_end")
        return {
            "source": data["source"],
            "attributes": data["attributes"],
            "period_start": datetime.combine(start, time.min, tz) if start else None,
            "period_end": datetime.combine(end + timedelta(days=1), time.min, tz) if end else None,
        }
