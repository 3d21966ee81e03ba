"""Alembic environment: always run programmatically with the engine in `config.attributes`."""

from alembic import context

from shortage_watch.store.tables import Base

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
