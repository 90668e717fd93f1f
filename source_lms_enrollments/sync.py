"""Sync an LMS into a SQL database through PyAirbyte: a local DuckDB file (the default) or Postgres.

    lms-enrollments-sync --config config.json                      # into .cache/lms_<provider>_<host>.duckdb
    lms-enrollments-sync --config config.json --cache postgres --pg-host db.example.com --pg-user etl
    python -m integration_tests.sync_demo                          # the bundled simulated TalentLMS (source checkout)

PyAirbyte (`airbyte` on PyPI, the `warehouse` extra) runs this package's own `source-lms-enrollments` command and
loads its records into the cache's tables `users`, `courses` and `course_enrollments`, deduplicated on `id`.
A record deleted in the LMS keeps its row, marked: the connector's tombstone (design.md §5a) replaces it, with
`remote_deleted_at` set and the other fields null but the ids (PyAirbyte's merge is an upsert on the primary key; it
does not act on `_ab_cdc_deleted_at`). Queries of live data filter `WHERE remote_deleted_at IS NULL`.
It keeps each stream's state in the same database, so the next run reads only what changed. One database file or
schema per LMS account: the state is kept per connector, and another account's cursor would skip records.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence
from urllib.parse import quote, urlsplit

SOURCE_NAME = "source-lms-enrollments"
STREAMS = ("users", "courses", "course_enrollments")
DATA_DIR = Path(".cache")  # gitignored; PyAirbyte's own default for its temporary files too
DEMO_DB = DATA_DIR / "demo_talentlms.duckdb"
COMPLETED = ("completed", "passed")

# Completion rate per course, live rows only (a deleted row is kept, with remote_deleted_at set); `->>` reads a JSON
# field in both DuckDB and Postgres.
COMPLETION_BY_COURSE = """
SELECT c.title AS course,
       count(*) AS learners,
       sum(CASE WHEN e.status IN ('completed', 'passed') THEN 1 ELSE 0 END) AS completed,
       round(100.0 * sum(CASE WHEN e.status IN ('completed', 'passed') THEN 1 ELSE 0 END) / count(*), 1) AS completion_pct
