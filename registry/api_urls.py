from django.urls import path

from registry import api

urlpatterns = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("models/", api.ModelListView.as_view(), name="api-models"),
    path("models/<slug:name>/versions/", api.VersionListView.as_view(), name="api-versions"),
    path("versions/<int:pk>/", api.VersionDetailView.as_view(), name="api-version"),
]
