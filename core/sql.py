"""Hand-written statements for the hottest paths (every POS request), giving the ORM's model instances.

Django compiles a queryset anew on every call: for a select_related lookup or a model save that is
more CPU than the statement costs the database. `JoinedSelect` writes a SELECT over a model and the
models its foreign keys reach once per process and loads a row into the same instances
`select_related(...).only(...)` would give, with the backend's converters applied (SQLite returns
dates as text); `insert_returning_pk` inserts a model instance with a plain INSERT ... RETURNING.
Both work on PostgreSQL and SQLite.
"""

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connection, connections
from django.db.models import Model
from django.db.models.expressions import DatabaseDefault


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


@dataclass
class Part:
    """One model of a JoinedSelect: its alias, the fields to load, and the foreign key that reaches it."""

    alias: str
    model: type[Model]
    fields: Sequence[str] | None = None  # field names; None for every concrete field
    via: str | None = None  # "parent_alias.foreign_key_name"; None for the main model
    columns: list = field(init=False)

    def __post_init__(self):
        meta = self.model._meta
        names = self.fields if self.fields is not None else [f.name for f in meta.concrete_fields]
        wanted = {meta.get_field(name) for name in names} | {meta.pk}
        # In the model's field order: Model.from_db reads a partial row that way.
        self.columns = [f for f in meta.concrete_fields if f in wanted]


class JoinedSelect:
    """SELECT <columns of every part> <from_sql>, loaded into instances linked like select_related.

    `from_sql` is everything after the column list (FROM, JOINs, WHERE) with %s placeholders and the
    parts' aliases; `{alias}` in it is replaced by that part's quoted table name. A part reached by a
    LEFT JOIN that found nothing is None on its parent.
    """

    def __init__(self, parts: Iterable[Part], from_sql: str, *, extras: Sequence[str] = (),
                 tables: dict[str, type[Model]] | None = None):
        self.parts = list(parts)
        self.from_sql = from_sql
        # SQL expressions after the parts' columns (their params come first): their values, as the database
        # answers them, are the list `extras` of the result. `tables` names more {placeholders} of from_sql and
        # of the extras (a many-to-many table, say) by their model.
        self.extras = list(extras)
        self.tables = dict(tables or {})
        self._sql = None
        self._converters = None

    @property
    def sql(self) -> str:
        if self._sql is None:
            columns = ", ".join(
                f"{quote(part.alias)}.{quote(column.column)}" for part in self.parts for column in part.columns
            )
            tables = {part.alias: quote(part.model._meta.db_table) for part in self.parts}
            tables.update({name: quote(model._meta.db_table) for name, model in self.tables.items()})
            extras = "".join(f", {extra.format(**tables)}" for extra in self.extras)
            self._sql = f"SELECT {columns}{extras} {self.from_sql.format(**tables)}"
        return self._sql

    def _converters_for(self) -> list:
        if self._converters is None:
            converters = []
            for part in self.parts:
                for column in part.columns:
                    expression = column.get_col(part.alias)
                    found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
                    converters.append((expression, found))
            self._converters = converters
        return self._converters

    def fetch(self, params: Sequence) -> dict[str, Model] | None:
        """The instances of the first row, by alias; None when no row matched."""
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        return self.load(row)

    def load(self, row: Sequence) -> dict[str, Model | None]:
        values = list(row[:len(row) - len(self.extras)])
        for index, (expression, converters) in enumerate(self._converters_for()):
            for converter in converters:
                values[index] = converter(values[index], expression, connection)
        found: dict[str, Model | None] = {}
        start = 0
        for part in self.parts:
            chunk = values[start:start + len(part.columns)]
            start += len(part.columns)
            instance = None
            if chunk[0] is not None:
                instance = part.model.from_db(connection.alias, [c.attname for c in part.columns], chunk)
            found[part.alias] = instance
            if part.via:
                parent_alias, name = part.via.split(".")
                parent = found[parent_alias]
                if parent is not None:
                    parent._meta.get_field(name).set_cached_value(parent, instance)
        if self.extras:
            found["extras"] = list(row[len(row) - len(self.extras):])
        return found


_INSERTS: dict[tuple, str] = {}


