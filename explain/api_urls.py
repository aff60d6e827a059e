from django.urls import path

from explain import api

urlpatterns = [
    path(
        "ml/explain/<str:incident_id>",
        api.IncidentExplanationView.as_view(),
        name="explain-incident",
    ),
]
