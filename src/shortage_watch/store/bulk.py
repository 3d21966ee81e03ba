"""Many rows into one table through the driver itself: the ledger's bulk writes.

Values are converted by each column's SQLAlchemy type exactly as Core would convert them;
only Core's per-parameter bookkeeping is skipped, which for a large file costs more than
the database's own work. Statements are compiled once per process and table shape.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Iterable

from sqlalchemy import Connection, Table, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite


class DriverInsert:
    """Inserts into `table` through the driver: `insert` (one executemany) and `insert_returning`
    (multi-row INSERT … RETURNING); with `if_absent_on`, a row whose unique `if_absent_on` columns
    exist already is skipped (ON CONFLICT DO NOTHING) and returns nothing."""

    ROWS_PER_STATEMENT = 1000  # multi-row INSERT … RETURNING, under the drivers' bind limits (also `MAX_BINDS`)
    MAX_BINDS = 30_000  # SQLite allows 32,766 since 3.32, PostgreSQL 65,535

    def __init__(self, connection: Connection, table: Table, columns: Iterable[str],
                 as_stored: tuple[str, ...] = (), *, if_absent_on: tuple[str, ...] = ()) -> None:
        """Writes `columns` (the others take their defaults); `as_stored`: columns whose values
        arrive already as the database keeps them (JSON text)."""
        self.connection = connection
        self.table = table
        self.dialect = connection.dialect
        self.if_absent_on = if_absent_on
        compiled = self._insert().inline().compile(dialect=self.dialect, column_keys=list(columns))
        self.sql = compiled.string
        # A positional driver takes the values in the compiled order; a named one by column key.
        self.columns = list(compiled.positiontup) if compiled.positional else list(columns)
        self.positional = compiled.positional
        self.per_statement = min(self.ROWS_PER_STATEMENT, self.MAX_BINDS // max(1, len(self.columns)))
        self.processors = {c.key: None if c.key in as_stored else c.type.dialect_impl(self.dialect).bind_processor(
            self.dialect) for c in table.c}
        self._returning: dict[tuple[int, tuple[str, ...]], tuple[str, list[list[str]] | None]] = {}
        self._pieces: dict[tuple[str, ...], tuple[str, str, str, bool]] = {}
        if self.dialect.name == "postgresql":
            self.sql = _unnest_insert(self.dialect, table, self.columns, if_absent_on)

    def _insert(self) -> Any:
        if not self.if_absent_on:
            return insert(self.table)
        dialect_insert = postgresql.insert if self.dialect.name == "postgresql" else sqlite.insert
        return dialect_insert(self.table).on_conflict_do_nothing(index_elements=list(self.if_absent_on))

    def _values(self, rows: list[dict[str, Any]], same: dict[str, Any]) -> list[list[Any]]:
        """Each row's values in `self.columns` order, converted for the driver."""
        template = [None] * len(self.columns)
        varying = []
        processors = self._converters()
        for index, key in enumerate(self.columns):
            convert = processors[key]
            if key in same:
                template[index] = same[key] if convert is None else convert(same[key])
            else:
                varying.append((index, key, convert))
        converted = []
        for row in rows:
            values = template.copy()
            for index, key, convert in varying:
                value = row[key]
                values[index] = value if convert is None else convert(value)
            converted.append(values)
        return converted

    def _converters(self) -> dict[str, Any]:
        """Each column's bind processor, remembering for one call what each value object became: a
        document many rows share (a ladder snapshot) is serialised once, an instant they share (the
        sweep's `now`, a batch's next step) formatted once."""
        return {key: None if convert is None else _once_per_object(convert) for key, convert in self.processors.items()}

    def insert(self, rows: list[dict[str, Any]], **same: Any) -> None:
        """Insert `rows` (column key -> Python value) in one executemany; `same`: values shared by every row."""
        if not rows:
            return
        values = self._values(rows, same)
        if self.dialect.name == "postgresql":
            _in_arrays(self.connection, self.sql, values, len(self.columns))
            return
        params = [tuple(v) for v in values] if self.positional else [dict(zip(self.columns, v)) for v in values]
        self.connection.exec_driver_sql(self.sql, params)

    def insert_returning(self, rows: list[dict[str, Any]], returning: tuple[str, ...], **same: Any) -> list[Any]:
        """Insert `rows` like `insert` (multi-row statements on SQLite, one statement of column arrays per
        `ARRAY_ROWS` on PostgreSQL); the `returning` columns of the new rows come back in no particular order."""
        values = self._values(rows, same)
        if self.dialect.name == "postgresql":
            sql = self.sql + " RETURNING " + ", ".join(self.dialect.identifier_preparer.quote(key) for key in returning)
            return _in_arrays(self.connection, sql, values, len(self.columns))
        returned: list[Any] = []
        for start in range(0, len(values), self.per_statement):
            batch = values[start:start + self.per_statement]
            sql, names = self._returning_statement(len(batch), returning)
            if names is None:  # positional, row after row in column order
                params: Any = tuple(value for row in batch for value in row)
            else:
                params = {}
                for row_names, row in zip(names, batch):
                    params.update(zip(row_names, row))
            returned.extend(self.connection.exec_driver_sql(sql, params).all())
        return returned

    def _returning_statement(self, rows: int, returning: tuple[str, ...]) -> tuple[str, list[list[str]] | None]:
        """SQL for `rows` rows (binds `<column>_<row>`) and, for a named driver, each row's bind names.

        The one-row statement is compiled once; more rows repeat its VALUES group (renaming a
        named driver's binds per row), so a new row count costs no compilation. Only the
        one-row pieces and the full-size statement are kept (memory stays bounded)."""
        shape = (rows, returning)
        if shape in self._returning:
            return self._returning[shape]
        if returning not in self._pieces:
            self._pieces[returning] = self._one_row(returning)
        head, group, tail, positional = self._pieces[returning]
        if positional:
            built: tuple[str, list[list[str]] | None] = (head + ", ".join([group] * rows) + tail, None)
        else:
            names = [[f"{key}_{i}" for key in self.columns] for i in range(rows)]
            groups = [_NAMED_BIND.sub(lambda m, i=i: f"%({m.group(1)}_{i})s", group) for i in range(rows)]
            built = (head + ", ".join(groups) + tail, names)
        if rows in (self.per_statement, 1):
            self._returning[shape] = built
        return built

    def _one_row(self, returning: tuple[str, ...]) -> tuple[str, str, str, bool]:
        """The one-row INSERT … RETURNING split around its VALUES group: (head, group, tail, positional)."""
        table = self.table
        statement = self._insert().values({key: bindparam(key, type_=table.c[key].type) for key in self.columns})
        compiled = statement.returning(*(table.c[key] for key in returning)).compile(dialect=self.dialect)
        if compiled.positional and list(compiled.positiontup) != self.columns:
            raise RuntimeError(f"unexpected bind order for {table.name}")
        sql = compiled.string
        start = sql.index(" VALUES (") + len(" VALUES ")
        depth = 0
        for end, char in enumerate(sql[start:], start):  # the group's closing parenthesis (casts nest some)
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0:
                break
        if not compiled.positional and set(_NAMED_BIND.findall(sql[start:end + 1])) != set(self.columns):
            raise RuntimeError(f"unexpected bind names for {table.name}")
        return sql[:start], sql[start:end + 1], sql[end + 1:], bool(compiled.positional)


