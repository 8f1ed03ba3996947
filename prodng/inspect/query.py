"""Read-only SQL over prodng's tables with sqlite3, for hosts without osqueryd.

Only the tables a statement reads are filled (sqlite's authorizer tells us which
while it prepares the statement), and a plain `name = '...'`/`container = '...'`
filter on a single table narrows the scan. The same authorizer refuses anything
but reading, and a progress handler enforces the time limit.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass

from prodng.config import Paths
from prodng.errors import InvalidRequest
from prodng.inspect import tables

READ_ONLY_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
DEFAULT_TIMEOUT = 10.0
MAX_SQL = 64 * 1024


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[dict[str, object]]


def _schema(conn: sqlite3.Connection) -> None:
    for table in tables.TABLES:
        columns = ", ".join(f'"{name}" {kind}' for name, kind in table.columns)
        conn.execute(f"CREATE TABLE {table.name} ({columns})")


def _tables_read(conn: sqlite3.Connection, sql: str) -> set[str]:
    """Prepare the statement under an authorizer that notes reads and refuses writes."""
    read: set[str] = set()
    refused: list[int] = []

    def authorize(action: int, arg1: str | None, *_: object) -> int:
        if action not in READ_ONLY_ACTIONS:
            refused.append(action)
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_READ and arg1:
            read.add(arg1)
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorize)
    try:
        conn.execute(f"EXPLAIN {sql}")
    except sqlite3.DatabaseError as err:
        if refused:
            raise InvalidRequest("only read-only SELECT statements are allowed") from None
        raise InvalidRequest(f"SQL error: {err}") from None
    except sqlite3.ProgrammingError as err:
        raise InvalidRequest(f"SQL error: {err}") from None
    finally:
        conn.set_authorizer(None)
    return read & set(tables.BY_NAME)


def _pushdown(sql: str, read: set[str]) -> set[str] | None:
    """Key values a single-table, conjunctive WHERE pins down; None means scan everything."""
    if len(read) != 1:
        return None
    where = re.split(r"\bwhere\b", sql, maxsplit=1, flags=re.I)
    if len(where) != 2 or re.search(r"\b(or|not|case|like|glob|select)\b", where[1], re.I):
        return None
    key = tables.BY_NAME[next(iter(read))].key
    values = re.findall(rf"(?:\b\w+\.)?\b{key}\s*=\s*'([^']*)'", where[1])
    return set(values) if len(values) == 1 else None


def _unique(columns: list[str]) -> list[str]:
    """`SELECT c.name, p.name` must not lose a column when rows become objects."""
    seen: dict[str, int] = {}
    unique = []
    for column in columns:
        seen[column] = seen.get(column, 0) + 1
        unique.append(column if seen[column] == 1 else f"{column}_{seen[column]}")
    return unique


def run_query(paths: Paths, sql: str, timeout: float = DEFAULT_TIMEOUT) -> QueryResult:
    if not sql.strip():
        raise InvalidRequest("empty query")
    if len(sql) > MAX_SQL:
        raise InvalidRequest(f"query longer than {MAX_SQL} characters")
    if not 0 < timeout < 1e9:  # also refuses nan: a deadline of nan is never reached
        raise InvalidRequest(f"--timeout must be between 0 and 1e9 seconds, not {timeout}")
    conn = sqlite3.connect(":memory:")
    try:
        _schema(conn)
        read = _tables_read(conn, sql)
        wanted = _pushdown(sql, read)
        for name in sorted(read):
            table = tables.BY_NAME[name]
            values = [tuple(row.get(c) for c in table.column_names) for row in table.generate(paths, wanted)]
            marks = ", ".join("?" * len(table.columns))
            conn.executemany(f"INSERT INTO {name} VALUES ({marks})", values)
        deadline = time.monotonic() + timeout
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        conn.set_authorizer(
            lambda action, *_: sqlite3.SQLITE_OK if action in READ_ONLY_ACTIONS else sqlite3.SQLITE_DENY
        )
        try:
            cursor = conn.execute(sql)
            columns = _unique([d[0] for d in cursor.description or ()])
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.OperationalError as err:
            if "interrupted" in str(err):
                raise InvalidRequest(f"query ran past its time limit of {timeout:g} s") from None
            raise InvalidRequest(f"SQL error: {err}") from None
        return QueryResult(columns, rows)
    finally:
        conn.close()
