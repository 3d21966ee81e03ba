"""Rows found by several key columns at once, a chunk's worth of keys in one statement."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement


def any_key(columns: Sequence[Any], keys: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
    """`(c1 = k1 AND c2 = k2 …) OR …` over `keys` (at least one), each group a lookup on the index over `columns`.

    Two IN lists instead would probe every combination of their values (500 ids x 400 parties per
    chunk: 50 times slower on a re-sent file), an IN on one column would read a party's whole history,
    and SQLite does not drive a row-value IN by the index. The keys are padded to the
    next power of two by repeating the last (an OR finds its row once): each number of keys is a
    statement SQLAlchemy compiles and caches with its bind parameters, and a file's chunks come in
    every size up to 500.
    """
    return or_(*(and_(*(column == value for column, value in zip(columns, key))) for key in _padded(keys)))


def _padded(keys: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`keys` (at least one) and the last repeated up to the next power of two (see `any_key`)."""
    return list(keys) + [keys[-1]] * ((1 << (len(keys) - 1).bit_length()) - len(keys))
