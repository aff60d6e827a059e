from django.apps import AppConfig


class FairnessConfig(AppConfig):
    name = "fairness"
    verbose_name = "Fairness"

    def ready(self):
        from fairness import gate
        from registry import extensions

        extensions.add_evidence_section("fairness", gate.fairness_evidence)
        extensions.add_gate_check(gate.fairness_gate_checks)
        extensions.on_approval_requested(gate.audit_on_approval_request)
