"""The layers, by their imports: domain/ imports no I/O library and opens no file; intake/ imports no service; commands/
import no sqlalchemy; no SQL statement is built outside store/; only cli.py reads os.environ."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "shortage_watch"
IO_LIBRARIES = {"sqlalchemy", "requests", "smtplib", "jinja2", "apscheduler", "openpyxl", "psycopg", "socket",
                "aiosmtpd", "prometheus_client", "alembic"}


# What builds a statement: the constructs (select, insert, ...), SQL functions, dialect-specific
# inserts, and the whole package (whose `sa.select` is all of these).
STATEMENT_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "union", "union_all", "exists"}

# Modules outside store/ that still build SQL statements, each with its owner this session
# (issue 10: every statement moves into store/). The list may only shrink.
STATEMENTS_PENDING = {
}


def _modules(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _imported_modules(path: Path) -> set[str]:
    """Every module the file imports, in full (`sqlalchemy.exc`, `shortage_watch.services.ingest`), at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imported_modules(path)}


def _statement_builders(path: Path) -> set[str]:
    """The sqlalchemy names the file imports that build statements (at any depth, lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in ("sqlalchemy", "sqlalchemy.sql"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in STATEMENT_BUILDERS or alias.name == "*" or node.module == "sqlalchemy.dialects":
                    found.add(f"{node.module}.{alias.name}")
        elif (isinstance(node, ast.Attribute) and node.attr in ("select", "insert", "update", "delete")
              and isinstance(node.value, ast.Attribute) and node.value.attr == "__table__"):
            found.add(f"__table__.{node.attr}")  # a mapped class's Table builds one too
    return found


def test_domain_imports_no_io_library() -> None:
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(_imports(p) & IO_LIBRARIES) for p in (PACKAGE / "domain").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


# What opens a file: the builtin, pathlib's readers and writers, and the modules that reach the file system.
FILE_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "glob", "rglob", "unlink", "mkdir"}
FILE_MODULES = {"os", "io", "pathlib", "shutil", "tempfile", "glob", "fileinput"}


def _file_access(source: str) -> set[str]:
    """How the source reaches a file: `open(...)`, `x.read_text(...)` and the like, or a file-system module imported."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "open":
                found.add("open()")
            elif isinstance(node.func, ast.Attribute) and node.func.attr in FILE_METHODS:
                found.add(f".{node.func.attr}()")
        elif isinstance(node, ast.Import):
            found.update(f"import {a.name}" for a in node.names if a.name.split(".")[0] in FILE_MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] in FILE_MODULES:
            found.add(f"from {node.module}")
    return found


def test_file_access_is_recognised() -> None:
    assert _file_access("from pathlib import Path\nPath('p.toml').read_text()") == {"from pathlib", ".read_text()"}
    assert _file_access("with open('x') as f: pass") == {"open()"}
    assert _file_access("import os.path") == {"import os.path"}


def test_domain_opens_no_file() -> None:
    """The rules parse text and data they are given; settings and intake read the files."""
    offenders = {_name(p): sorted(_file_access(p.read_text(encoding="utf-8"))) for p in _modules("domain")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_cell_and_column_readers_are_as_pure_as_the_domain() -> None:
    """domain/records.py reads its fields with intake/cells.py; both intake modules stay free of I/O."""
    offenders = {
        name: sorted((_imports(PACKAGE / name) & IO_LIBRARIES) | _file_access((PACKAGE / name).read_text(encoding="utf-8")))
        for name in ("intake/cells.py", "intake/columns.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert not {m for m in _imported_modules(PACKAGE / "intake/cells.py") if m.startswith("shortage_watch.")} - {
        "shortage_watch.domain.labels", *(f"shortage_watch.domain.labels.{n}" for n in ("CHOICE_FIELDS", "accepted_words", "choice_values", "label"))
    }, "cells.py builds on the label table only, so domain/records.py importing it makes no cycle"


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


def test_intake_imports_nothing_from_services() -> None:
    """Sources only fetch; polling (lease, transactions, cursor, outcome) is services/poll.py's."""
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(m for m in _imported_modules(p) if m.startswith("shortage_watch.services"))
        for p in (PACKAGE / "intake").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_commands_import_no_sqlalchemy() -> None:
    offenders = {_name(p): sorted(m for m in _imported_modules(p) if m.split(".")[0] == "sqlalchemy")
                 for p in _modules("commands")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_sql_statement_is_built_outside_store() -> None:
    builders = {_name(p): sorted(_statement_builders(p)) for p in _modules() if not _name(p).startswith("store/")}
    builders = {k: v for k, v in builders.items() if v}
    assert set(builders) - set(STATEMENTS_PENDING) == set(), "build it in a store/ module and call that"


def test_statement_scan_finds_each_way_of_building_sql(tmp_path: Path) -> None:
    cases = {
        "from sqlalchemy import select": {"sqlalchemy.select"},
        "from sqlalchemy.dialects import postgresql": {"sqlalchemy.dialects.postgresql"},
        "from sqlalchemy.dialects.sqlite import insert": {"sqlalchemy.dialects.sqlite.insert"},
        "import sqlalchemy as sa": {"sqlalchemy"},
        "def f():\n    from sqlalchemy import func, text": {"sqlalchemy.func", "sqlalchemy.text"},
        "session.execute(AuditEvent.__table__.insert(), rows)": {"__table__.insert"},
        "from sqlalchemy.orm import Session\nfrom sqlalchemy.exc import OperationalError": set(),
    }
    for source, expected in cases.items():
        module = tmp_path / "module.py"
        module.write_text(source, encoding="utf-8")
        assert _statement_builders(module) == expected, source
