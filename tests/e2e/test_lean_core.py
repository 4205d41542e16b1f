"""The core install: core commands work without any extra, the others name the extra they need.

A core-only install is simulated in a fresh interpreter: every installed package that the
core dependencies of ``pyproject.toml`` do not pull in (transitively, read from the installed
packages' metadata) is blocked by a ``sys.meta_path`` finder, so importing it fails exactly as
it would where it is not installed. The blocked set is computed from pyproject, so the
dependency list and these tests cannot drift apart; the extras' packages in
:data:`tradeloop.core.extras.EXTRAS` are checked against pyproject's extras the same way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from packaging.requirements import Requirement

from tradeloop.core.extras import EXTRAS, extra_of

if TYPE_CHECKING:
    from tests.e2e.conftest import RunCli

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

#: modules that exist only for an extra (importing them needs it); every other module of the
#: package must import on the core alone
EXTRA_ONLY = {
    "tradeloop.api": "serve",
    "tradeloop.adapters.ccxt.broker": "live",
    "tradeloop.data.stream.pg_store": "live",
    "tradeloop.engine.live_session": "live",
    "tradeloop.execution.protection": "live",
    "tradeloop.execution.reconcile": "live",
    "tradeloop.execution.venue_broker": "live",
}

_BLOCKER = r"""
import json, os, sys
_BLOCKED = frozenset(json.loads(os.environ["TRADELOOP_TEST_BLOCKED"]))
class _NotInstalled:
    # a package outside the core install: importing it fails as if it were absent
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""

_RUN_CLI = (
    _BLOCKER
    + r"""
sys.argv = ["tradeloop", *sys.argv[1:]]
from tradeloop.cli.app import main
main()
"""
)

_IMPORT_ALL = (
    _BLOCKER
    + r"""
import importlib, pkgutil, tradeloop
failed = {}
for info in pkgutil.walk_packages(tradeloop.__path__, "tradeloop."):
    name = info.name
    if name.startswith("tradeloop.testing") or name.endswith("__main__"):
        continue
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        failed[name] = exc.name
print(json.dumps(failed))
"""
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)["project"]
    return data


@cache
def _import_names() -> dict[str, set[str]]:
    """Installed distribution (normalised name) -> its top-level import names."""
    names: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            names.setdefault(_norm(dist), set()).add(module)
    return names


