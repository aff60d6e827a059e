from django.urls import path

from fairness import api

urlpatterns = [
    path("fairness/audits/", api.AuditListView.as_view(), name="api-fairness-audits"),
    path("fairness/audits/<int:pk>/", api.AuditDetailView.as_view(), name="api-fairness-audit"),
]
