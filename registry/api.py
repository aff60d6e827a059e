"""Registry API: read endpoints (workflow endpoints live beside them)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from govsite.api import require_perms
from registry.models import MLModel
from registry.selectors import version_list
from registry.serializers import MeSerializer, MLModelSerializer, MLModelVersionSerializer

CanViewRegistry = require_perms("registry.view_mlmodelversion")


class MeView(APIView):
    """Who the caller is and which roles it holds."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        roles = [g.name for g in request.user.groups.all()]
        return Response({"username": request.user.username, "roles": roles})


class ModelListView(generics.ListAPIView):
    serializer_class = MLModelSerializer
    permission_classes = [CanViewRegistry]
    queryset = MLModel.objects.all()


class VersionListView(generics.ListAPIView):
    serializer_class = MLModelVersionSerializer
    permission_classes = [CanViewRegistry]

    def get_queryset(self):
        model = get_object_or_404(MLModel, name=self.kwargs["name"])
        return version_list(model=model)


class VersionDetailView(generics.RetrieveAPIView):
    serializer_class = MLModelVersionSerializer
    permission_classes = [CanViewRegistry]
    queryset = version_list()
