"""CSV cells a spreadsheet will not run as formulas (OWASP "CSV Injection").

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read as a formula by spreadsheet programs (``=HYPERLINK(...)`` from a model card would
become a live link). Such a cell is written with a leading single quote, which the
programs show as text; numbers are written as they are.
"""

from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """The value, with a leading ``'`` when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(value) for value in values]
