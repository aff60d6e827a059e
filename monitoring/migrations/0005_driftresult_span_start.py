"""Drift results record the start of the compared period (a trailing span by default)."""

from django.db import migrations, models
from django.db.models import F


def copy_window_start(apps, schema_editor):
    apps.get_model("monitoring", "DriftResult").objects.update(span_start=F("window_start"))


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0004_drift_schedule_sync")]

    operations = [
        migrations.AddField(
            model_name="driftresult",
            name="span_start",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(copy_window_start, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="driftresult",
            name="span_start",
            field=models.DateTimeField(
                help_text="Start of the compared period (window_start, or earlier for a "
                "trailing span)"
            ),
        ),
        migrations.AlterField(
            model_name="driftresult",
            name="n_rows",
            field=models.PositiveIntegerField(help_text="Predictions in the compared period"),
        ),
    ]
