"""The deployment files are valid for their own tools, and the commands they run are ones
`tradeloop serve` accepts.

- the compose file: parsed, every service has a health check, the mounted files exist, the
  Prometheus scrape target is the tradeloop service's port; `docker compose config` when the
  compose plugin is installed;
- the Prometheus config and alert rules: the structure Prometheus requires (and the rules'
  expressions parse as PromQL-shaped series names the app exports, checked in the serve e2e);
- the Grafana provisioning and dashboard JSON;
- the systemd unit: `systemd-analyze verify` (with ExecStart pointed at this environment's
  `tradeloop`);
- the launchd plist, Procfile, railway.toml and the Dockerfile's CMD: every command line is
  parsed by the real `serve` command (unknown options fail).
"""

from __future__ import annotations

import json
import plistlib
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from tradeloop.engine.loop_config import load_loop_config
from tradeloop.testing import environment

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def _serve_accepts(argv: list[str]) -> None:
    """Parse ``argv`` (``tradeloop serve ...``) with the real CLI; raise on a bad option."""
    import typer

    from tradeloop.cli.app import app

    assert argv[:2] == ["tradeloop", "serve"], argv
    command = typer.main.get_command(app)
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    args = [a.replace("$PORT", "8000") for a in argv[2:]]
    ctx = serve.make_context("serve", args)
    assert ctx.params["port"] == 8000
    assert ctx.params["config"] is not None


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_has_every_service_with_a_health_check_and_existing_mounts() -> None:
    # Act
    compose = _compose()
    services = compose["services"]
    # Assert
    assert set(services) == {"tradeloop", "redis", "postgres", "prometheus", "grafana"}
    assert all("healthcheck" in s for s in services.values())
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"
    app = services["tradeloop"]
    assert app["ports"] == ["8000:8000"]
    assert {"redis", "postgres"} <= set(app["depends_on"])
    # secrets are required from the environment, never written here
    assert app["environment"]["TRADELOOP_API_KEY"].startswith("${TRADELOOP_API_KEY:?")


def _compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) or the standalone ``docker-compose``, whichever exists."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_file() -> None:
    compose = _compose_command()
    if compose is None:
        environment.unavailable("docker compose (or docker-compose) is not installed here")
    env = {"TRADELOOP_API_KEY": "k", "POSTGRES_PASSWORD": "p", "GRAFANA_ADMIN_PASSWORD": "g"}
    out = subprocess.run(
        [*compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert out.returncode == 0, out.stderr


def test_prometheus_scrapes_the_service_port_and_loads_the_rules() -> None:
    # Act
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    compose = _compose()
    # Assert
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["tradeloop:8000"]
    mounted = compose["services"]["prometheus"]["volumes"]
    assert any(v.endswith(":/etc/prometheus/alerts.yml:ro") for v in mounted)
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert len(names) == len(set(names)) == 4
    assert all(r["expr"] and r["labels"]["severity"] for g in rules["groups"] for r in g["rules"])


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    # Act
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "tradeloop.yml").read_text()
    )
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "tradeloop.json").read_text())
    # Assert
    (ds,) = source["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert dashboard["uid"] == "tradeloop"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 12
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == ds["uid"]
        assert panel["targets"]
        assert all("tradeloop_" in t["expr"] or "process_" in t["expr"] for t in panel["targets"])


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        environment.unavailable("systemd-analyze is not installed here")
    unit = (DEPLOY / "systemd" / "tradeloop.service").read_text()
    exec_line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(exec_line.removeprefix("ExecStart="))
    here = str(Path(sys.executable).parent / "tradeloop")
    copy = tmp_path / "tradeloop.service"
    copy.write_text(unit.replace(argv[0], here))
    # Act
    out = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    # Assert
    assert out.returncode == 0, out.stderr
    _serve_accepts(["tradeloop", *argv[1:]])


def test_launchd_plist_procfile_railway_and_docker_run_a_valid_serve_command() -> None:
    # Act
    plist = plistlib.loads((DEPLOY / "launchd" / "com.tradeloop.serve.plist").read_bytes())
    procfile = (ROOT / "Procfile").read_text().strip()
    railway = tomllib.loads((ROOT / "railway.toml").read_text())
    docker = (ROOT / "Dockerfile").read_text()
    cmd_line = next(x for x in docker.splitlines() if x.startswith("CMD "))
    # Assert
    assert plist["Label"] == "com.tradeloop.serve"
    assert plist["RunAtLoad"] is True
    _serve_accepts(["tradeloop", *plist["ProgramArguments"][1:]])
    assert procfile.startswith("web: ")
    _serve_accepts(shlex.split(procfile.removeprefix("web: ")))
    assert railway["deploy"]["healthcheckPath"] == "/health"
    _serve_accepts(shlex.split(railway["deploy"]["startCommand"]))
    _serve_accepts(json.loads(cmd_line.removeprefix("CMD ")))
    # two stages; the image runs as a non-root user and checks /health
    assert [x.split()[-1] for x in docker.splitlines() if x.startswith("FROM ")] == [
        "build",
        "runtime",
    ]
    assert "USER tradeloop" in docker
    assert "HEALTHCHECK" in docker


def test_the_bundled_loop_config_is_valid() -> None:
    config = load_loop_config(DEPLOY / "loop.toml")
    assert config.bus.url == "redis://redis:6379/0"
    assert ":" not in config.run.state.split("@")[0].removeprefix("postgresql://")  # no password
