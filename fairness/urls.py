from django.urls import path

from fairness import views

app_name = "fairness"
urlpatterns = [
    path("", views.index, name="index"),
]
