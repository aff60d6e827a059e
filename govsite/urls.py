from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from govsite import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file, so that the page
    # runs under the site's Content-Security-Policy without inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("registry.api_urls")),
    path("api/v1/", include("monitoring.api_urls")),
    path("api/v1/", include("fairness.api_urls")),
    path("api/", include("explain.api_urls")),
    path("registry/", include("registry.urls")),
    path("registry/", include("experiments.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("", include("monitoring.metrics")),  # /metrics for Prometheus
    path("explain/", include("explain.urls")),
    path("fairness/", include("fairness.urls")),
]
handler404 = "govsite.views.not_found"
