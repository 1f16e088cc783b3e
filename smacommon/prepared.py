"""The statements a worker runs for every job, compiled once per dialect and run on the
driver's own cursor.

A job's claim and its final transaction run about ten Core statements. Through
`Connection.execute` each costs about 50 µs of Python on top of what the database does (a
prebuilt UPDATE … RETURNING on SQLite: 48 µs against 5 µs on the cursor; see
bench/RESULTS.md "2026-12-03"): the compiled-cache lookup, an execution context, the
parameters processed through dictionaries, events, a result object. `execute` here does what
that machinery does for these statements, and no more:

- the statement is compiled once per dialect, with SQLAlchemy's own compiler (the SQL is
  SQLAlchemy's: the parameter style, bind casts and quoting of the dialect);
- each parameter goes through its type's bind processor for the dialect (UUIDs as SQLite's
  hex, timestamps made naive UTC), and each result column through its result processor
  (JSON, timestamps read back timezone-aware), the processors SQLAlchemy itself would use;
- a driver error is handled by the connection as SQLAlchemy handles it: wrapped in the same
  `sqlalchemy.exc.DBAPIError`, through the engine's `handle_error` listeners, and a lost
  connection invalidated, so retries (`smacommon.db.is_transient`, `once_more_if_cut`) and
  the pool behave the same.

What it leaves out: the `before_cursor_execute`/`after_cursor_execute` events and the
engine's SQL echo; Python-side column defaults (an INSERT here names every column it
writes: `insert_all`); statements whose SQL depends on the parameters (an expanding IN: use
a list of literal values, `in_values`). A Session (the web service's) runs the statement
as it always did.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, literal
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

_lock = threading.Lock()
_compiled: dict[tuple[int, int], _Compiled] = {}


def in_values(column: ColumnElement, values: Iterable[str]) -> ColumnElement:
    """`column IN (...)` with each value a bound literal, not one expanding parameter: the
    SQL does not change from one execution to the next, so it is compiled once."""
    return column.in_([literal(v, column.type) for v in values])


def insert_all(table: Table, columns: Iterable[str]):
    """An INSERT of `columns` (parameters named after them), with no Python-side default
    left to fill in and nothing read back (no implicit RETURNING of the key)."""
    return insert(table).inline().values({name: bindparam(name, type_=table.c[name].type)
                                          for name in columns})


class Result:
    """What a statement run here answered: its rows (named tuples) and rowcount."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[tuple], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def first(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def all(self) -> list[tuple]:
        return self.rows


def execute(conn: Connection | Session, statement: Any,
            params: Mapping[str, Any] | None = None) -> Any:
    """Run `statement` with `params` in `conn`'s transaction: on the driver's cursor for a
    Connection (see the module's docstring), by `Session.execute` for a Session. Both
    answers have first(), scalar(), all() and rowcount."""
    if not isinstance(conn, Connection):
        return conn.execute(statement, params)
    dialect = conn.dialect
    compiled = _compiled.get((id(statement), id(dialect)))
    if compiled is None:
        compiled = _compile(statement, dialect)
    return compiled.run(conn, params or {})


def _compile(statement: Any, dialect: Any) -> _Compiled:
    with _lock:
        key = (id(statement), id(dialect))
        compiled = _compiled.get(key)
        if compiled is None:
            compiled = _compiled[key] = _Compiled(statement, dialect)
        return compiled


class _Compiled:
    """One statement for one dialect: its SQL, how to bind its parameters, how to read its
    rows. Holds the statement and the dialect, so the ids it is found by stay theirs."""

    def __init__(self, statement: Any, dialect: Any) -> None:
        self.statement, self.dialect = statement, dialect
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a statement whose SQL depends on its parameters (an expanding "
                             "IN) cannot be prepared: use in_values()")
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("a statement with Python-side column defaults cannot be "
                             "prepared: give every column a value (insert_all)")
        self.sql = compiled.string
        self.positional = compiled.positional
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        names = list(compiled.positiontup) if self.positional else list(by_name)
        escaped = compiled.escaped_bind_names or {}
        # (name given by the caller, name in the SQL, bind processor, required, value when
        # not given)
        self.binds = []
        for name in names:
            bind = by_name[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            default = None if bind.required else bind.effective_value
            if default is not None and process is not None:
                default = process(default)
            self.binds.append((bind.key, escaped.get(name, name), process, bind.required,
                               default))
        self.returns = bool(getattr(statement, "_returning", ())) or statement.is_select
        self.columns = list(statement.selected_columns if statement.is_select
                            else statement.exported_columns) if self.returns else []
        self.row_type = collections.namedtuple(
            "Row", [c.key for c in self.columns]) if self.returns else None
        self.processors: list | None = None  # read from the first answer's description

    def parameters(self, params: Mapping[str, Any]) -> Any:
        values = []
        for key, _, process, required, default in self.binds:
            if key in params:
                value = params[key]
                if process is not None:
                    value = process(value)
            elif required:
                raise KeyError(f"no value for the parameter {key!r} of {self.sql!r}")
            else:
                value = default
            values.append(value)
        if self.positional:
            return tuple(values)
        return {name: value for (_, name, *_), value in zip(self.binds, values, strict=True)}

    def run(self, conn: Connection, params: Mapping[str, Any]) -> Result:
        bound = self.parameters(params)
        if not conn.in_transaction():  # as Connection.execute begins one (commit as you go)
            conn.begin()
        cursor = None
        try:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute(self.sql, bound)
            rows = cursor.fetchall() if self.returns else []
            if rows and self.processors is None:  # (the description goes with the cursor)
                self.processors = self._processors(cursor.description)
            rowcount = cursor.rowcount
            cursor.close()
        except self.dialect.loaded_dbapi.Error as exc:
            conn._handle_dbapi_exception(exc, self.sql, bound, cursor, None)  # raises
        if rows:
            processors, make = self.processors, self.row_type._make
            if any(processors):
                rows = [make([v if p is None or v is None else p(v)
                              for p, v in zip(processors, row, strict=True)])
                        for row in rows]
            else:
                rows = [make(row) for row in rows]
        return Result(rows, rowcount)

    def _processors(self, description: Any) -> list:
        return [column.type.dialect_impl(self.dialect).result_processor(self.dialect, info[1])
                for column, info in zip(self.columns, description, strict=True)]
