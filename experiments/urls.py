from django.urls import path

from experiments import views

app_name = "experiments"
urlpatterns = [
    path("models/<slug:name>/experiment/", views.experiment_page, name="experiment"),
]