FROM {schema}.course_enrollments e
JOIN {schema}.courses c ON c.id = (e.course ->> 'id')
WHERE e.remote_deleted_at IS NULL AND c.remote_deleted_at IS NULL
GROUP BY c.id, c.title
ORDER BY completion_pct DESC, learners DESC, course
LIMIT 10
""".strip()


class SyncError(Exception):
    """A problem the user can act on; printed without a traceback."""


# ---- arguments ----------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lms-enrollments-sync",
        description="Sync users, courses and course enrollments from an LMS into DuckDB or Postgres (PyAirbyte).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="the connector config JSON (see the README)")
    source.add_argument("--demo", action="store_true",
                        help="sync a simulated LMS: given by the caller (python -m integration_tests.sync_demo, or make sync, in a source checkout)")
    parser.add_argument("--cache", choices=("duckdb", "postgres"), default="duckdb",
                        help="where to load the records (default: duckdb, a local file)")
    parser.add_argument("--schema", default="lms", help="schema of the tables (default: lms)")
    parser.add_argument("--full-refresh", action="store_true",
                        help="ignore the saved state: read everything and replace the tables")
    duckdb = parser.add_argument_group("DuckDB")
    duckdb.add_argument("--duckdb-path", type=Path,
                        help=f"the database file (default: {DATA_DIR}/lms_<provider>_<host>.duckdb, or {DEMO_DB} for --demo)")
    pg = parser.add_argument_group("Postgres (defaults from the usual PG* environment variables)")
    pg.add_argument("--pg-host", default=os.environ.get("PGHOST", "localhost"))
    pg.add_argument("--pg-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    pg.add_argument("--pg-database", default=os.environ.get("PGDATABASE", "postgres"))
    pg.add_argument("--pg-user", default=os.environ.get("PGUSER", "postgres"))
    pg.add_argument("--pg-password", default=None,
                    help="prefer the PGPASSWORD environment variable: a command-line argument is visible to other users")
    return parser.parse_args(argv)


def default_duckdb_path(config: Mapping[str, Any]) -> Path:
    """One file per LMS account, so that two accounts never share a state."""
    provider = config.get("provider") if isinstance(config.get("provider"), Mapping) else {}
    host = urlsplit(str(provider.get("base_url") or "")).hostname or "default"
    name = re.sub(r"[^a-z0-9]+", "_", f"{provider.get('provider_type') or 'lms'}_{host}".lower()).strip("_")
    return DATA_DIR / f"lms_{name}.duckdb"


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except OSError as error:
        raise SyncError(f"Cannot read the config file {path}: {error.strerror}.") from None
    except json.JSONDecodeError as error:
        raise SyncError(f"The config file {path} is not valid JSON: {error}.") from None
    if not isinstance(config, dict):
        raise SyncError(f"The config file {path} must hold a JSON object (see the README).")
    return config


def checked_config(path: Path, config: Mapping[str, Any]) -> None:
    """The connector's own config validation and `check`, in this process, before PyAirbyte runs anything.

    PyAirbyte validates a config against the spec itself and prints the failing object whole (a misspelt secret
    field included); a wrong key would fail every stream, each message repeated, then PyAirbyte's exception. Here each
    is one line naming the field, and nothing is created in `.cache/`.
    """
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from .source import provider_for, validate_config

    # The CDK's log lines (retries, its dump of a failed request) would print as JSON here; the error says it all.
    cdk_logger = logging.getLogger("airbyte")
    level = cdk_logger.level
    cdk_logger.setLevel(logging.CRITICAL + 1)
    try:
        validate_config(config, warn=lambda warning: print(f"lms-enrollments-sync: warning: {path}: {warning}", file=sys.stderr))
        provider_for(config).check()
    except AirbyteTracedException as error:
        raise SyncError(f"{path}: {error.message}") from None
    finally:
        cdk_logger.setLevel(level)


# ---- PyAirbyte ----------------------------------------------------------------------------------------------
def import_pyairbyte() -> Any:
    # Offline mode: the connector is installed here, so PyAirbyte needs neither its connector registry nor its
    # telemetry endpoint (both on the internet). A user may still turn them on by setting the variable to 0.
    os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
    # Google's client libraries (pulled in by PyAirbyte's BigQuery cache) warn about Python versions on import.
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*Python version.*")
    try:
        import airbyte
    except ImportError:
        raise SyncError(
            "PyAirbyte is not installed. Install the warehouse extra: pip install 'source-lms-enrollments[warehouse]'."
        ) from None
    return airbyte


def connector_executable() -> str:
    """The connector command of this environment (PyAirbyte runs it as a subprocess)."""
    beside = Path(sys.executable).with_name(SOURCE_NAME)
    if beside.exists():
        return str(beside)
    found = shutil.which(SOURCE_NAME)
    if not found:
        raise SyncError(f"The `{SOURCE_NAME}` command is not installed: pip install 'source-lms-enrollments[warehouse]'.")
    return found


def pg_password(args: argparse.Namespace) -> str:
    password = args.pg_password if args.pg_password is not None else os.environ.get("PGPASSWORD")
    if not password:
        raise SyncError("--cache postgres needs a password: set PGPASSWORD (or --pg-password).")
    return password


def make_cache(args: argparse.Namespace, duckdb_path: Path) -> Any:
    if args.cache == "duckdb":
        import_pyairbyte()
        from airbyte.caches import DuckDBCache

        duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        return DuckDBCache(db_path=duckdb_path, schema_name=args.schema, cache_dir=DATA_DIR / "pyairbyte")
    password = pg_password(args)
    import_pyairbyte()
    from airbyte.caches import PostgresCache

    return PostgresCache(
        host=args.pg_host,
        port=args.pg_port,
        database=args.pg_database,
        username=args.pg_user,
        # PyAirbyte pastes the password into a connection URL as is; quoting keeps '@', '/' or ':' in it working.
        password=quote(password, safe=""),
        schema_name=args.schema,
        cache_dir=DATA_DIR / "pyairbyte",
    )


def run_sync(config: Mapping[str, Any], cache: Any, full_refresh: bool = False) -> Any:
    """Read every stream with the installed connector into `cache`: incremental from the cache's saved state."""
    airbyte = import_pyairbyte()
    source = airbyte.get_source(SOURCE_NAME, config=dict(config), local_executable=connector_executable(),
                                streams=list(STREAMS))
    # PyAirbyte tells a Python caller to "set force_full_refresh=True in airbyte.read()"; main() has already said
    # which mode this run is in and that --full-refresh reads everything.
    source._log_incremental_streams = lambda **_: None  # noqa: SLF001 - a print, nothing else
    # Every stream has the primary key `id`: merge keeps one row per id; a full refresh replaces the tables.
    return source.read(cache=cache, write_strategy="replace" if full_refresh else "merge",
                       force_full_refresh=full_refresh)


# ---- the summary --------------------------------------------------------------------------------------------
def table_marks(engine: Any, schema: str) -> dict[str, Any]:
    """Per existing table, the latest `_airbyte_extracted_at`: rows extracted after it were read by the next run."""
    import sqlalchemy

    inspector = sqlalchemy.inspect(engine)
    marks: dict[str, Any] = {}
    with engine.connect() as connection:
        for table in STREAMS:
            if inspector.has_table(table, schema=schema):
                marks[table] = connection.execute(
                    sqlalchemy.text(f"SELECT max(_airbyte_extracted_at) FROM {schema}.{table}")
                ).scalar()
    return marks


class TableCounts(NamedTuple):
    table: str
    rows: int
    read: int  # rows read by this run (tombstones included)
    deleted: int  # rows marked deleted: remote_deleted_at set
    duplicates: int  # rows beyond one per id (0)
    live_read: int  # live rows read by this run


