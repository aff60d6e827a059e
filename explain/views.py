"""Explanation pages: incident list, incident waterfall, version comparison, global importance,
and the analyst's verdict form."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_date
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from core.chart_text import chart_text, chart_texts
from core.views import form_text, perm_required
from explain import charts
from explain.selectors import (
    IncidentFilters,
    IncidentNotFound,
    explained_keys,
    incident_list,
    incident_prediction,
    incident_predictions,
    incident_verdicts,
    version_importance,
)
from explain.services import ExplainInputError, ExplanationFailed, explanation_for_prediction
from monitoring.feedback import feedback_record_many
from registry.artifacts import ArtifactIntegrityError
from registry.models import MLModel, MLModelVersion

VIEW = "explain.view_explanations"
PAGE_SIZE = 50
VERDICTS = {"threat": 1, "benign": 0}


def _number(raw: str, field: str, errors: dict, cast=float):
    if raw in (None, ""):
        return None
    try:
        return cast(raw)
    except ValueError:
        errors[field] = f"{raw!r} is not a number"
        return None


def _date(raw: str):
    try:
        return parse_date(raw) if raw else None
    except ValueError:  # well formed but impossible, such as 2026-02-30
        return None


def _parse_filters(query) -> IncidentFilters:
    errors: dict = {}
    filters = IncidentFilters(
        model=query.get("model", "").strip(),
        version=_number(query.get("version", ""), "version", errors, int),
        score_min=_number(query.get("score_min", ""), "score_min", errors),
        score_max=_number(query.get("score_max", ""), "score_max", errors),
        verdict=query.get("verdict", ""),
        errors=errors,
    )
    for field in ("start", "end"):
        raw = query.get(field, "")
        value = _date(raw)
        if raw and value is None:
            errors[field] = f"{raw!r} is not a date (YYYY-MM-DD)"
        setattr(filters, field, value)
    if filters.version is not None and not 0 <= filters.version < 2**63:
        errors["version"] = f"{filters.version} is not a version id"
        filters.version = None
    if filters.verdict not in ("", "threat", "benign", "none"):
        errors["verdict"] = "verdict must be threat, benign or none"
        filters.verdict = ""
    return filters


@require_GET
@perm_required(VIEW)
def index(request):
    filters = _parse_filters(request.GET)
    page = Paginator(incident_list(filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "explain/index.html",
        {
            "page": page,
            "explained": explained_keys(list(page.object_list)),
            "filters": filters,
            "models": MLModel.objects.all(),
            "versions": MLModelVersion.objects.select_related("model").order_by(
                "model__name", "-created_at"
            ),
            "query": query.urlencode(),
        },
        status=400 if filters.errors else 200,
    )


class ExplainFailure(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message, self.status = message, status


def _explained(prediction, user) -> dict:
    """Explanation of one prediction with everything its waterfall and table need."""
    try:
        explanation, cached = explanation_for_prediction(prediction=prediction, actor=user)
    except ArtifactIntegrityError:
        raise ExplainFailure(
            f"The artifact of {prediction.version} failed verification; the incident cannot "
            "be explained until the registered file is restored. The failure is in the audit "
            "trail.",
            409,
        ) from None
    except ExplanationFailed as exc:
        raise ExplainFailure(f"No explanation: {exc.details['reason']}", 500) from None
    except ExplainInputError as exc:
        raise ExplainFailure(f"No explanation: {exc}", exc.status) from None
    rows = charts.feature_rows(
        prediction.version.feature_schema,
        prediction.feature_vector(),
        explanation.contribution_vector(),
    )
    return {
        "prediction": prediction,
        "version": prediction.version,
        "explanation": explanation,
        "cached": cached,
        "rows": rows,
        "base_probability": charts.sigmoid(explanation.base_value),
    }


def _lookup(incident_id: str, version: str | None):
    try:
        return incident_prediction(incident_id=incident_id, version=version)
    except IncidentNotFound as exc:
        raise Http404(exc.message) from None


def _top(request) -> int:
    raw = request.GET.get("top", "")
    ok = raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 50
    return int(raw) if ok else charts.WATERFALL_TOP


def _failure(request, incident_id, failure: ExplainFailure):
    return render(
        request,
        "explain/failure.html",
        {"incident_id": incident_id, "message": failure.message},
        status=failure.status,
    )


@require_GET
@perm_required(VIEW)
def incident(request, incident_id: str):
    prediction = _lookup(incident_id, request.GET.get("version") or None)
    try:
        context = _explained(prediction, request.user)
    except ExplainFailure as failure:
        return _failure(request, incident_id, failure)
    explanation = context["explanation"]
    context.update(
        incident_id=incident_id,
        waterfall=charts.waterfall(
            base_value=explanation.base_value,
            margin=explanation.margin,
            rows=context["rows"],
            top=_top(request),
        ),
        scored_by=list(incident_predictions(incident_id=incident_id)),
        verdicts=incident_verdicts(incident_id=incident_id),
        can_give_feedback=request.user.has_perm("monitoring.give_feedback"),
    )
    return render(request, "explain/incident.html", context)


@require_GET
@perm_required(VIEW)
def compare(request, incident_id: str):
    """Two versions' explanations of the same incident (A/B or shadow scoring)."""
    scored_by = list(incident_predictions(incident_id=incident_id))
    if not scored_by:
        raise Http404("no prediction is logged for this incident")
    a = request.GET.get("a") or scored_by[0].version.version
    b = request.GET.get("b") or (scored_by[1].version.version if len(scored_by) > 1 else a)
    try:
        sides = [_explained(_lookup(incident_id, v), request.user) for v in (a, b)]
    except ExplainFailure as failure:
        return _failure(request, incident_id, failure)
    for side in sides:
        side["waterfall"] = charts.waterfall(
            base_value=side["explanation"].base_value,
            margin=side["explanation"].margin,
            rows=side["rows"],
            top=_top(request),
        )
    return render(
        request,
        "explain/compare.html",
        {
            "incident_id": incident_id,
            "sides": sides,
            "scored_by": scored_by,
            "table": _comparison_table(sides),
            "charts": [side["waterfall"] for side in sides],
        },
    )


