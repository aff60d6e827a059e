from django.urls import path, re_path

from fairness import views

app_name = "fairness"
urlpatterns = [
    path("", views.index, name="index"),
    path("models/<slug:name>/", views.model_audits, name="model"),
    path("versions/<int:pk>/", views.version_audits, name="version"),
    path("versions/<int:pk>/run/", views.audit_run, name="run"),
    path("versions/<int:pk>/report/", views.version_report, name="report"),
    re_path(
        r"^versions/(?P<pk>[0-9]+)/report\.(?P<fmt>csv|json)$",
        views.version_report_export,
        name="report-export",
    ),
    path("audits/<int:pk>/", views.audit_detail, name="audit"),
]
