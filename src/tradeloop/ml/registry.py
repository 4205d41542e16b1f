"""Model registry: each model in a versioned folder with joblib weights and JSON metadata."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError
from tradeloop.ml.features import FeatureSet
from tradeloop.ml.model import MetaModel

__all__ = ["ModelRegistry", "data_hash"]

_VERSION_RE = re.compile(r"^v(\d{4,})$")
_LIBS = ("numpy", "scikit-learn", "lightgbm", "joblib", "tradeloop")


def data_hash(bars: BarArrays) -> str:
    """Return the sha256 of the bars' timestamps and OHLCV."""
    h = hashlib.sha256()
    for arr in (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _lib_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = importlib_metadata.version(lib)
        except importlib_metadata.PackageNotFoundError:
            out[lib] = "missing"
    return out


class ModelRegistry:
    """Versioned folders ``<root>/v0001/{model.joblib,metadata.json}``.

    Only load models you saved yourself: joblib files run code when loaded.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[str]:
        """Return saved versions, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if _VERSION_RE.match(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def save(
        self,
        model: MetaModel,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        bars: BarArrays | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Save ``model`` as the next version and return it (also set on ``model.version``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        existing = self.versions()
        number = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{number:04d}"
        tmp = self.root / f".{version}.tmp"
        tmp.mkdir()
        model.version = version
        meta: dict[str, Any] = {
            "version": version,
            "created": datetime.now(UTC).isoformat(),
            "feature_set": model.feature_set.to_dict(),
            "params": params or {},
            "metrics": metrics or {},
            "baseline_accuracy": model.baseline_accuracy,
            "threshold": model.threshold,
            "calibration": model.calibrator.kind,
            "libraries": _lib_versions(),
        }
        if bars is not None:
            meta["data"] = {
                "symbol": bars.symbol,
                "timeframe": bars.timeframe,
                "bars": len(bars),
                "start_ns": int(bars.ts[0]),
                "end_ns": int(bars.ts[-1]),
                "sha256": data_hash(bars),
            }
        meta.update(extra or {})
        joblib.dump(model, tmp / "model.joblib")
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, self.root / version)
        return version

    def metadata(self, version: str | None = None) -> dict[str, Any]:
        """Return the metadata of ``version`` (latest when None)."""
        folder = self._folder(version)
        data: dict[str, Any] = json.loads((folder / "metadata.json").read_text())
        return data

    def _folder(self, version: str | None) -> Path:
        versions = self.versions()
        if not versions:
            raise ConfigError(f"no model saved under {self.root}")
        chosen = versions[-1] if version in (None, "latest") else version
        if chosen not in versions:
            raise ConfigError(f"model version {chosen!r} not found; have {', '.join(versions)}")
        return self.root / str(chosen)

    def load(
        self, version: str | None = None, *, feature_set: FeatureSet | None = None
    ) -> MetaModel:
        """Load ``version`` (latest when None); refuse a model of another feature set.

        Raises
        ------
        ConfigError
            For a missing version or a feature-set mismatch.
        """
        folder = self._folder(version)
        meta = json.loads((folder / "metadata.json").read_text())
        if feature_set is not None and meta["feature_set"] != feature_set.to_dict():
            saved = meta["feature_set"]
            raise ConfigError(
                f"model {folder.name} was trained on feature set "
                f"{saved['name']}@{saved['version']} ({len(saved['bar_features'])} bar features),"
                f" not {feature_set.key}; retrain it"
            )
        model: MetaModel = joblib.load(folder / "model.joblib")
        model.version = folder.name
        return model
