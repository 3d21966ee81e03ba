"""The core decides, the services act: domain/ imports no I/O library; only cli.py reads os.environ."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "shortage_watch"
IO_LIBRARIES = {"sqlalchemy", "requests", "smtplib", "jinja2", "apscheduler", "openpyxl", "psycopg", "socket",
                "aiosmtpd", "prometheus_client", "alembic"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_no_io_library() -> None:
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(_imports(p) & IO_LIBRARIES) for p in (PACKAGE / "domain").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_cli_reads_the_environment() -> None:
    readers = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "os.environ" in p.read_text(encoding="utf-8") or "getenv(" in p.read_text(encoding="utf-8")
    ]
    assert readers == ["cli.py"]


def test_only_clock_reads_the_system_clock() -> None:
    readers = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if any(call in p.read_text(encoding="utf-8") for call in ("datetime.now(", "date.today(", "datetime.utcnow("))
    ]
    assert readers == ["clock.py"]


def _modules_imported(path: Path) -> set[str]:
    """Every module `path` imports, in full (function-local imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_intake_imports_nothing_from_services() -> None:
    """Sources only fetch; polling (lease, transactions, cursor, outcome) is services/poll.py's."""
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(m for m in _modules_imported(p) if m.startswith("shortage_watch.services"))
        for p in (PACKAGE / "intake").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
