from django.urls import path

from explain import views

app_name = "explain"
urlpatterns = [
    path("", views.index, name="index"),
    path("incidents/<str:incident_id>/", views.incident, name="incident"),
    path("incidents/<str:incident_id>/compare/", views.compare, name="compare"),
    path("incidents/<str:incident_id>/verdict/", views.verdict, name="verdict"),
    path("versions/<int:pk>/importance/", views.importance, name="importance"),
]
