"""Alembic environment: always run programmatically with the engine in `config.attributes`."""

from alembic import context

from shortage_watch.store.tables import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration recreates a table: SQLite drops the old one, and with foreign keys on,
        # dropping a table other rows point at fails (0011 recreates raw_payloads). The pragma is
        # ignored inside a transaction, so it is set on the DB-API connection before ours begins;
        # the rows are checked before commit instead, and foreign keys are on again after.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows pointing at no row: {broken[:10]}")
    finally:
        if sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")
