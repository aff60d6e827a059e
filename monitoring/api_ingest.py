"""Prediction ingest and analyst feedback for the SOC backend."""

import numpy as np
import orjson
from django.db import transaction
from django.db.models import Q
from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import (
    ApiError,
    has_unstorable_text,
    json_loads_strict,
    read_limited,
    require_perms,
)
from monitoring.feedback import feedback_record_many, parse_label
from monitoring.ingest import UNSTORABLE, IngestError, predictions_ingest
from monitoring.models import PredictionLog

MAX_VERDICTS = 1000

PredictionItem = inline_serializer(
    "PredictionItem",
    {
        "request_id": serializers.CharField(max_length=128),
        "model": serializers.CharField(),
        "version": serializers.CharField(required=False),
        "incident_id": serializers.CharField(required=False, max_length=128),
        "entity": serializers.CharField(max_length=256),
        "features": serializers.DictField(child=serializers.JSONField()),
        "score": serializers.FloatField(min_value=0, max_value=1),
        "confidence": serializers.FloatField(required=False, min_value=0, max_value=1),
        "attributes": serializers.DictField(child=serializers.CharField(), required=False),
        "timestamp": serializers.DateTimeField(required=False),
        "role": serializers.ChoiceField(["champion", "challenger", "shadow"], required=False),
    },
)
IngestResultSerializer = inline_serializer(
    "IngestResult",
    {
        "received": serializers.IntegerField(),
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
    },
)


class BatchJSONParser(JSONParser):
    """orjson for the common, well-formed UTF-8 body: several times faster than the
    standard parser on a 10,000-item batch. orjson keeps the last of duplicate keys, so
    the names it parsed are counted against the names in the text; a difference, or
    anything orjson refuses, goes to the strict parser, which names the problem. That
    parser lets 1e999 through as inf so that the batch validation names its item and
    field."""

    def parse(self, stream, media_type=None, parser_context=None):
        body = read_limited(stream, parser_context)
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        if encoding.lower().replace("-", "") == "utf8":
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
            else:
                if _names_parsed(data) == _names_in(body):
                    return data
        try:
            return json_loads_strict(body.decode(encoding), finite=False)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None


def _names_in(body: bytes) -> int:
    """How many object names a JSON text holds: its colons outside strings (JSON admits
    a colon nowhere else). Vectorised over the bytes."""
    text = np.frombuffer(body, np.uint8)
    quotes = np.flatnonzero(text == 34)
    backslash = text == 92
    if quotes.size and backslash.any():
        # a quote is escaped when an odd run of backslashes precedes it
        last_other = np.maximum.accumulate(np.where(backslash, -1, np.arange(text.size)))
        before = np.maximum(quotes - 1, 0)
        run = np.where(quotes > 0, before - last_other[before], 0)
        quotes = quotes[run % 2 == 0]
    colons = np.flatnonzero(text == 58)
    inside = np.searchsorted(quotes, colons) % 2 == 1
    return int(colons.size - np.count_nonzero(inside))


def _names_parsed(data) -> int:
    """Names in a parsed batch, counted as deep as a batch nests (body, item, features
    and attributes); names deeper than that are not counted, so such a body never
    matches `_names_in` and goes to the strict parser."""
    if type(data) is not dict:
        return -1
    names = len(data)
    for value in data.values():
        if type(value) is list:
            for item in value:
                if type(item) is dict:
                    names += len(item)
                    names += sum([len(v) for v in item.values() if type(v) is dict])
    return names


class PredictionsView(APIView):
    """Log up to 10,000 predictions; an invalid item rejects the whole batch."""

    permission_classes = [require_perms("monitoring.log_prediction")]
    parser_classes = [BatchJSONParser]

    @extend_schema(
        request=inline_serializer(
            "PredictionBatch", {"predictions": PredictionItem.__class__(many=True)}
        ),
        responses={201: IngestResultSerializer},
        examples=[
            OpenApiExample(
                "one item",
                request_only=True,
                value={
                    "predictions": [
                        {
                            "request_id": "evt-1",
                            "model": "threat-detector",
                            "entity": "host-7",
                            "incident_id": "INC-1",
                            "features": {"failed_logins": 3},
                            "score": 0.91,
                            "attributes": {"geo_region": "EU"},
                        }
                    ]
                },
            )
        ],
    )
    def post(self, request):
        if not isinstance(request.data, dict) or set(request.data) != {"predictions"}:
            raise ApiError('the body must be {"predictions": [...]}', {"field": "predictions"})
        try:
            result = predictions_ingest(items=request.data["predictions"])
        except IngestError as exc:
            raise ApiError(exc.message, {"errors": exc.errors}) from None
        return Response(result.__dict__, status=status.HTTP_201_CREATED)


