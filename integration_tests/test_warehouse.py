"""The warehouse path: `lms-enrollments-sync` through PyAirbyte into DuckDB (the `make sync` demo) and a real
PostgreSQL server, first sync and incremental re-sync after changes and deletions: one row per id, a deleted
record's row kept and marked (remote_deleted_at), counted in the summary and left out of the completion rate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.harness import STREAMS, records_by_stream, run_read
from integration_tests.pg_cluster import TempPostgres, postgres_bindir
from integration_tests.sync_demo import COURSES, PROVIDER, USERS, change_and_delete
from source_lms_enrollments import sync

ROOT = Path(__file__).resolve().parents[1]
NESTED = {("users", "emails"), ("course_enrollments", "user"), ("course_enrollments", "course")}


def expected_after(users: int, courses: int, change: bool):
    """What a warehouse must hold live: the records of a full read of the same seeded fake (after the demo's same
    changes and deletions), the changed ids and the deleted ids per stream."""
    server = start_fake(PROVIDER, users=users, courses=courses)
    try:
        if change:
            changed, _, deleted = change_and_delete(server.app)
        else:
            changed = deleted = {name: set() for name in STREAMS}
        records = records_by_stream(run_read(server.config(), SyncMode.full_refresh))
    finally:
        server.stop()
    return {name: {r["id"]: r for r in records[name]} for name in STREAMS}, changed, deleted


def live_records(server) -> dict[str, dict[str, dict]]:
    return {name: {r["id"]: r for r in records} for name, records in
            records_by_stream(run_read(server.config(), SyncMode.full_refresh)).items()}


def completion_from_records(records) -> dict[str, tuple[int, int]]:
    """course title -> (learners, completed), computed from the connector's records themselves."""
    learners, completed = Counter(), Counter()
    titles = {r["id"]: r["title"] for r in records["courses"].values()}
    for enrollment in records["course_enrollments"].values():
        title = titles[enrollment["course"]["id"]]
        learners[title] += 1
        completed[title] += enrollment["status"] in sync.COMPLETED
    return {title: (learners[title], completed[title]) for title in learners}


def number(value):
    return None if value is None else float(value)  # DECIMAL / NUMERIC columns come back as Decimal


def assert_tables_hold(query, schema: str, expected, deleted=None) -> None:
    """Exactly one row per expected id, live with the expected values of the changeable fields, and one row per
    deleted id, marked: the tombstone replaced the live row (remote_deleted_at set, every other field null but the
    ids). Nothing else is marked deleted."""
    deleted = deleted or {name: set() for name in STREAMS}
    live = "remote_deleted_at IS NULL"
    for stream in STREAMS:
        rows, distinct = query(f"SELECT count(*), count(DISTINCT id) FROM {schema}.{stream}")[0]
        assert rows == distinct == len(expected[stream]) + len(deleted[stream]), stream
        assert not set(expected[stream]) & deleted[stream], stream
        assert {r[0] for r in query(f"SELECT id FROM {schema}.{stream} WHERE {live}")} == set(expected[stream]), stream
        assert {r[0] for r in query(f"SELECT id FROM {schema}.{stream} WHERE NOT {live}")} == deleted[stream], stream
        for record_id, deleted_at, cdc, updated_at in query(
            f"SELECT id, remote_deleted_at, _ab_cdc_deleted_at, updated_at FROM {schema}.{stream} WHERE NOT {live}"
        ):
            assert cdc == updated_at == deleted_at, (stream, record_id)
    for user_id, name, last_name, status, emails in query(
        f"SELECT id, name, last_name, status, emails FROM {schema}.users WHERE NOT {live}"
    ):
        assert (name, last_name, status, emails) == (None, None, None, None), user_id
    for course_id, title, status in query(f"SELECT id, title, status FROM {schema}.courses WHERE NOT {live}"):
        assert (title, status) == (None, None), course_id
    for enrollment_id, user_id, course_id, status, progress in query(
        f"SELECT id, \"user\" ->> 'id', course ->> 'id', status, progress_percent FROM {schema}.course_enrollments WHERE NOT {live}"
    ):
        assert (f"{user_id}:{course_id}", status, progress) == (enrollment_id, None, None), enrollment_id
    for user_id, last_name in query(f"SELECT id, last_name FROM {schema}.users WHERE {live}"):
        assert last_name == expected["users"][user_id].get("last_name")
    for course_id, title in query(f"SELECT id, title FROM {schema}.courses WHERE {live}"):
        assert title == expected["courses"][course_id]["title"]
    for enrollment_id, status, progress in query(
        f"SELECT id, status, progress_percent FROM {schema}.course_enrollments WHERE {live}"
    ):
        record = expected["course_enrollments"][enrollment_id]
        assert (status, number(progress)) == (record["status"], number(record.get("progress_percent"))), enrollment_id
    # Nested fields are JSON: readable with ->> in SQL, and joinable.
    for enrollment_id, user_id, course_id, email in query(
        f"SELECT id, \"user\" ->> 'id', course ->> 'id', (\"user\" -> 'emails') -> 0 ->> 'email' FROM {schema}.course_enrollments WHERE {live}"
    ):
        record = expected["course_enrollments"][enrollment_id]
        assert (user_id, course_id) == (record["user"]["id"], record["course"]["id"])
        emails = record["user"].get("emails") or []
        assert email == (emails[0]["email"] if emails else None)


