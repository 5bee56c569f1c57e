"""Portable table dumps: JSON lines, a header line naming the columns, then one array per row.

Rows are read and written straight through the driver cursor, in an order that satisfies
foreign keys on reload (mandates: parents before children), so a dump restores into SQLite or
PostgreSQL alike. Memory stays flat: rows stream in batches both ways.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Table

from caracal.core.canonical import json_containers
from caracal.core.errors import IntegrityError
from caracal.store import schema

BATCH = 5_000
# Not dumped: the migration bookkeeping (the target has its own), sealed secrets (only
# meaningful under the source's master key; locked archives carry them re-sealable instead),
# and the Merkle tree's kept nodes (a restore rebuilds them from the verified events).
EXCLUDED = frozenset({"caracal_schema", "secrets", "ledger_nodes"})

_MANDATE_ORDER = (
    "WITH RECURSIVE chain(id, level) AS ("
    "SELECT id, 0 FROM mandates WHERE parent_id IS NULL "
    "UNION ALL SELECT m.id, c.level + 1 FROM mandates m JOIN chain c ON m.parent_id = c.id) "
    "SELECT {cols} FROM mandates JOIN chain ON chain.id = mandates.id ORDER BY chain.level, mandates.id"
)


def dumped_tables() -> list[Table]:
    """Every table a backup carries, in an order that loads without foreign-key errors."""
    return [t for t in schema.metadata.sorted_tables if t.name not in EXCLUDED]


def _cursor(conn: Connection, streaming: bool) -> Any:
    dbapi: Any = conn.connection.dbapi_connection
    if streaming and conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="caracal_backup_dump")
        cursor.itersize = BATCH
        return cursor
    return dbapi.cursor()


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$b64"}:
        return base64.b64decode(value["$b64"])
    return value


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table.name}").scalar() or 0)  # noqa: S608 - schema names only


def dump_table(
    conn: Connection,
    table: Table,
    path: Path,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[int, int, str]:
    """Write one table to `path`; return (rows, bytes, sha256). `on_rows(done)` after each
    batch."""
    columns = [c.name for c in table.columns]
    quoted = ", ".join(f'"{c}"' if conn.dialect.name == "postgresql" else c for c in columns)
    if table.name == "mandates":
        sql = _MANDATE_ORDER.format(cols=", ".join(f"mandates.{c}" for c in columns))
    else:
        order = ", ".join(c.name for c in table.primary_key.columns)
        sql = f"SELECT {quoted} FROM {table.name} ORDER BY {order}"  # noqa: S608 - schema names only
    digest, size, rows = hashlib.sha256(), 0, 0
    cursor = _cursor(conn, streaming=True)
    try:
        cursor.execute(sql)
        with path.open("wb") as out:

            def write(line: bytes) -> None:
                nonlocal size
                out.write(line)
                digest.update(line)
                size += len(line)

            write(json.dumps({"table": table.name, "columns": columns}).encode() + b"\n")
            while True:
                batch = cursor.fetchmany(BATCH)
                if not batch:
                    break
                chunk = "".join(
                    json.dumps([_encode(v) for v in row], separators=(",", ":")) + "\n"
                    for row in batch
                )
                write(chunk.encode("utf-8"))
                rows += len(batch)
                if on_rows is not None:
                    on_rows(rows)
    finally:
        cursor.close()
    return rows, size, digest.hexdigest()


# One row as dumped: far above any row Caracal writes (its inputs are capped well below), far
# below what would cost memory to refuse. A row is a flat list of values, so a few containers.
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_ROW_CONTAINERS = 1000


def _row(line: bytes, table: str, number: int) -> Any:
    """One dumped row, refused clearly when it is too long, too deep or not JSON."""
    if len(line) > MAX_LINE_BYTES:
        raise IntegrityError(
            f"The dump of {table} has a line over {MAX_LINE_BYTES:,} bytes (line {number}); "
            "refusing it."
        )
    if json_containers(line, MAX_ROW_CONTAINERS) > MAX_ROW_CONTAINERS:
        raise IntegrityError(
            f"The dump of {table} is nested too deeply or too widely at line {number}; refusing it."
        )
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        raise IntegrityError(f"The dump of {table} is damaged at line {number}.") from None


def read_rows(stream: IO[bytes], table: Table) -> tuple[list[str], Iterator[list[tuple[Any, ...]]]]:
    """The dump's columns and its rows in batches; the columns must be the table's."""
    header_line = stream.readline(64 * 1024)
    try:
        header = json.loads(header_line)
        columns = [str(c) for c in header["columns"]]
        named = header["table"]
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"The dump of {table.name} has a damaged header.") from None
    if named != table.name or set(columns) != {c.name for c in table.columns}:
        raise IntegrityError(f"The dump of {table.name} does not match this store's table.")

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        batch: list[tuple[Any, ...]] = []
        number = 1
        while line := stream.readline(MAX_LINE_BYTES + 1):
            number += 1
            values = _row(line, table.name, number)
            if not isinstance(values, list) or len(values) != len(columns):
                raise IntegrityError(f"The dump of {table.name} is damaged at line {number}.")
            try:
                batch.append(tuple(_decode(v) for v in values))
            except (ValueError, TypeError):  # a `{"$b64": ...}` that is not base64
                raise IntegrityError(
                    f"The dump of {table.name} is damaged at line {number}."
                ) from None
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    return columns, batches()


def load_table(
    conn: Connection,
    table: Table,
    stream: IO[bytes],
    on_batch: Callable[[list[str], list[tuple[Any, ...]]], None] | None = None,
) -> int:
    """Replace the table's rows with the dump's; return how many were loaded."""
    columns, batches = read_rows(stream, table)
    placeholder = "%s" if conn.dialect.name == "postgresql" else "?"
    names = ", ".join(f'"{c}"' if conn.dialect.name == "postgresql" else c for c in columns)
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([placeholder] * len(columns))})"  # noqa: S608
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    loaded = 0
    try:
        cursor.execute(f"DELETE FROM {table.name}")  # noqa: S608 - e.g. the fresh ledger head row
        for batch in batches:
            if on_batch is not None:
                on_batch(columns, batch)
            cursor.executemany(sql, batch)
            loaded += len(batch)
    finally:
        cursor.close()
    return loaded