def _closure(requirements: list[str]) -> set[str]:
    """The distributions ``requirements`` install (normalised names), read from the installed
    packages' metadata: dependencies of dependencies, with their markers and extras."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (_norm(req.name), frozenset(req.extras))
        if key in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue
        for spec in dist.requires or []:
            sub = Requirement(spec)
            extras = {"", *req.extras}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(Requirement(str(sub).split(";")[0]))
    return {name for name, _ in seen}


@cache
def _blocked(extras: tuple[str, ...] = ()) -> frozenset[str]:
    """Top-level import names that the core install (plus ``extras``) does not have."""
    optional = _pyproject()["optional-dependencies"]
    wanted = [r for extra in extras for r in optional[extra]]
    core = _closure(_pyproject()["dependencies"] + wanted) | {"tradeloop"}
    blocked = {
        module
        for module, dists in packages_distributions().items()
        if all(_norm(d) not in core for d in dists)
    }
    return frozenset(blocked - set(sys.stdlib_module_names))


def _lean_env(env: dict[str, str] | None, extras: tuple[str, ...]) -> dict[str, str]:
    """``env`` (default: this process's) for a child where only the core and ``extras`` are
    installed."""
    return {
        **(os.environ if env is None else env),
        "TRADELOOP_TEST_BLOCKED": json.dumps(sorted(_blocked(extras))),
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }


def _lean(
    script: str,
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    extras: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``script`` with ``args`` in a fresh interpreter where only the core (and ``extras``)
    is installed."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=_lean_env(env, extras),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_every_extra_package_is_outside_the_core_install() -> None:
    # Act
    blocked = _blocked()
    # Assert: each extra's packages are missing from a core install (none comes in
    # transitively), and the core's own packages are not
    for extra, modules in EXTRAS.items():
        assert set(modules) <= blocked, f"{extra}: {set(modules) - blocked} come with the core"
    for module in ("numpy", "pandas", "pyarrow", "numba", "typer", "rich", "plotly", "ccxt"):
        assert module not in blocked


def test_extras_table_matches_pyproject() -> None:
    # Arrange
    optional: dict[str, list[str]] = _pyproject()["optional-dependencies"]
    names = _import_names()
    # Act / Assert: every extra of pyproject (but dev and all) is in EXTRAS with the import
    # names of exactly its packages; `all` holds every extra
    assert set(optional) - {"dev", "all"} == set(EXTRAS)
    for extra, modules in EXTRAS.items():
        own = [Requirement(r) for r in optional[extra] if Requirement(r).name != "tradeloop"]
        provided = [names.get(_norm(r.name), set()) for r in own]
        assert all(p & set(modules) for p in provided), f"{extra}: {own} vs {modules}"
        assert set(modules) <= set().union(*provided), f"{extra}: {modules} vs {own}"
    (everything,) = (Requirement(r) for r in optional["all"])
    assert everything.name == "tradeloop"
    assert everything.extras == set(EXTRAS)
    core = {_norm(Requirement(r).name) for r in _pyproject()["dependencies"]}
    for extra, modules in EXTRAS.items():
        assert not {extra_of(m) for m in modules} - {extra}
        assert not core & {_norm(Requirement(r).name) for r in optional[extra]}


def _extra_only(module: str) -> str | None:
    """The extra that ``module`` is declared to need (:data:`EXTRA_ONLY`), or None."""
    for name, extra in EXTRA_ONLY.items():
        if module == name or module.startswith(name + "."):
            return extra
    return None


@pytest.mark.parametrize("extras", [(), ("serve",), ("live",)], ids=["core", "serve", "live"])
def test_every_module_but_the_extra_only_ones_imports_on_the_core(
    tmp_path: Path, extras: tuple[str, ...]
) -> None:
    # Act
    proc = _lean(_IMPORT_ALL, cwd=tmp_path, extras=extras)
    # Assert: only the declared extra-only modules of the missing extras fail, each for a
    # package of its extra (an extra's modules need no other extra)
    assert proc.returncode == 0, proc.stderr
    failed: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    owners = {name: _extra_only(name) for name in failed}
    assert {n: o for n, o in owners.items() if o is None} == {}
    assert {n: extra_of(failed[n]) for n in failed} == owners
    missing = {m for m, extra in EXTRA_ONLY.items() if extra not in extras}
    assert set(failed) >= missing  # none of them became core by accident
    assert not {n for n, o in owners.items() if o in extras}


def _demo_command() -> list[str]:
    """The ``tradeloop`` arguments of the Makefile's ``demo`` recipe, without ``--out``
    (sample paths made absolute)."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    recipe = text.split("\ndemo:", 1)[1].split("\n\t", 1)[1].split("\n", 1)[0]
    words = shlex.split(recipe)
    assert words[0] == "$(BIN)/tradeloop", recipe
    args = words[1:]
    out = args.index("--out")
    del args[out : out + 2]
    return [str(ROOT / a) if a.startswith("samples/") else a for a in args]


def test_core_commands_run_without_any_extra(
    tmp_path: Path, sample_1h: Path, run_cli: RunCli
) -> None:
    # Arrange
    run, full = tmp_path / "runs" / "demo", tmp_path / "full" / "demo"
    backtest = _demo_command()  # what `make demo` runs after installing the core only
    assert str(sample_1h) in backtest
    # Act
    steps = {
        "help": _lean(_RUN_CLI, "--help", cwd=tmp_path),
        "backtest": _lean(_RUN_CLI, *backtest, "--out", str(run), cwd=tmp_path),
        "check": _lean(_RUN_CLI, "data", "check", str(sample_1h), cwd=tmp_path),
        "runs": _lean(_RUN_CLI, "runs", "--root", str(run.parent), "--json", cwd=tmp_path),
        "report": _lean(_RUN_CLI, "report", str(run), cwd=tmp_path),
        "strategies": _lean(_RUN_CLI, "strategies", "--json", cwd=tmp_path),
    }
    reference = run_cli(*backtest, "--out", str(full))  # the same run with every extra
    # Assert: each exits 0 with its real output; the backtest equals the full install's
    for name, proc in steps.items():
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
    assert reference.exit_code == 0, reference.output
    assert "backtest" in steps["help"].stdout
    assert "serve" in steps["help"].stdout
    assert "sma_cross · BTC/USDT · 4h" in steps["backtest"].stdout
    for name in ("trades.csv", "equity.parquet", "report.html", "run.json"):
        assert (run / name).is_file(), name
    assert (run / "trades.csv").read_text() == (full / "trades.csv").read_text()
    assert "window.Plotly" in (run / "report.html").read_text()
    (listed,) = json.loads(steps["runs"].stdout)
    (expected,) = json.loads(run_cli("runs", "--root", str(full.parent), "--json").output)
    assert listed["strategy"] == expected["strategy"] == "sma_cross"
    assert (listed["trades"], listed["sharpe"]) == (expected["trades"], expected["sharpe"])
    assert "sma_cross" in {s["name"] for s in json.loads(steps["strategies"].stdout)}
    assert "duplicate timestamps" in steps["check"].stdout


@pytest.mark.parametrize(
    ("args", "extra", "feature"),
    [
        (["serve"], "serve", "tradeloop serve"),
        (["optimize", "-s", "sma_cross", "-d", "{sample}", "-p", "fast=5:10:5"], "ml", None),
        (["train", "-s", "sma_cross", "-d", "{sample}"], "ml", "tradeloop train"),
        (["ml", "evaluate", "-s", "sma_cross", "-d", "{sample}"], "ml", None),
        (["regime", "fit", "--name", "r", "-d", "{sample}"], "ml", "tradeloop regime fit"),
        (["learn", "propose", "--help"], None, None),
        (["live", "-s", "sma_cross", "--symbol", "BTC/USDT"], "live", "tradeloop live"),
        (
            ["run", "--config", "{root}/deploy/loop.toml", "--check"],
            "live",
            "a loop with a Redis bus ([bus] url)",
        ),
        (["backtest", "-s", "sma_cross", "-d", "{sample}", "--model", "m"], "ml", "--model"),
        (["backtest", "-s", "sma_cross", "-d", "{sample}", "--regime", "r"], "ml", "--regime"),
        (
            [
                "paper",
                "-s",
                "sma_cross",
                "--symbol",
                "BTC/USDT",
                "--state",
                "postgresql://u@127.0.0.1/x",
            ],
            "live",
            "a PostgreSQL state store",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_command_needing_an_extra_names_it(
    tmp_path: Path, sample_1h: Path, args: list[str], extra: str | None, feature: str | None
) -> None:
    # Act
    proc = _lean(_RUN_CLI, *(a.format(sample=sample_1h, root=ROOT) for a in args), cwd=tmp_path)
    # Assert: one line naming the extra and its install command, exit 2, no traceback
    if extra is None:  # its help works without the extra
        assert proc.returncode == 0, proc.stderr
        return
    line = f"needs the {extra} extra: pip install 'tradeloop[{extra}]'"
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert line in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if feature is not None:
        assert f"{feature} {line}" in proc.stderr
    assert not list(tmp_path.rglob("run.json"))  # refused before any work


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_on_the_core_with_the_serve_extra_alone(tmp_path: Path, sample_1h: Path) -> None:
    # Arrange: a backtest recorded by the core, then `tradeloop serve` with only `serve` added
    output = tmp_path / "output"
    run = _lean(
        _RUN_CLI,
        "backtest",
        "-s",
        "sma_cross",
        "-d",
        str(sample_1h),
        "-t",
        "1d",
        "--out",
        str(output / "runs" / "daily"),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    port = _free_port()
    args = ["serve", "--port", str(port), "--output", str(output)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_CLI, *args],
        cwd=tmp_path,
        env=_lean_env({**os.environ, "TRADELOOP_API_KEY": "lean-core-key"}, ("serve",)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Act: wait (bounded) for the API, then list the recorded runs
        health = None
        deadline = time.monotonic() + 90
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        runs = httpx.get(f"http://127.0.0.1:{port}/runs", timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    # Assert
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert runs.status_code == 200
    assert [r["strategy"] for r in runs.json()] == ["sma_cross"]