def assert_completion_matches(query, schema: str, expected) -> None:
    """The summary's query, without its LIMIT, gives every live course's learners and completions, computed from the
    live records alone: no deleted enrollment counted, no deleted course listed."""
    sql = sync.COMPLETION_BY_COURSE.format(schema=schema)
    assert sql.endswith("\nLIMIT 10")
    got = query(sql.removesuffix("LIMIT 10"))
    assert got, "the completion query returned nothing"
    truth = completion_from_records(expected)
    assert sorted(row[0] for row in got) == sorted(truth)
    for title, learners, completed, pct in got:
        assert (learners, completed) == truth[title], title
        assert abs(float(pct) - 100.0 * completed / learners) <= 0.05 + 1e-9, title  # SQL rounds half up


def summary_counts(output: str) -> dict[str, tuple[int, int, int, int]]:
    """table -> (rows, read this run, marked deleted, duplicate ids) from the printed summary."""
    assert re.search(r"^\s+table\s+rows\s+read this run\s+marked deleted\s+duplicate ids\s*$", output, re.MULTILINE)
    found = re.findall(r"^\s+(users|courses|course_enrollments)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", output, re.MULTILINE)
    return {name: (int(a), int(b), int(c), int(d)) for name, a, b, c, d in found}


# ---- DuckDB: the `make sync` demo, as a subprocess from the repository root ----------------------------------
def run_demo(db: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "integration_tests.sync_demo", "--duckdb-path", str(db)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_sync_into_duckdb_then_incremental(tmp_path):
    import duckdb

    db = tmp_path / "demo.duckdb"
    first = run_demo(db)
    assert "LOCAL SIMULATION of a TalentLMS account" in first and "first sync" in first
    assert "To show a deletion" not in first
    expected, _, _ = expected_after(USERS, COURSES, change=False)
    counts = summary_counts(first)
    assert counts == {name: (len(expected[name]), len(expected[name]), 0, 0) for name in STREAMS}
    assert "Completion rate per course" in first and "remote_deleted_at IS NULL" in first

    second = run_demo(db)
    assert "incremental" in second and "renamed 2 users" in second
    expected, changed, deleted = expected_after(USERS, COURSES, change=True)
    assert [len(deleted[name]) for name in ("users", "courses")] == [1, 1] and len(deleted["course_enrollments"]) > 2
    (user,), (course,) = deleted["users"], deleted["courses"]
    assert (f"deleted user {user} (with their " in second and f"course {course} (with its " in second
            and f"{len(deleted['course_enrollments'])} enrollments gone" in second), second
    counts = summary_counts(second)
    # Only the changed users and courses are read again (plus any in the cursor's own second: the >= rule), and the
    # deleted one as a tombstone; TalentLMS enrollments have no modification time, so all of them are
    # (docs/providers/talentlms.md), with a tombstone per deleted one.
    for name in ("users", "courses"):
        rows, read, marked, duplicates = counts[name]
        assert (rows, marked, duplicates) == (len(expected[name]) + 1, 1, 0), name
        assert len(changed[name]) + 1 <= read <= len(changed[name]) + 1 + 2, (name, read)
    rows = len(expected["course_enrollments"]) + len(deleted["course_enrollments"])
    assert counts["course_enrollments"] == (rows, rows, len(deleted["course_enrollments"]), 0)
    assert "marked deleted: records gone from the LMS" in second

    with duckdb.connect(str(db), read_only=True) as connection:
        def query(sql):
            return connection.execute(sql).fetchall()

        assert_tables_hold(query, "lms", expected, deleted)
        assert_completion_matches(query, "lms", expected)
        types = {(t, c): d for t, c, d in query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'lms'")}
        assert {types[key] for key in NESTED} == {"JSON"}


# ---- Postgres: a real server of our own ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres():
    bindir = postgres_bindir()
    if bindir is None:
        message = "PostgreSQL binaries not found (.ci/run installs them: apt-get install postgresql-15)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with TempPostgres(bindir) as server:
        yield server


@pytest.mark.postgres
def test_sync_into_postgres_then_incremental(postgres, tmp_path, monkeypatch, capsys):
    import psycopg

    server = start_fake(PROVIDER, users=60, courses=8)
    try:
        config = tmp_path / "config.json"
        config.write_text(json.dumps(server.config()))
        monkeypatch.setenv("PGPASSWORD", postgres.password)  # has '@', '/' and ':': they must survive PyAirbyte's URL
        argv = ["--config", str(config), "--cache", "postgres", "--pg-host", postgres.host, "--pg-port",
                str(postgres.port), "--pg-user", postgres.user, "--pg-database", postgres.database, "--schema", "lms"]
        connection = psycopg.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                                     password=postgres.password, dbname=postgres.database, autocommit=True)

        def query(sql):
            return connection.execute(sql).fetchall()

        assert sync.main(argv) == 0
        first = capsys.readouterr().out
        expected = live_records(server)
        assert summary_counts(first) == {name: (len(expected[name]), len(expected[name]), 0, 0) for name in STREAMS}
        assert_tables_hold(query, "lms", expected)
        types = {(t, c): d for t, c, d in query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'lms'")}
        assert {types[key] for key in NESTED} == {"json"}, types

        changed, _, deleted = change_and_delete(server.app)
        assert all(deleted.values()), deleted
        assert sync.main(argv) == 0
        second = capsys.readouterr().out
        assert "incremental" in second
        expected = live_records(server)
        assert_tables_hold(query, "lms", expected, deleted)
        assert_completion_matches(query, "lms", expected)
        for user_id in changed["users"]:
            assert query(f"SELECT last_name FROM lms.users WHERE id = '{user_id}'")[0][0].endswith(" Jr")
        for course_id in changed["courses"]:
            assert query(f"SELECT title FROM lms.courses WHERE id = '{course_id}'")[0][0].endswith("(v2)")
        counts = summary_counts(second)
        for name in STREAMS:
            rows, _, marked, duplicates = counts[name]
            assert (rows, marked, duplicates) == (len(expected[name]) + len(deleted[name]), len(deleted[name]), 0), name
        read_users = counts["users"][1]
        assert len(changed["users"]) + len(deleted["users"]) <= read_users < len(expected["users"])

        # A third sync with nothing new: the rows stay marked (the state no longer lists those ids), no other is.
        assert sync.main(argv) == 0
        third = capsys.readouterr().out
        assert_tables_hold(query, "lms", expected, deleted)
        assert {name: c[2] for name, c in summary_counts(third).items()} == {name: len(deleted[name]) for name in STREAMS}
        connection.close()
    finally:
        server.stop()
