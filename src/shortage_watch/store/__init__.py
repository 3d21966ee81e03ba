"""Persistence: SQLAlchemy tables, engine set-up, repository queries, Alembic migrations."""
