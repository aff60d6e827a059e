"""Monitoring API routes: ingest and feedback (api_ingest), drift and alerts (api_drift)."""

from importlib import import_module

urlpatterns = []
for name in ("monitoring.api_ingest", "monitoring.api_drift"):
    try:
        urlpatterns += import_module(name).urlpatterns
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
