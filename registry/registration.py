"""Turn a training result into a registration: artifact bytes, metadata, evaluation set."""

import io

import numpy as np

from registry.services import model_version_register
from registry.training import TrainingResult

MODEL_CARD = {
    "intended_use": (
        "Rank security events by the probability that they are a real threat (account "
        "takeover, exfiltration, lateral movement) so SOC analysts triage the riskiest first. "
        "Scores support, never replace, an analyst's verdict."
    ),
    "limitations": (
        "Trained on authentication, network and endpoint telemetry with a low base rate of "
        "threats; precision drops when the base rate or the telemetry mix changes. Not "
        "validated for OT/ICS networks. Needs drift monitoring on bytes_out and geo_velocity."
    ),
    "ethical_considerations": (
        "Geographic proxies (travel velocity, new devices) can raise false-positive rates for "
        "users in some regions; false accusations burden benign users. Fairness audits compare "
        "false-positive rates across geo regions before approval and quarterly."
    ),
}


def evaluation_npz(result: TrainingResult) -> bytes:
    """The held-out rows as .npz (no pickles): X, y and, when known, geo_region."""
    arrays: dict[str, np.ndarray] = {
        "X": result.X_valid.astype(np.float64),
        "y": result.y_valid.astype(np.int8),
    }
    if result.valid_geo_region is not None:
        arrays["geo_region"] = np.asarray(result.valid_geo_region).astype(str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def register_training_result(
    *,
    result: TrainingResult,
    model_name: str,
    version: str,
    registered_by,
    card: dict | None = None,
    description: str = "",
    fmt: str = "json",
):
    metadata = result.registration_metadata()
    metadata.pop("validation_metrics", None)
    metadata["evaluation_data"] = (
        f"{result.validation_samples} held-out events (stratified split of the training data, "
        f"dataset SHA-256 {result.dataset_hash[:16]}…)"
    )
    metadata.update(MODEL_CARD if card is None else card)
    return model_version_register(
        model_name=model_name,
        version=version,
        artifact=result.artifact_bytes(fmt),
        metadata=metadata,
        evaluation=evaluation_npz(result),
        registered_by=registered_by,
        description=description,
    )
