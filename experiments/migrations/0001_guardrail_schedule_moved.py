"""The guardrail check's task moved from registry to experiments: point its beat entry
at the new name (schedule and enabled flag kept)."""

from django.db import migrations

from core.beat import entry_move

NAME = "A/B guardrails: roll back a failing challenger"


def forward(apps, schema_editor):
    entry_move(
        apps,
        old_name=NAME,
        old_task="registry.tasks.experiment_guardrails_check",
        new_name=NAME,
        new_task="experiments.tasks.experiment_guardrails_check",
    )


def backward(apps, schema_editor):
    entry_move(
        apps,
        old_name=NAME,
        old_task="experiments.tasks.experiment_guardrails_check",
        new_name=NAME,
        new_task="registry.tasks.experiment_guardrails_check",
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("registry", "0005_ab_guardrail_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forward, backward)]
