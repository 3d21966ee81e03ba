"""The database errors callers outside store/ may catch, so that they need not import sqlalchemy.

OperationalError: the database is locked, busy, restarted or unreachable (a retry may work);
InterfaceError: the driver lost its connection; SQLAlchemyError: any database error.
"""

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

__all__ = ["InterfaceError", "OperationalError", "SQLAlchemyError"]
