"""Prediction ingest and analyst feedback for the SOC backend."""

import numpy as np
import orjson
from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.fields import empty
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
from core.schema import api_error
from monitoring.feedback import VERDICT_KEYS, Verdict, feedback_record_batch, parse_label
from monitoring.ingest import UNSTORABLE, predictions_ingest

MAX_VERDICTS = 1000
ID_MAX_LENGTH = 128
NOTE_MAX_LENGTH = 2000

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
        responses={
            201: IngestResultSerializer,
            409: api_error(
                409,
                "A request_id is already stored (or repeated in the batch) with other "
                "content: `details.errors` names each such item; nothing was stored.",
            ),
        },
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
        result = predictions_ingest(items=request.data["predictions"])
        return Response(result.__dict__, status=status.HTTP_201_CREATED)


VerdictResult = inline_serializer(
    "VerdictResult",
    {
        "index": serializers.IntegerField(),
        "status": serializers.ChoiceField(["recorded", "unknown"]),
        "predictions": serializers.IntegerField(),
    },
)
FeedbackResultSerializer = inline_serializer(
    "FeedbackResult",
    {
        "recorded": serializers.IntegerField(),
        "unknown": serializers.IntegerField(),
        "results": VerdictResult.__class__(many=True),
    },
)


class VerdictSerializer(serializers.Serializer):
    request_id = serializers.CharField(required=False, max_length=ID_MAX_LENGTH)
    incident_id = serializers.CharField(required=False, max_length=ID_MAX_LENGTH)
    # A field named "label": the stubs know only Field.label (the display label).
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="threat/benign, true_positive/false_positive or 1/0"
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=NOTE_MAX_LENGTH)


class FeedbackBatchSerializer(serializers.Serializer):
    """1 to 1000 verdicts; an invalid one rejects the batch, and the error names the
    index and field of every invalid verdict."""

    # Declared once: the fields document the body, to_internal_value checks it.
    verdicts = VerdictSerializer(many=True)

    def run_validation(self, data=empty):
        # Straight to to_internal_value: a JSON null gets the same answer as any other
        # body that is not {"verdicts": [...]}.
        return self.to_internal_value(data)

    def to_internal_value(self, data) -> list[Verdict]:
        items = data.get("verdicts") if isinstance(data, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_VERDICTS:
            raise ApiError(
                f'the body must be {{"verdicts": [...]}} with 1 to {MAX_VERDICTS} items',
                {"field": "verdicts"},
            )
        verdicts, errors = [], []
        for i, item in enumerate(items):
            verdict = _verdict(item)
            if isinstance(verdict, Verdict):
                verdicts.append(verdict)
            else:
                field, reason = verdict
                errors.append({"index": i, "field": field, "reason": reason})
        if errors:
            raise ApiError(
                f"{len({e['index'] for e in errors})} verdicts are invalid; nothing was recorded",
                {"errors": errors},
            )
        return verdicts


def _verdict(item) -> Verdict | tuple[str, str]:
    """The verdict an item of the batch gives, or the (field, reason) it fails on."""
    if not isinstance(item, dict):
        return "", "must be an object"
    keys = [k for k in VERDICT_KEYS if item.get(k)]
    label = parse_label(item.get("label"))
    note = item.get("note", "")
    if has_unstorable_text(item):
        return "", UNSTORABLE
    if len(keys) != 1 or not isinstance(item[keys[0]], str) or len(item[keys[0]]) > ID_MAX_LENGTH:
        return "request_id", "give exactly one of request_id or incident_id (a string)"
    if label is None:
        return "label", "must be threat/benign, true_positive/false_positive or 1/0"
    if not isinstance(note, str) or len(note) > NOTE_MAX_LENGTH:
        return "note", f"at most {NOTE_MAX_LENGTH} characters"
    return Verdict(key=keys[0], value=item[keys[0]], label=label, note=note)


class FeedbackView(APIView):
    """Analyst verdicts by request_id or incident_id (a verdict on an incident applies to
    every version that scored it); unknown ids are reported per item."""

    permission_classes = [require_perms("monitoring.give_feedback")]

    @extend_schema(request=FeedbackBatchSerializer, responses={200: FeedbackResultSerializer})
    def post(self, request):
        batch = FeedbackBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        counts = feedback_record_batch(verdicts=batch.validated_data, user=request.user)
        recorded = sum(1 for n in counts if n)
        results = [
            {"index": i, "status": "recorded" if n else "unknown", "predictions": n}
            for i, n in enumerate(counts)
        ]
        return Response(
            {"recorded": recorded, "unknown": len(counts) - recorded, "results": results}
        )


urlpatterns = [
    path("predictions/", PredictionsView.as_view(), name="api-predictions"),
    path("feedback/", FeedbackView.as_view(), name="api-feedback"),
]
