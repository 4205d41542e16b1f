"""Regime models in the model registry: ``<models>/<NAME>/v0001/{model.joblib,metadata.json}``.

Regime models share the folder and the ``NAME[:VERSION]`` references of the meta-models
(:class:`~tradeloop.ml.registry.ModelCatalog`); their metadata says ``"kind": "regime"`` so a
meta-model reference never loads a regime model and the other way round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.core.extras import needs_extra
from tradeloop.ml.regimes.base import RegimeDetector
from tradeloop.ml.registry import ModelCatalog, ModelRef

__all__ = ["REGIME_KIND", "load_regime_model", "save_regime_model"]

REGIME_KIND = "regime"


def save_regime_model(
    root: str | Path,
    name: str,
    detector: RegimeDetector,
    *,
    bars: BarArrays | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelRef:
    """Save ``detector`` as the next version of ``name`` under the model folder ``root``.

    The version folder is written aside and renamed into place, so a reader never sees half
    a model.

    Raises
    ------
    ConfigError
        For a name that is not a plain folder name.
    """
    registry = ModelCatalog(root).registry(name)
    meta: dict[str, Any] = {
        "kind": REGIME_KIND,
        "method": detector.method,
        "states": list(detector.names),
        "lookback": detector.lookback,
        "detector": detector.describe(),
    }
    version = registry.save_object(detector, meta, bars=bars, extra=extra, json_default=_plain)
    return ModelRef(name, version, registry.root / version)


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def load_regime_model(
    spec: str, root: str | Path
) -> tuple[RegimeDetector, ModelRef, dict[str, Any]]:
    """Load regime model ``NAME[:VERSION]`` (no version: the latest) from ``root``.

    Only load models you saved yourself: joblib files run code when loaded.

    Raises
    ------
    ConfigError
        For an unknown name or version (the saved ones are listed) or a name that holds a
        meta-model, not a regime model.
    """
    catalog = ModelCatalog(root)
    try:
        ref = catalog.resolve(spec)
    except ConfigError as exc:
        name = spec.partition(":")[0]
        regimes = regime_model_names(root)
        if name in regimes:  # a version that is not there: the catalog's message says which
            raise
        if not regimes:
            raise ConfigError(
                f"unknown regime model {name!r}: no regime model is saved under {root}; fit "
                f"one with `tradeloop regime fit --name {name} ...`"
            ) from exc
        raise ConfigError(
            f"unknown regime model {name!r} in {root}.{did_you_mean(name, regimes)} "
            f"Regime models: {', '.join(regimes)} (fit another with `tradeloop regime fit`)"
        ) from exc
    meta = json.loads((ref.path / "metadata.json").read_text())
    if meta.get("kind") != REGIME_KIND:
        raise ConfigError(
            f"model {ref.spec} is a meta-model (from `tradeloop train`), not a regime model; "
            "pass it to --model, and a regime model to --regime"
        )
    with needs_extra("ml", "loading a regime model"):
        import joblib
    detector = joblib.load(ref.path / "model.joblib")
    if not isinstance(detector, RegimeDetector):
        raise ConfigError(f"{ref.path / 'model.joblib'} does not hold a regime detector")
    return detector, ref, meta


def regime_model_names(root: str | Path) -> list[str]:
    """Names in ``root`` whose latest version is a regime model."""
    catalog = ModelCatalog(root)
    out = []
    for name in catalog.names():
        reg = catalog.registry(name)
        try:
            if reg.metadata().get("kind") == REGIME_KIND:
                out.append(name)
        except (OSError, ValueError):
            continue
    return out