VerdictResult = inline_serializer(
    "VerdictResult",
    {
        "index": serializers.IntegerField(),
        "status": serializers.ChoiceField(["recorded", "unknown"]),
        "predictions": serializers.IntegerField(),
    },
)


class FeedbackView(APIView):
    """Analyst verdicts by request_id or incident_id (a verdict on an incident applies to
    every version that scored it); unknown ids are reported per item."""

    permission_classes = [require_perms("monitoring.give_feedback")]

    @extend_schema(
        request=inline_serializer(
            "FeedbackBatch",
            {
                "verdicts": inline_serializer(
                    "Verdict",
                    {
                        "request_id": serializers.CharField(required=False),
                        "incident_id": serializers.CharField(required=False),
                        "label": serializers.CharField(
                            help_text="threat/benign, true_positive/false_positive or 1/0"
                        ),
                        "note": serializers.CharField(required=False),
                    },
                    many=True,
                )
            },
        ),
        responses={
            200: inline_serializer(
                "FeedbackResult",
                {
                    "recorded": serializers.IntegerField(),
                    "unknown": serializers.IntegerField(),
                    "results": VerdictResult.__class__(many=True),
                },
            )
        },
    )
    def post(self, request):
        verdicts = _parse_verdicts(request.data)
        with transaction.atomic():
            results, recorded = self._record(verdicts, request.user)
        return Response(
            {"recorded": recorded, "unknown": len(verdicts) - recorded, "results": results}
        )

    @staticmethod
    def _record(verdicts, user):
        results, recorded = [], 0
        for i, (key, value, label, note) in enumerate(verdicts):
            rows = list(PredictionLog.objects.filter(Q(**{key: value})))
            if not rows:
                results.append({"index": i, "status": "unknown", "predictions": 0})
                continue
            feedback_record_many(predictions=rows, label=label, user=user, note=note)
            recorded += 1
            results.append({"index": i, "status": "recorded", "predictions": len(rows)})
        return results, recorded


def _parse_verdicts(data) -> list[tuple[str, str, int, str]]:
    items = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_VERDICTS:
        raise ApiError(
            f'the body must be {{"verdicts": [...]}} with 1 to {MAX_VERDICTS} items',
            {"field": "verdicts"},
        )
    parsed, errors = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": i, "field": "", "reason": "must be an object"})
            continue
        keys = [k for k in ("request_id", "incident_id") if item.get(k)]
        label = parse_label(item.get("label"))
        note = item.get("note", "")
        if has_unstorable_text(item):
            errors.append({"index": i, "field": "", "reason": UNSTORABLE})
        elif len(keys) != 1 or not isinstance(item[keys[0]], str) or len(item[keys[0]]) > 128:
            errors.append(
                {
                    "index": i,
                    "field": "request_id",
                    "reason": "give exactly one of request_id or incident_id (a string)",
                }
            )
        elif label is None:
            errors.append(
                {
                    "index": i,
                    "field": "label",
                    "reason": "must be threat/benign, true_positive/false_positive or 1/0",
                }
            )
        elif not isinstance(note, str) or len(note) > 2000:
            errors.append({"index": i, "field": "note", "reason": "at most 2000 characters"})
        else:
            parsed.append((keys[0], item[keys[0]], label, note))
    if errors:
        raise ApiError(
            f"{len({e['index'] for e in errors})} verdicts are invalid; nothing was recorded",
            {"errors": errors},
        )
    return parsed


urlpatterns = [
    path("predictions/", PredictionsView.as_view(), name="api-predictions"),
    path("feedback/", FeedbackView.as_view(), name="api-feedback"),
]
