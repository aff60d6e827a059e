"""Demo data for explanations: precompute the high-risk incidents of the logged traffic."""

from django.conf import settings
from tqdm import tqdm

from explain.services import explanations_precompute, high_risk_predictions


def build(*, stdout) -> None:
    """Explain every logged incident at or above its model's risk threshold (idempotent)."""
    rows = high_risk_predictions().exclude(incident_id="")
    total = rows.count()
    if not total:
        stdout.write("explanations: no high-risk incidents logged yet")
        return
    with tqdm(total=total, desc="explaining high-risk incidents", unit="row") as bar:
        report = explanations_precompute(
            predictions=rows, batch_size=settings.EXPLAIN_BATCH_SIZE, progress=bar.update
        )
    stdout.write(
        f"explanations: {total} high-risk incidents, {report.explained} explanations "
        f"computed now, the rest already stored"
    )
