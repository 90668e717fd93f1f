"""Unified.to through the real entrypoint against the fake Unified.to (a Docebo connection): values, limit/offset
paging, updated_gte with enrollments rebuilt from all their activities, an integration that ignores updated_gte,
deletions in a sweep, rate limits and errors."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.unified_to import CONNECTION_ID
from integration_tests.harness import catalog, iso, records_by_stream, run_cli, run_read
from integration_tests.test_reliability import final_states, tombstones_of
from source_lms_enrollments.providers.unified_to import UnifiedToStream

LMS = f"/lms/{CONNECTION_ID}"


@pytest.fixture
def fake():
    server = start_fake("unified_to", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


def calls(server) -> Counter:
    return Counter(path.rsplit("/", 1)[-1] if path.startswith("/lms/") else "connection" for _, path, _ in server.requests)


def test_values_are_the_documented_models_in_the_unified_shape(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    data = fake.app.data

    users = {u["id"]: u for u in records["users"]}
    person = data.people[2]
    assert users["2"]["name"] == f"{person.first_name} {person.last_name}" and users["2"]["role"] == "learner"
    assert users["2"]["emails"] == [{"email": person.email, "type": "work", "is_primary": None}]
    assert users["2"]["updated_at"] == iso(person.updated) and users["2"].get("status") is None
    assert users["2"]["custom_fields"] == {"unified_to_integration": "docebo", "unified_to_integration_name": "Docebo"}
    assert users["11"]["role"] == "instructor" and users["11"]["job_title"] == data.people[11].job_title

    courses = {c["id"]: c for c in records["courses"]}
    assert courses["1"]["title"] == data.courses[1].name and courses["1"]["status"] == "published"
    assert courses["1"]["categories"] == [{"id": None, "name": data.courses[1].category[1]}]

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    learners = [e for e in data.enrollments.values() if e.role == "learner"]
    for e in learners:
        got = enrollments[f"{e.user_id}:{e.course_id}"]
        assert got["progress_percent"] == e.progress and got["updated_at"] == iso(e.updated), (e, got)
        assert got["status"] == ("completed" if e.state in ("completed", "passed", "failed") else "in_progress" if e.started else "enrolled")
        assert got["time_spent_seconds"] == (e.time_spent if e.time_spent else 0)
        assert got.get("score") == e.score and got.get("completed_at") == iso(e.completed)
        assert len(got["custom_fields"]["activity_ids"]) == (1 if e.course_id % 2 else 3)  # course- or content-level
    assert len(enrollments) == len(learners)


def test_every_list_walks_several_pages_of_limit_and_offset(fake, monkeypatch):
    monkeypatch.setattr(UnifiedToStream, "page_size", 7)
    output = run_read(fake.config(), mode=SyncMode.full_refresh)
    assert not output.errors
    assert {stream: len(rows) for stream, rows in records_by_stream(output).items()} == {s: len(ids) for s, ids in fake.app.expected_ids().items()}
    offsets = [(path.rsplit("/", 1)[-1], q["offset"][0], q["limit"][0]) for _, path, q in fake.requests if path == f"{LMS}/course"]
    assert offsets == [("course", "0", "7")]  # 6 courses: one short page
    student_offsets = [q["offset"][0] for _, path, q in fake.requests if path == f"{LMS}/student"]
    assert student_offsets == [str(n) for n in range(0, 7 * len(student_offsets), 7)] and len(student_offsets) >= 4


def test_request_counts_first_and_incremental_syncs(fake):
    first = run_read(fake.config())
    assert not first.errors
    rows = sum(len(fake.app.activities(e)) for e in fake.app.data.learner_enrollments())
    activity_pages = rows // 100 + 1  # 100 a page; a short (or empty) page ends the list
    assert rows > 100 and calls(fake) == {"connection": 1, "student": 1, "instructor": 1, "course": 1, "activity": activity_pages}
    fake.clear()
    changed = fake.app.touch_sample()
    second = run_read(fake.config(), state=final_states(first))
    assert not second.errors
    cursor = final_states(first)["course_enrollments"]["updated_at"]
    # the courses of the activities updated_gte returns: the changed ones, and any of the cursor's own second
    changed_courses = {a["course_id"] for e in fake.app.data.learner_enrollments() for a in fake.app.activities(e)
                       if a["updated_at"][:19] + "Z" >= cursor}
    assert {i.split(":")[1] for i in changed["course_enrollments"]} <= changed_courses
    # updated_gte on every list, then the activities of each course with a changed activity, read again in full
    assert calls(fake) == {"connection": 1, "student": 1, "instructor": 1, "course": 1, "activity": 1 + len(changed_courses)}
    assert all("updated_gte" in q for _, path, q in fake.requests if path.endswith(("/student", "/instructor", "/course")))
    emitted = records_by_stream(second)
    assert changed["course_enrollments"] <= {e["id"] for e in emitted["course_enrollments"]}
    assert all(e["updated_at"] == cursor for e in emitted["course_enrollments"] if e["id"] not in changed["course_enrollments"])
    for record in emitted["course_enrollments"]:  # rebuilt from all activities, not only the one that moved
        enrollment = next(e for e in fake.app.data.enrollments.values() if f"{e.user_id}:{e.course_id}" == record["id"])
        assert record["progress_percent"] == enrollment.progress and record["time_spent_seconds"] == enrollment.time_spent
        assert len(record["custom_fields"]["activity_ids"]) == (1 if enrollment.course_id % 2 else 3)


def test_an_integration_that_ignores_updated_gte_still_emits_only_what_changed():
    with start_fake("unified_to", users=30, courses=6, enrollments=60, updated_gte=False) as server:
        first = run_read(server.config())
        changed = server.app.touch_sample()
        second = run_read(server.config(), state=final_states(first))
    assert not second.errors
    states = final_states(first)
    for stream, rows in records_by_stream(second).items():
        assert changed[stream] <= {r["id"] for r in rows}, stream
        # anything else only when it changed in the very second of the cursor (>= is inclusive, design.md §5)
        assert all(r.get("updated_at") == states[stream]["updated_at"] for r in rows if r["id"] not in changed[stream]), stream


def test_deletions_show_in_a_sweep_and_not_between_sweeps(fake):
    first = run_read(fake.config())
    deleted = fake.app.delete_sample()
    between = run_read(fake.config(), state=final_states(first))  # deletion_sweep_days 7: updated_gte, no sweep
    assert not between.errors and not any(tombstones_of(between).values())
    fake.clear()
    sweep = run_read(fake.config(deletion_sweep_days=0), state=final_states(between))
    assert not sweep.errors and tombstones_of(sweep) == deleted
    assert not any("updated_gte" in q for _, _, q in fake.requests)  # a sweep lists everything


def test_a_429_with_retry_after_is_waited_out(fake):
    fake.add_fault("rate_limit", count=1, match=f"{LMS}/course", retry_after=1)
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors and len(records_by_stream(output)["courses"]) == len(fake.app.data.courses)
    assert fake.paths().count(f"{LMS}/course") == 2 and time.monotonic() - started >= 1.0


def test_an_unknown_connection_fails_check_naming_the_field_and_not_its_value(fake, tmp_path):
    config = fake.config()
    config["provider"]["connection_id"] = "000000000000000000000000"
    status = run_cli(["check"], tmp_path, config=config).connection_status()
    assert status["status"] == "FAILED" and "provider.connection_id" in status["message"] and "Connection not found" in status["message"]
    assert "000000000000000000000000" not in status["message"]


def test_a_wrong_token_during_read_is_a_config_error_and_never_printed(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["courses"]))
    errors = result.errors()
    assert result.returncode != 0 and errors[0]["failure_type"] == "config_error"
    assert "HTTP 401" in errors[0]["message"] and "provider.api_token" in errors[0]["message"]
    token = bad["provider"]["api_token"]
    assert token not in result.stdout and token not in result.stderr


def test_content_level_rows_without_course_id_are_placed_through_the_content_list():
    with start_fake("unified_to", users=30, courses=6, enrollments=60, content_rows_name_course=False) as server:
        first = run_read(server.config())
        assert not first.errors
        full = {e["id"]: e for e in records_by_stream(first)["course_enrollments"]}
        assert set(full) == server.app.expected_ids()["course_enrollments"]
        changed = server.app.touch_sample()
        second = run_read(server.config(), state=final_states(first))
    assert not second.errors
    emitted = {e["id"]: e for e in records_by_stream(second)["course_enrollments"]}
    assert changed["course_enrollments"] <= set(emitted)
    for record_id in changed["course_enrollments"]:
        user_id, course_id = map(int, record_id.split(":"))
        enrollment = next(e for e in server.app.data.enrollments.values() if (e.user_id, e.course_id) == (user_id, course_id))
        assert emitted[record_id]["progress_percent"] == enrollment.progress
        assert len(emitted[record_id]["custom_fields"]["activity_ids"]) == (1 if course_id % 2 else 3)
