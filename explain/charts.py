"""Chart data for the explanation pages (plain dicts, rendered by explain/static/explain/*.js)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.chart_text import chart_text

WATERFALL_TOP = 8


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _level(spec: dict, value: float) -> str:
    """The level name of an integer-coded categorical value ("" when not categorical)."""
    levels = spec.get("levels") or []
    if spec.get("type") != "categorical" or not np.isfinite(value) or value != int(value):
        return ""
    return str(levels[int(value)]) if 0 <= int(value) < len(levels) else ""


def feature_rows(schema: list[dict], values, contributions) -> list[dict]:
    """Every feature with its value (and level name) and contribution, largest |SHAP| first."""
    order = np.lexsort((np.arange(len(schema)), -np.abs(contributions)))
    return [
        {
            "name": schema[j]["name"],
            "value": float(values[j]) if np.isfinite(values[j]) else None,
            "level": _level(schema[j], float(values[j])),
            "description": schema[j].get("description", ""),
            "contribution": float(contributions[j]),
        }
        for j in order
    ]


def waterfall(
    *, base_value: float, margin: float, rows: list[dict], top: int = WATERFALL_TOP
) -> dict:
    """Bars from the base value to the margin: the ``top`` largest contributions, the rest
    summed into one "other features" bar, then the total. Bars are listed bottom to top
    (the largest contribution just under the total, as in shap's waterfall plot)."""
    shown, rest = rows[:top], rows[top:]
    bars: list[dict[str, Any]] = [
        {"label": "base value E[f(x)]", "measure": "absolute", "value": base_value}
    ]
    if rest:
        bars.append(
            {
                "label": f"{len(rest)} other feature{'s' if len(rest) > 1 else ''}",
                "measure": "relative",
                "value": float(sum(r["contribution"] for r in rest)),
                "feature_value": None,
            }
        )
    for row in reversed(shown):
        bars.append(
            {
                "label": chart_text(row["name"]),
                "measure": "relative",
                "value": row["contribution"],
                "feature_value": chart_text(row["level"] or row["value"]),
            }
        )
    bars.append({"label": "f(x) margin", "measure": "total", "value": margin})
    running = 0.0
    for bar in bars:
        running = bar["value"] if bar["measure"] != "relative" else running + bar["value"]
        bar["running"] = running
        bar["probability"] = sigmoid(running)
    return {
        "bars": bars,
        "base_value": base_value,
        "margin": margin,
        "base_probability": sigmoid(base_value),
        "probability": sigmoid(margin),
    }
