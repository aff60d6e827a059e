"""The SOC backend's explanation endpoint: GET /api/ml/explain/{incident_id}."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiError, require_perms
from explain.selectors import explanation_payload, incident_prediction
from explain.services import explanation_for_prediction
from explain.shap_core import TOP_K

MAX_TOP_K = 50


def _top_k(raw: str | None) -> int:
    if raw in (None, ""):
        return TOP_K
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TOP_K:
        raise ApiError(
            f"top_k must be an integer from 1 to {MAX_TOP_K}", {"field": "top_k", "value": raw}
        )
    return value


class IncidentExplanationView(APIView):
    """SHAP explanation (log-odds) of an incident's prediction by the version that scored it.

    With several predictions for the incident (A/B or shadow), the acting one
    (champion or challenger) is explained unless ``version`` picks another.
    """

    permission_classes = [require_perms("explain.view_explanations")]

    @extend_schema(
        parameters=[
            OpenApiParameter("version", str, description="semver or id of the scoring version"),
            OpenApiParameter("model", str, description="model name, when several scored it"),
            OpenApiParameter("top_k", int, description=f"entries per top list (1-{MAX_TOP_K})"),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, incident_id: str):
        top_k = _top_k(request.query_params.get("top_k"))
        prediction = incident_prediction(
            incident_id=incident_id,
            version=request.query_params.get("version") or None,
            model=request.query_params.get("model") or None,
        )
        explanation, cached = explanation_for_prediction(prediction=prediction, actor=request.user)
        return Response(
            explanation_payload(
                prediction=prediction, explanation=explanation, cached=cached, top_k=top_k
            )
        )