def table_counts(engine: Any, schema: str, before: Mapping[str, Any]) -> list[TableCounts]:
    import sqlalchemy

    counts = []
    with engine.connect() as connection:
        for table in STREAMS:
            rows, distinct, deleted = connection.execute(sqlalchemy.text(
                f"SELECT count(*), count(DISTINCT id), count(remote_deleted_at) FROM {schema}.{table}"
            )).one()
            mark = before.get(table)
            if mark is None:
                read, live_read = rows, rows - deleted
            else:
                read, live_read = connection.execute(
                    sqlalchemy.text(f"SELECT count(*), count(*) - count(remote_deleted_at) FROM {schema}.{table} "
                                    "WHERE _airbyte_extracted_at > :mark"),
                    {"mark": mark},
                ).one()
            counts.append(TableCounts(table, rows, read, deleted, rows - distinct, live_read))
    return counts


def completion_by_course(engine: Any, schema: str) -> list[tuple[Any, ...]]:
    import sqlalchemy

    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sqlalchemy.text(COMPLETION_BY_COURSE.format(schema=schema)))]


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, header))] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def summary(engine: Any, schema: str, before: Mapping[str, Any], where: str, seconds: float) -> str:
    counts = table_counts(engine, schema, before)
    lines = [f"Synced into {where} in {seconds:.1f} s.", "",
             render_table(("table", "rows", "read this run", "marked deleted", "duplicate ids"),
                          [(c.table, c.rows, c.read, c.deleted, c.duplicates) for c in counts])]
    if any(c.deleted for c in counts):
        lines.append("  (marked deleted: records gone from the LMS, each kept as one row with remote_deleted_at set and "
                     "its other fields null but the ids; leave them out with WHERE remote_deleted_at IS NULL)")
    reread = [c.table for c in counts
              if before.get(c.table) is not None and c.rows > c.deleted and c.live_read == c.rows - c.deleted]
    if reread:
        lines.append(f"  ({', '.join(reread)}: every live row read again; the provider's page in the README says which "
                     "streams have no modification time and so are re-read by every sync)")
    lines += ["", "Completion rate per course (top 10):",
              render_table(("course", "learners", "completed", "completion %"), completion_by_course(engine, schema)),
              "", "The query:", "  " + COMPLETION_BY_COURSE.replace("{schema}", schema).replace("\n", "\n  ")]
    return "\n".join(lines)


# ---- main ---------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None, demo_lms: Callable[..., Any] | None = None) -> int:
    """The CLI. `demo_lms(change_some=...)`, a context manager giving (config, lines), is the simulated LMS of --demo:
    the test tree's fake server, passed in by integration_tests/sync_demo.py (this package never imports test code)."""
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # PyAirbyte's progress lines, as they come, also into a pipe
    failed = [True]  # cleared once the summary is printed
    try:
        with ExitStack() as stack:
            if args.cache == "postgres":
                pg_password(args)  # before anything is read or asked of the LMS
            if args.demo:
                config: dict[str, Any] | None = None
                duckdb_path = args.duckdb_path or DEMO_DB
            else:
                config = read_config(args.config)
                checked_config(args.config, config)
                duckdb_path = args.duckdb_path or default_duckdb_path(config)
            if args.cache == "duckdb" and not duckdb_path.exists():
                stack.callback(remove_if_failed, duckdb_path, failed)
            cache = make_cache(args, duckdb_path)
            engine = cache.get_sql_engine()
            before = {} if args.full_refresh else table_marks(engine, args.schema)
            if config is None:
                if demo_lms is None:
                    raise SyncError("--demo runs the fake LMS server of a source checkout: run `make sync` or "
                                    "`python -m integration_tests.sync_demo` from the repository root, or pass --config.")
                config, lines = stack.enter_context(demo_lms(change_some=bool(before)))
                print("\n".join(lines), flush=True)
            where = (f"DuckDB {duckdb_path} (schema {args.schema})" if args.cache == "duckdb"
                     else f"Postgres {args.pg_host}:{args.pg_port}/{args.pg_database} (schema {args.schema})")
            mode = ("full refresh" if args.full_refresh
                    else "incremental from the saved state (--full-refresh reads everything)" if before else "first sync")
            print(f"Syncing into {where}: {mode}.", flush=True)
            started = time.monotonic()
            run_sync(config, cache, full_refresh=args.full_refresh)
            print(summary(engine, args.schema, before, where, time.monotonic() - started), flush=True)
            engine.dispose()
            failed.clear()
        return 0
    except SyncError as error:
        print(f"lms-enrollments-sync: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # PyAirbyte's errors: it has printed the connector's ERROR lines as they came
        airbyte_errors = sys.modules.get("airbyte.exceptions")
        if airbyte_errors is not None and isinstance(error, airbyte_errors.PyAirbyteError):
            log = f"; PyAirbyte's log: {error.log_file}" if getattr(error, "log_file", None) else ""
            # On its own line: PyAirbyte's progress report, cut short by the failure, ends without a newline.
            print(f"\nlms-enrollments-sync: the sync failed ({error.get_message().rstrip('.')}): the connector's own "
                  f"messages are the ERROR lines above{log}.", file=sys.stderr)
            return 1
        raise


def remove_if_failed(duckdb_path: Path, failed: list[bool]) -> None:
    """A DuckDB file this run created, removed again when the run failed: no empty database named after a bad config."""
    if failed:
        for path in (duckdb_path, duckdb_path.with_name(duckdb_path.name + ".wal")):
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
