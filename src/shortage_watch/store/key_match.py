"""Rows found by several key columns at once, a chunk's worth of keys in one statement."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, bindparam, func, literal_column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select


def joined_to_keys(statement: Select[Any], columns: Sequence[Any], keys: Iterable[tuple[Any, ...]], dialect: Dialect) -> Select[Any]:
    """`statement` keeping only the rows whose `columns` equal one of `keys` (a None in a key equals
    nothing), each row once: the keys are one parameter, a set of rows the statement joins to.

    Each key must be a lookup on the index over `columns`: two IN lists would probe every combination
    of their values (500 ids x 400 parties per chunk: 50 times slower on a re-sent file), an IN on one
    column would read a party's whole history, and SQLite does not drive a row-value IN by the index.
    SQLite takes the keys as the outer loop and searches the index for each (EXPLAIN QUERY PLAN: SCAN
    wanted, SEARCH … USING INDEX); PostgreSQL does the same once the table has grown, and hashes a small
    table instead. An OR of one `c1 = k1 AND c2 = k2` per key was also driven by the index, but building
    that expression for every chunk cost a tenth of the ingest of a file of new notices.

    A further condition on another indexed column can turn SQLite's loops round (it keeps no statistics):
    the waiting alerts of some obligations, joined so and filtered on status, were searched by status with
    the keys scanned for each alert (3 s for 420 keys, against 2 ms). Check EXPLAIN QUERY PLAN for such a use.
    """
    keys = list(dict.fromkeys(keys))  # a key given twice would return its rows twice
    if dialect.name == "postgresql":
        names = [f"k{index}" for index in range(len(columns))]
        # unnest of one array per column, cast to the column's type (as `bulk.py` writes rows).
        arrays = [bindparam(None, [key[index] for key in keys], type_=ARRAY(column.type), unique=True)
                  for index, column in enumerate(columns)]
        rows = func.unnest(*arrays).table_valued(*names).render_derived(name="wanted")
        found = [rows.c[name] for name in names]
    else:
        # SQLite (its JSON functions are built in since 3.38): json_each of one JSON array of keys, each key
        # an array of its values as the column stores them (a date as its ISO text).
        processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
        document = json.dumps([[value if convert is None else convert(value) for value, convert in zip(key, processors)]
                               for key in keys])
        rows = func.json_each(bindparam(None, document, unique=True)).table_valued("value").alias("wanted")
        found = [func.json_extract(rows.c.value, literal_column(f"'$[{index}]'")) for index in range(len(columns))]
    return statement.join(rows, and_(*(column == value for column, value in zip(columns, found))))
