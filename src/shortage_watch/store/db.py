"""Engine and session set-up, and schema migrations (Alembic, run programmatically)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# A SQLite ledger's WAL is checkpointed into the database file once it holds this many pages (see `make_engine`).
WAL_CHECKPOINT_PAGES = 100_000
# What a checkpointed WAL file is cut back to on disk (it is reused, and would otherwise keep its largest size).
WAL_KEPT_BYTES = 64 * 1024 * 1024
# Statements a SQLite connection keeps prepared. Python's default, 128, counts statements whatever their size:
# the multi-row inserts of each chunk's last rows (a statement per row count, up to 1,000 rows of 17 columns)
# filled it, and storing 200,000 notices grew by 90 MB and was still growing. 32 hold a sweep's or a
# chunk's recurring statements (200,000 notices: peak 173 MB, flat after the first chunks; same time).
SQLITE_KEPT_STATEMENTS = 32
# Execution option of the engine behind `make_read_sessionmaker`: its transactions only read.
READS_ONLY = "shortage_watch_reads_only"


def make_engine(url: str, *, reads_only: bool = False) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and their folder created.

    `reads_only`: SQLite transactions start deferred, so a reader (`health`) never waits
    for a writer's lock (WAL lets it read the last commit meanwhile).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "cached_statements": SQLITE_KEPT_STATEMENTS})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # pysqlite's own transaction handling defers BEGIN; we issue it ourselves
            # so that a claim's UPDATE and its SELECT happen under one write lock.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint copies the WAL into the file, page by page wherever each lives, and fsyncs it: 25 ms to
            # over 1 s for a large ledger. At SQLite's default of every 1000 pages (4 MB) every batch of a bulk sweep
            # or ingest paid one; at 10,000 pages, 100,000 obligations swept among 1,000,000 paid 16 (3.7 s of an
            # 18 s sweep), each rewriting the same hot index pages. 100,000 pages (400 MB of WAL) pay one (1.3 s).
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cur.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A writer takes the write lock at BEGIN (IMMEDIATE), so its reads and the UPDATE
            # that follows them see one state; a reader begins deferred and never holds it:
            # under WAL it reads the last commit while a writer works. `query_only` makes a
            # write in a reader's transaction fail, as READ ONLY does on PostgreSQL.
            reader = bool(reads_only or conn.get_execution_options().get(READS_ONLY, False))
            if conn.info.get(READS_ONLY, False) != reader:  # set once per change, not per transaction
                conn.exec_driver_sql(f"PRAGMA query_only={int(reader)}")
                conn.info[READS_ONLY] = reader
            conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def sqlite_ledger_missing(url: str) -> str | None:
    """Why a SQLite URL names no existing ledger file (its folder or the file is missing); None when
    it exists or the database is not a SQLite file. Checked before connecting: SQLite would
    otherwise create an empty file wherever the URL points."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database).absolute()
    if path.is_file():
        return None
    if not path.parent.is_dir():
        return f"数据库文件夹 {path.parent} 不存在 / the database folder {path.parent} does not exist"
    return f"没有数据库文件 {path} / no ledger at {path}"


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for work that writes (on SQLite each transaction takes the write lock at BEGIN)."""
    return sessionmaker(engine, expire_on_commit=False)


def reading(engine: Engine) -> Engine:
    """`engine` for transactions that only read: they never take or wait for the write lock, and a
    write in them fails. SQLite: a deferred BEGIN; PostgreSQL: a READ ONLY transaction. Same pool."""
    options: dict[str, object] = {READS_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return engine.execution_options(**options)


def make_read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for readers (listings, metrics, health, web pages that only show), on `reading(engine)`."""
    return sessionmaker(reading(engine), expire_on_commit=False)


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision`."""
    command.upgrade(_alembic_config(engine), revision)


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Take the schema back down to `revision`."""
    command.downgrade(_alembic_config(engine), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with reading(engine).connect() as conn:  # asked by `health` too: never waits for a writer
        return MigrationContext.configure(conn).get_current_revision()


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
