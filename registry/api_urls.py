from django.urls import path

from registry import api

urlpatterns = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("models/", api.ModelListView.as_view(), name="api-models"),
    path("models/<slug:name>/versions/", api.VersionListView.as_view(), name="api-versions"),
    path("models/<slug:name>/rollback/", api.RollbackView.as_view(), name="api-rollback"),
    path("models/<slug:name>/traffic/", api.TrafficView.as_view(), name="api-traffic"),
    path("models/<slug:name>/route/", api.RouteView.as_view(), name="api-route"),
    path("versions/<int:pk>/", api.VersionDetailView.as_view(), name="api-version"),
    path(
        "versions/<int:pk>/request-approval/",
        api.RequestApprovalView.as_view(),
        name="api-request-approval",
    ),
    path("versions/<int:pk>/approve/", api.ApproveView.as_view(), name="api-approve"),
    path("versions/<int:pk>/reject/", api.RejectView.as_view(), name="api-reject"),
    path("versions/<int:pk>/transition/", api.TransitionView.as_view(), name="api-transition"),
]
