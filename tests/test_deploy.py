"""Deployment files: Docker cannot run here, so check what can be checked without it."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import yaml

from digests.cli import app, run_cmd
from digests.cli.common import EXIT_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {c.name or c.callback.__name__ for c in app.registered_commands} | {
    g.name for g in app.registered_groups
}


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # line continuations
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_is_slim_non_root_and_runs_clapper():
    steps = _instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert [arg for op, arg in steps if op == "CMD"] == ['["clapper", "run"]']
    assert any(op == "HEALTHCHECK" and '"clapper", "status"' in arg for op, arg in steps)
    for op, arg in steps:
        if op == "COPY":
            for src in shlex.split(arg)[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: no such path"


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in (".env", ".venv", ".git", "*.db"):
        assert pattern in ignored


def test_compose_file_parses_and_wires_the_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "app", "deliver"}
    assert services["db"]["image"].startswith("postgres:")
    assert services["app"]["command"] == ["clapper", "run"]
    assert services["deliver"]["command"] == ["clapper", "deliver"]
    assert services["app"]["healthcheck"]["test"] == ["CMD", "clapper", "status"]
    for name in ("app", "deliver"):
        svc = services[name]
        assert svc["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert svc["build"] == "." and svc["stop_grace_period"] == "150s"
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pgdata" in compose["volumes"]


def test_compose_and_unit_only_use_commands_that_exist():
    assert {"run", "scheduler", "status", "deliver"} <= COMMANDS
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    used = {svc["command"][1] for svc in compose["services"].values() if "command" in svc}
    assert used <= COMMANDS


def test_systemd_unit_runs_clapper_as_its_own_user_and_stops_gracefully():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(ROOT / "deploy" / "clapper.service", encoding="utf-8")
    service = unit["Service"]
    assert service["ExecStart"].endswith("/clapper run")
    assert service["User"] == "clapper"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 90
    assert service["RestartPreventExitStatus"].split() == [str(run_cmd.EXIT_CONFIG), str(EXIT_SETTINGS)]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
