"""Model registry: each model in a versioned folder with joblib weights and JSON metadata.

:class:`ModelRegistry` is one model's versions (``<folder>/v0001/...``); :class:`ModelCatalog`
is a folder of named models (``<root>/<name>/v0001/...``) and resolves the ``NAME[:VERSION]``
references that ``tradeloop backtest --model`` and ``tradeloop paper --model`` take.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from tradeloop.core.bar import BarArrays
from tradeloop.core.errors import ConfigError, did_you_mean
from tradeloop.core.extras import needs_extra
from tradeloop.ml.features import FeatureSet
from tradeloop.ml.model import MetaModel

__all__ = [
    "ModelCatalog",
    "ModelRef",
    "ModelRegistry",
    "data_hash",
    "lib_versions",
    "parse_model_spec",
]

_VERSION_RE = re.compile(r"^v(\d{4,})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LIBS = ("numpy", "scikit-learn", "lightgbm", "joblib", "tradeloop")


def data_hash(bars: BarArrays) -> str:
    """Return the sha256 of the bars' timestamps and OHLCV."""
    h = hashlib.sha256()
    for arr in (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def lib_versions() -> dict[str, str]:
    """Python and the libraries a saved model depends on, with their versions."""
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
        meta: dict[str, Any] = {
            "feature_set": model.feature_set.to_dict(),
            "params": params or {},
            "metrics": metrics or {},
            "baseline_accuracy": model.baseline_accuracy,
            "threshold": model.threshold,
            "calibration": model.calibrator.kind,
        }
        return self.save_object(
            model, meta, bars=bars, extra=extra, on_version=lambda v: setattr(model, "version", v)
        )

    def save_object(
        self,
        obj: Any,
        meta: dict[str, Any],
        *,
        bars: BarArrays | None = None,
        extra: dict[str, Any] | None = None,
        on_version: Callable[[str], None] | None = None,
        json_default: Callable[[Any], Any] = str,
    ) -> str:
        """Save any model object as the next version with ``meta`` and return the version.

        Adds the version, creation time, library versions and (with ``bars``) the training
        data's span and hash to ``meta``, then ``extra``. The folder is written aside and
        renamed into place, so a reader never sees half a model. ``on_version`` is called with
        the new version before the object is written (to stamp it on the object).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        existing = self.versions()
        number = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{number:04d}"
        tmp = self.root / f".{version}.tmp"
        tmp.mkdir()
        if on_version is not None:
            on_version(version)
        head: dict[str, Any] = {"version": version, "created": datetime.now(UTC).isoformat()}
        full = {**head, **meta, "libraries": lib_versions()}
        if bars is not None:
            full["data"] = {
                "symbol": bars.symbol,
                "timeframe": bars.timeframe,
                "bars": len(bars),
                "start_ns": int(bars.ts[0]),
                "end_ns": int(bars.ts[-1]),
                "sha256": data_hash(bars),
            }
        full.update(extra or {})
        with needs_extra("ml", "saving a model"):
            import joblib
        joblib.dump(obj, tmp / "model.joblib")
        (tmp / "metadata.json").write_text(json.dumps(full, indent=2, default=json_default))
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
        if meta.get("kind") == "regime":
            raise ConfigError(
                f"model {folder.parent.name}:{folder.name} is a regime model (from `tradeloop "
                "regime fit`), not a meta-model; pass it to --regime"
            )
        if feature_set is not None and meta["feature_set"] != feature_set.to_dict():
            saved = meta["feature_set"]
            raise ConfigError(
                f"model {folder.name} was trained on feature set "
                f"{saved['name']}@{saved['version']} ({len(saved['bar_features'])} bar features),"
                f" not {feature_set.key}; retrain it"
            )
        with needs_extra("ml", "loading a model"):
            import joblib
        model: MetaModel = joblib.load(folder / "model.joblib")
        model.version = folder.name
        return model


def _version_label(text: str) -> str | None:
    """``v0003`` for ``v0003``, ``v3`` or ``3``; None for ``latest`` or an empty text."""
    text = text.strip()
    if text in ("", "latest"):
        return None
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not digits.isdigit():
        raise ConfigError(f"model version must look like v0003 (or 3, or latest), got {text!r}")
    return f"v{int(digits):04d}"


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """Split ``NAME[:VERSION]`` into the name and the version label (None: the latest).

    >>> parse_model_spec("sma_meta:3")
    ('sma_meta', 'v0003')
    >>> parse_model_spec("sma_meta")
    ('sma_meta', None)

    Raises
    ------
    ConfigError
        For an empty or malformed name or version.
    """
    name, _, version = spec.strip().partition(":")
    name = name.strip()
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"model reference must be NAME[:VERSION] (letters, digits, '_', '-', '.'), got {spec!r}"
        )
    return name, _version_label(version)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A resolved model: its name, its version and the folder holding that version."""

    name: str
    version: str
    path: Path

    @property
    def spec(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


class ModelCatalog:
    """Named models in one folder: ``<root>/<name>/v0001/{model.joblib,metadata.json}``.

    Each name is a :class:`ModelRegistry`. Only load models you saved yourself: joblib files
    run code when loaded.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """Return the names that hold at least one saved version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _NAME_RE.match(p.name) and ModelRegistry(p).versions()
        )

    def registry(self, name: str) -> ModelRegistry:
        """Return the registry of ``name`` (created on the first save).

        Raises
        ------
        ConfigError
            For a name that is not a plain folder name.
        """
        if not _NAME_RE.match(name):
            raise ConfigError(
                f"model name must use letters, digits, '_', '-' and '.', got {name!r}"
            )
        return ModelRegistry(self.root / name)

    def resolve(self, spec: str) -> ModelRef:
        """Resolve ``NAME[:VERSION]`` (no version: the latest) to a saved version.

        Raises
        ------
        ConfigError
            For an unknown name (the available names are listed) or an unknown version (the
            saved versions are listed).
        """
        name, version = parse_model_spec(spec)
        names = self.names()
        if name not in names:
            if not names:
                raise ConfigError(
                    f"unknown model {name!r}: no model is saved under {self.root}; train one "
                    f"with `tradeloop train --name {name} ...`"
                )
            raise ConfigError(
                f"unknown model {name!r} in {self.root}.{did_you_mean(name, names)} "
                f"Available: {', '.join(names)}"
            )
        versions = ModelRegistry(self.root / name).versions()
        chosen = versions[-1] if version is None else version
        if chosen not in versions:
            raise ConfigError(
                f"model {name!r} has no version {chosen!r}; versions: {', '.join(versions)}"
            )
        return ModelRef(name, chosen, self.root / name / chosen)

    def load(
        self, spec: str, *, feature_set: FeatureSet | None = None
    ) -> tuple[MetaModel, ModelRef, dict[str, Any]]:
        """Load ``NAME[:VERSION]``; return the model, its reference and its metadata.

        Raises
        ------
        ConfigError
            As :meth:`resolve`, or for a model of another feature set.
        """
        ref = self.resolve(spec)
        registry = ModelRegistry(self.root / ref.name)
        model = registry.load(ref.version, feature_set=feature_set)
        return model, ref, registry.metadata(ref.version)