def _comparison_table(sides) -> list[dict]:
    """Per feature: value and contribution under each version, largest difference first."""
    by_name = [{r["name"]: r for r in side["rows"]} for side in sides]
    names = set(by_name[0]) | set(by_name[1])
    table = []
    for name in names:
        a, b = by_name[0].get(name), by_name[1].get(name)
        ca = a["contribution"] if a else None
        cb = b["contribution"] if b else None
        delta = cb - ca if ca is not None and cb is not None else None
        value = a["value"] if a else b["value"] if b else None
        table.append({"name": name, "value": value, "a": ca, "b": cb, "delta": delta})
    return sorted(table, key=lambda r: -abs(r["delta"] or 0.0))


@require_GET
@perm_required(VIEW)
def importance(request, pk: int):
    version = get_object_or_404(MLModelVersion.objects.select_related("model"), pk=pk)
    result = version_importance(version=version)
    chart = {
        "names": chart_texts(result.names),
        "mean_abs": result.mean_abs,
        "strips": [{**strip, "feature": chart_text(strip["feature"])} for strip in result.strips],
    }
    return render(
        request,
        "explain/importance.html",
        {
            "version": version,
            "result": result,
            "rows": list(zip(result.names, result.mean_abs, strict=True)),
            "chart": chart if result.count else None,
        },
    )


@require_POST
@perm_required("monitoring.give_feedback")
def verdict(request, incident_id: str):
    """Record the analyst's verdict on every prediction of the incident (all versions)."""
    predictions = list(incident_predictions(incident_id=incident_id))
    if not predictions:
        raise Http404("no prediction is logged for this incident")
    label = VERDICTS.get(request.POST.get("verdict", ""))
    if label is None:
        failure = ExplainFailure("Choose a verdict: threat or benign.", 400)
        return _failure(request, incident_id, failure)
    note = form_text(request, "note", 2000)
    feedback_record_many(predictions=predictions, label=label, user=request.user, note=note)
    word = "a real threat" if label == 1 else "benign (false positive)"
    messages.success(request, f"Verdict recorded: {incident_id} is {word}.")
    url = reverse("explain:incident", args=[incident_id])
    version = request.POST.get("version", "")
    return redirect(f"{url}?{urlencode({'version': version})}" if version else url)
