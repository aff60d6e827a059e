"""Monitoring API routes: ingest and feedback (api_ingest), drift and alerts (api_drift)."""

from monitoring import api_drift, api_ingest

urlpatterns = api_ingest.urlpatterns + api_drift.urlpatterns