def _once_per_object(convert: Any) -> Any:
    """`convert`, remembering its result per value object (alive meanwhile, so ids are not reused)."""
    done: dict[int, tuple[Any, Any]] = {}

    def converted(value: Any) -> Any:
        if value is None:
            return convert(value)
        found = done.get(id(value))
        if found is None:
            found = done[id(value)] = (value, convert(value))  # the value is kept, so its id stays its own
        return found[1]

    return converted


# PostgreSQL takes a set of rows as one array per column (`unnest`): one statement, a handful of parameters
# the driver binds in C, where a pipelined executemany spent ~30 us of Python per row in the driver (a
# sweep batch's 1,000 alerts, audit events and obligation updates: 0.1 s a batch) and the server planned
# each row apart. Rows per statement are bounded so a large file's chunk stays one modest message.
ARRAY_ROWS = 10_000


def _in_arrays(connection: Connection, sql: str, values: list[list[Any]], width: int) -> list[Any]:
    """Run `sql` (an `unnest` statement) on rows of `width` `values`, `ARRAY_ROWS` rows a statement, each
    column as one array; the rows it returns, if it returns any."""
    returned: list[Any] = []
    for start in range(0, len(values), ARRAY_ROWS):
        chunk = values[start:start + ARRAY_ROWS]
        result = connection.exec_driver_sql(sql, tuple([row[index] for row in chunk] for index in range(width)))
        if result.returns_rows:
            returned.extend(result.all())
    return returned


def _array_types(dialect: Any, table: Table, columns: list[str]) -> list[str]:
    """`CAST(%s AS <type>[])` of each column: the driver's own array type may be narrower (smallint for
    small ints) or unknown (a column of NULLs), so each array is cast to its column's type."""
    return [f"CAST(%b AS {table.c[key].type.compile(dialect=dialect)}[])" for key in columns]


