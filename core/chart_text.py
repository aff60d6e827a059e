"""Text that reaches a plotly chart, escaped so that plotly shows it as written.

Plotly reads a subset of HTML in every label, tick, legend and hover text (``<a
href>``, ``<b>``, ``<br>``...): a group name ``<a href="https://evil.example">EU</a>``
from an evaluation set would become a live link. Plotly decodes the entities ``&lt;``,
``&gt;`` and ``&amp;`` back to the characters, so escaping those three shows the name
literally and runs nothing.
"""

from typing import Any

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def chart_text(value: Any) -> Any:
    """A string escaped for plotly; anything else (numbers, None) unchanged."""
    return value.translate(_ESCAPES) if isinstance(value, str) else value


def chart_texts(values: list[Any]) -> list[Any]:
    return [chart_text(value) for value in values]
