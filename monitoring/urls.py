from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("", views.index, name="index"),
    path("runs/<int:pk>/", views.run_status, name="run-status"),
    path(
        "alerts/<int:pk>/acknowledge/",
        views.alert_action,
        {"verb": "acknowledge"},
        name="alert-acknowledge",
    ),
    path("alerts/<int:pk>/resolve/", views.alert_action, {"verb": "resolve"}, name="alert-resolve"),
    path("<slug:name>/", views.dashboard, name="dashboard"),
    path("<slug:name>/run/", views.run_now, name="run-now"),
]