def _unnest_insert(dialect: Any, table: Table, columns: list[str], if_absent_on: tuple[str, ...]) -> str:
    """INSERT of `columns` from column arrays (positional binds, in `columns` order); rows are inserted in
    array order, so of two rows with one `if_absent_on` key the first is written, as row by row."""
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(key) for key in columns)}) "
           f"SELECT * FROM unnest({', '.join(_array_types(dialect, table, columns))})")
    if if_absent_on:
        sql += f" ON CONFLICT ({', '.join(quote(key) for key in if_absent_on)}) DO NOTHING"
    return sql


def _unnest_update(dialect: Any, table: Table, key: str, columns: list[str]) -> str:
    """UPDATE setting `columns` of each row found by `key`, from column arrays (binds: `key`, then `columns`)."""
    quote = dialect.identifier_preparer.quote
    names = [f"c{index}" for index in range(len(columns) + 1)]
    sets = ", ".join(f"{quote(column)} = v.{name}" for column, name in zip(columns, names[1:]))
    return (f"UPDATE {quote(table.name)} SET {sets} FROM unnest({', '.join(_array_types(dialect, table, [key, *columns]))}) "
            f"AS v({', '.join(names)}) WHERE {quote(table.name)}.{quote(key)} = v.{names[0]}")


_NAMED_BIND = re.compile(r"%\((\w+)\)s")
class DriverUpdate:
    """Sets `columns` of many rows of `table`, each found by `key`, in one executemany through the driver."""

    def __init__(self, connection: Connection, table: Table, key: str, columns: Iterable[str]) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.order = [key, *columns]
        statement = update(table).where(table.c[key] == bindparam(f"_{key}", type_=table.c[key].type)).values(
            {column: bindparam(f"_{column}", type_=table.c[column].type) for column in columns})
        compiled = statement.compile(dialect=self.dialect)
        self.sql = compiled.string
        self.binds = list(compiled.positiontup) if compiled.positional else None
        if self.binds is not None and sorted(self.binds) != sorted(f"_{name}" for name in self.order):
            raise RuntimeError(f"unexpected binds for {table.name}")
        self.processors = {name: table.c[name].type.dialect_impl(self.dialect).bind_processor(self.dialect) for name in self.order}
        if self.dialect.name == "postgresql":
            self.sql = _unnest_update(self.dialect, table, key, list(columns))

    def update(self, rows: list[dict[str, Any]]) -> None:
        """`rows`: the key column and each set column -> Python value."""
        if not rows:
            return
        # Rows share most instants (the sweep's `now`, a batch's next steps): each is converted once.
        processors = {name: None if convert is None else _once_per_object(convert) for name, convert in self.processors.items()}
        # A positional driver (SQLite) takes each row's values in bind order; PostgreSQL's arrays and a named
        # driver, in `self.order`.
        positional = self.binds is not None and self.dialect.name != "postgresql"
        names = [bind[1:] for bind in self.binds] if positional else self.order
        order = [(name, processors[name]) for name in names]
        values = [[row[name] if convert is None else convert(row[name]) for name, convert in order] for row in rows]
        if self.dialect.name == "postgresql":
            _in_arrays(self.connection, self.sql, values, len(order))
        elif positional:
            self.connection.exec_driver_sql(self.sql, [tuple(row) for row in values])
        else:
            self.connection.exec_driver_sql(self.sql, [{f"_{name}": value for name, value in zip(names, row)} for row in values])


_UPDATERS: dict[tuple[str, str, str, tuple[str, ...]], DriverUpdate] = {}


def updater(connection: Connection, table: Table, key: str, columns: Iterable[str]) -> DriverUpdate:
    """A `DriverUpdate` of `columns` by `key` on `connection`; compiled once per process and shape."""
    columns = tuple(columns)
    found_key = (connection.dialect.name, table.name, key, columns)
    compiled = _UPDATERS.get(found_key)
    if compiled is None:
        compiled = _UPDATERS[found_key] = DriverUpdate(connection, table, key, columns)
    bound = copy.copy(compiled)  # see `inserter`
    bound.connection = connection
    return bound


_INSERTERS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], DriverInsert] = {}


def inserter(connection: Connection, table: Table, columns: Iterable[str], *, if_absent_on: tuple[str, ...] = (),
             as_stored: tuple[str, ...] = ()) -> DriverInsert:
    """A `DriverInsert` of `columns` into `table` on `connection` (`as_stored`: see `DriverInsert`); compiled
    once per process and shape."""
    columns = tuple(columns)
    key = (connection.dialect.name, table.name, columns, if_absent_on, as_stored)
    compiled = _INSERTERS.get(key)
    if compiled is None:
        compiled = _INSERTERS[key] = DriverInsert(connection, table, columns, as_stored, if_absent_on=if_absent_on)
    # A copy of its own per caller (threads share the compiled statements, not the connection).
    bound = copy.copy(compiled)
    bound.connection = connection
    return bound
