"""The CLI starts fast: `--help` and `deadline` never import the database layer or a command's services.

Each check runs in a fresh interpreter (this test process has imported everything already) and reads
`sys.modules` after the command: a top-level import that brings sqlalchemy back into cli.py, commands/
or settings.py fails here. bench/bench_cli_startup.py measures the times themselves.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each check starts an interpreter of its own

REPO = Path(__file__).resolve().parents[2]

# Libraries that only a command touching the database, mail, the web or the daemon needs.
HEAVY = {"sqlalchemy", "alembic", "psycopg", "apscheduler", "jinja2", "openpyxl", "fastapi", "uvicorn", "requests"}

PROBE = """
import json, sys
from shortage_watch.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _imported_by(*args: str) -> tuple[int, set[str]]:
    """Run the CLI with `args` in a new interpreter: its exit code and the modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTAGE_WATCH_")}
    env["SHORTAGE_WATCH_CONFIG"] = str(REPO / "config" / "shortage_watch.toml")
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=60)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def _packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_imports_no_database_layer_services_or_models() -> None:
    code, modules = _imported_by("--help")
    assert code == 0
    assert _packages(modules) & HEAVY == set()
    # Neither the calendar nor the record models (pydantic): only commands that count days or read records.
    assert {"holidays", "pydantic"} & _packages(modules) == set()
    assert not any(name.startswith("shortage_watch.services") for name in modules)


def test_deadline_reads_the_calendar_without_the_database_layer() -> None:
    code, modules = _imported_by("deadline", "--received", "2024-09-27")
    assert code == 0
    assert _packages(modules) & HEAVY == set()
    assert "holidays" in modules and "holidays.countries" not in modules  # China alone, not every country
