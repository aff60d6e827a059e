from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from monitoring import governance
        from registry import extensions

        extensions.provide_reference_builder(governance.reference_from_evaluation)
        extensions.provide_recent_entities(governance.entities_seen_since)
        extensions.add_evidence_section("drift", governance.drift_evidence)
