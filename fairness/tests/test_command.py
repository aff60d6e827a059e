import io

import pytest
from django.core.management import CommandError, call_command

from fairness.models import FairnessAudit

pytestmark = pytest.mark.django_db


def test_the_command_runs_an_audit_with_a_progress_bar(register_trained, biased_training):
    version = register_trained(biased_training, model="cli")
    out, err = io.StringIO(), io.StringIO()
    call_command("fairness_audit", "cli", "1.0.0", stdout=out, stderr=err)
    audit = FairnessAudit.objects.get(version=version)
    assert audit.status == "complete" and audit.trigger == "manual"
    assert f"audit #{audit.pk} of cli 1.0.0: fail" in out.getvalue()
    assert "APAC: fpr impact ratio" in out.getvalue()
    assert "100/100" in err.getvalue()  # tqdm writes its bar to stderr


def test_the_command_refuses_bad_input_and_stores_nothing(register_trained, fair_training):
    register_trained(fair_training, model="cli")
    for args, message in [
        (["cli", "9.9.9"], "not registered"),
        (["cli", "1.0.0", "--attributes", "nope"], "no attribute nope"),
        (["cli", "1.0.0", "--source", "logged"], "needs period_start"),
        (["cli", "1.0.0", "--source", "logged", "--start", "yesterday", "--end", "x"], "ISO"),
        (["cli", "1.0.0", "--user", "ghost"], "no user"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("fairness_audit", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert FairnessAudit.objects.count() == 0