def insert_returning_pk(instance: Model, *, skip_on_conflict: Sequence[str] = ()) -> int | None:
    """INSERT a new model instance with one plain statement; set and return its primary key.

    With `skip_on_conflict` (the columns of a unique constraint) a row that would break it is not
    inserted (`ON CONFLICT (...) DO NOTHING`): no error, no savepoint needed, and None is returned.
    A concurrent insert of the same key waits for the other transaction and then skips.
    Fields with auto_now_add get their value as in save(); other defaults are the instance's, and a
    field left to its database default is left out of the statement.
    """
    db = connections[DEFAULT_DB_ALIAS]
    meta = instance._meta
    fields, values = [], []
    for f in meta.concrete_fields:
        value = f.pre_save(instance, True)
        if (f.primary_key and value is None) or isinstance(value, DatabaseDefault):
            continue
        fields.append(f)
        values.append(f.get_db_prep_save(value, db))
    key = (db.vendor, meta.label, tuple(f.attname for f in fields), tuple(skip_on_conflict))
    sql = _INSERTS.get(key)
    if sql is None:
        quote = db.ops.quote_name
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
        if skip_on_conflict:
            sql += f" ON CONFLICT ({', '.join(quote(name) for name in skip_on_conflict)}) DO NOTHING"
        sql += f" RETURNING {quote(meta.pk.column)}"
        _INSERTS[key] = sql
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return None
    setattr(instance, meta.pk.attname, row[0])
    instance._state.adding = False
    instance._state.db = db.alias
    return row[0]


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text[] literal: one parameter that the server parses, instead of a list adapted item by item."""
    return "{" + ",".join(
        '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values) + "}"


@contextmanager
def settings_local(cursor, **settings: str) -> Iterator[None]:
    """PostgreSQL settings for the statements inside, put back after them (a failure rolls them back anyway).

    Elsewhere (SQLite) the statements run as they are.
    """
    if connection.vendor != "postgresql":
        yield
        return
    previous = {}
    for name, value in settings.items():
        cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
        previous[name] = cursor.fetchone()[0]
    yield
    for name, value in previous.items():
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def keyset_chunks(queryset, fields: Sequence[str] = ("pk",), *, size: int) -> Iterator[list]:
    """The rows of `queryset` as `values_list(*fields)` (flat for one field), in chunks of at most `size` in
    primary-key order. Each chunk is its own query starting after the last key of the one before (no OFFSET),
    so rows changed or removed by the caller between chunks are neither skipped nor read twice. `fields` starts
    with "pk"."""
    if not fields or fields[0] != "pk":
        raise ValueError('fields must start with "pk"')
    flat = len(fields) == 1
    rows = queryset.order_by("pk")
    last_pk = None
    while True:
        page = rows if last_pk is None else rows.filter(pk__gt=last_pk)
        chunk = list(page.values_list(*fields, flat=flat)[:size])
        if not chunk:
            return
        last_pk = chunk[-1] if flat else chunk[-1][0]
        yield chunk


def secondary_indexes_drop(cursor, tables: Sequence[str]) -> list[str]:
    """Drop the indexes of `tables` that neither keep a row unique nor back a constraint (PostgreSQL), in the
    caller's transaction; return the statements that build them again, for after a bulk load."""
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = ANY(%s::regclass[]) AND NOT indisunique "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid) ORDER BY indexrelid",
        [text_array(tables)],
    )
    indexes = cursor.fetchall()
    for name, _definition in indexes:
        cursor.execute(f"DROP INDEX {name}")
    return [definition for _name, definition in indexes]


_PREPARED_ONLY_WHEN_ASKED = 2**31
_CACHED_PLAN_CHANGED = "0A000"  # feature_not_supported, as PostgreSQL reports a prepared plan it cannot keep


def execute_prepared(sql: str, params: Sequence) -> list[tuple]:
    """Run one statement of a hot path and return its rows; on PostgreSQL prepared once per connection.

    The connections bind parameters on the client (Django's default), so PostgreSQL parses and plans every
    statement afresh. A POS write's few long statements are sent with server-side parameters instead and
    prepared on their first use (settings.POS_PREPARED_STATEMENTS; turn it off behind a pooler that does not
    keep prepared statements, such as PgBouncer in transaction mode before 1.21): afterwards each call is a
    Bind and Execute of a plan PostgreSQL keeps. Database errors are Django's, as from any cursor, and the
    statement is in connection.queries when queries are logged.
    """
    if connection.vendor != "postgresql" or not settings.POS_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None), which also ignores prepare=True. A threshold no count
        # reaches prepares only what asks for it: Django's own cursors bind on the client and never prepare.
        raw.prepare_threshold = _PREPARED_ONLY_WHEN_ASKED
    started = time.monotonic()
    try:
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            rows = cursor.fetchall() if cursor.description else []
    except NotSupportedError as error:
        if getattr(error.__cause__, "sqlstate", None) == _CACHED_PLAN_CHANGED:
            # A migration run while this process was serving changed a type the statement returns ("cached plan
            # must not change result type"): its plan stays broken on this connection, so the connection is
            # closed when the request ends and the next request prepares afresh.
            connection.close_at = time.monotonic()
        raise
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows
