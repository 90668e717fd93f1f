"""TalentLMS through the real entrypoint against the fake TalentLMS v1: values, date formats, faults, secrets."""

from __future__ import annotations

import base64
import time

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.harness import catalog, iso, records_by_stream, run_cli, run_read


@pytest.fixture
def fake():
    server = start_fake("talentlms", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


EXPECTED_STATUS = {"completed": "completed", "passed": "completed", "failed": "completed", "expired": "expired",
                   "in_progress": "in_progress", "not_started": "enrolled", "assigned": "enrolled"}


@pytest.mark.parametrize("date_format", ["DDMMYYYY", "MMDDYYYY", "YYYYMMDD"])
def test_values_match_the_portal_data_in_every_date_format(date_format):
    with start_fake("talentlms", users=30, courses=6, enrollments=60, date_format=date_format) as server:
        records = records_by_stream(run_read(server.config(), mode=SyncMode.full_refresh))
        data = server.app.data

    users = {u["id"]: u for u in records["users"]}
    person = data.people[2]
    user = users["2"]
    assert user["name"] == f"{person.first_name} {person.last_name}"
    assert user["emails"] == [{"email": person.email, "type": "work", "is_primary": True}]
    assert user["created_at"] == iso(person.created) and user["updated_at"] == iso(person.updated)
    assert user["role"] == "learner" and user["status"] == "active"
    assert users["1"]["role"] == "admin"
    assert users["9"]["status"] == "inactive"  # an inactive user is listed
    assert "18" not in users  # a deleted one is not: v1 does not list it
    assert users["17"]["emails"] == []  # no e-mail on the portal

    courses = {c["id"]: c for c in records["courses"]}
    for course in data.courses.values():
        record = courses[str(course.id)]
        assert record["title"] == course.name and record["code"] == course.code
        assert record["updated_at"] == iso(course.updated) and record["created_at"] == iso(course.created)
        assert record["status"] == ("published" if course.status == "active" else "disabled")

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    learner_rows = [e for e in server.app.listed_enrollments() if e.role == "learner"]
    assert len(enrollments) == len(learner_rows)
    for row in learner_rows:
        record = enrollments[f"{row.user_id}:{row.course_id}"]
        person = data.people[row.user_id]
        assert record["user"]["name"] == f"{person.first_name} {person.last_name}"  # joined, not the abbreviated row name
        assert record["course"]["title"] == data.courses[row.course_id].name
        assert record["status"] == EXPECTED_STATUS[row.state], row
        assert record["enrolled_at"] == iso(row.enrolled)
        assert record.get("completed_at") == (iso(row.completed) if row.state in ("completed", "passed", "failed") else None)
        assert record["progress_percent"] == row.progress and record["time_spent_seconds"] == row.time_spent
        assert record.get("updated_at") is None


def test_instructor_rows_are_left_out(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"]))
    instructors = {f"{e.user_id}:{e.course_id}" for e in fake.app.listed_enrollments() if e.role == "instructor"}
    assert instructors, "the dataset must hold instructor rows for this test to mean anything"
    assert not instructors & {r["id"] for r in records["course_enrollments"]}


def test_enrollment_fan_out_calls_each_course_once(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    paths = fake.paths()
    assert sorted(p for p in paths if p.startswith("/api/v1/courses/id:")) == sorted(f"/api/v1/courses/id:{c}" for c in fake.app.data.courses)
    assert paths.count("/api/v1/users") == 1 and paths.count("/api/v1/courses") == 1


def test_429_with_retry_after_is_waited_out(fake):
    fake.add_fault("rate_limit", count=1, match="/api/v1/users", retry_after=1)
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"])
    assert not output.errors
    assert len(records_by_stream(output)["users"]) == len(fake.app.listed_people())
    assert fake.paths().count("/api/v1/users") == 2
    assert time.monotonic() - started >= 1.0  # the CDK waited at least what Retry-After said


def test_a_burst_of_server_errors_is_retried(fake):
    fake.add_fault("error", count=2, match="/api/v1/courses/id:3", status=502)
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    assert fake.paths().count("/api/v1/courses/id:3") == 3


def test_a_dropped_connection_is_retried(fake):
    fake.add_fault("drop", count=1, match="/api/v1/courses")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors and len(records_by_stream(output)["courses"]) == len(fake.app.data.courses)


def test_malformed_json_ends_the_stream_with_a_system_error_naming_the_endpoint(fake):
    fake.add_fault("malformed", count=1, match="/api/v1/courses/id:2")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "/api/v1/courses/id:2" in error.message and "not valid JSON" in error.message


def test_a_course_deleted_mid_sync_is_skipped_with_a_warning(fake):
    fake.add_fault("not_found", count=1, match="/api/v1/courses/id:4")  # listed by /courses, gone when read
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    ids = {r["id"] for r in records_by_stream(output)["course_enrollments"]}
    assert ids and not any(i.endswith(":4") for i in ids)
    assert any("/api/v1/courses/id:4" in m.log.message and "404" in m.log.message for m in output.logs)


def test_wrong_key_during_read_is_a_config_error_and_no_secret_leaks(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["users"]))
    assert result.returncode != 0
    errors = result.errors()
    assert errors and errors[0]["failure_type"] == "config_error"
    assert "HTTP 401" in errors[0]["message"] and "provider.api_key" in errors[0]["message"]
    key = bad["provider"]["api_key"]
    basic = base64.b64encode(f"{key}:".encode()).decode()
    assert key not in result.stdout and basic not in result.stdout and key not in result.stderr


def test_a_run_killed_mid_stream_resumes_from_its_last_state_without_loss(fake):
    fake.add_fault("malformed", count=1, match="/api/v1/courses/id:5")
    first = run_read(fake.config(), expecting_exception=True)
    states = {m.state.stream.stream_descriptor.name: m.state.stream.stream_state.__dict__ for m in first.state_messages}
    emitted = records_by_stream(first)
    second = run_read(fake.config(), state=states)
    assert not second.errors
    both = {stream: {r["id"] for r in emitted.get(stream, [])} | {r["id"] for r in records_by_stream(second)[stream]}
            for stream in ("users", "courses", "course_enrollments")}
    assert both == fake.app.expected_ids()


def test_the_fan_out_waits_for_the_hourly_quota_when_ratelimit_says_it_is_short():
    with start_fake("talentlms", users=10, courses=6, enrollments=20, hourly_limit=5, reset_in=2) as server:
        started = time.monotonic()
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
        waited = time.monotonic() - started
        assert not output.errors
        assert "/api/v1/ratelimit" in server.paths()
        assert any("calls left and 6 needed; waiting" in m.log.message for m in output.logs)
        assert waited >= 1.0


def test_a_far_reset_is_not_waited_for_but_said(fake):
    fake.app.hourly_limit = 3
    fake.app.reset_at = time.time() + 3000  # not the top of the hour, which can be near whenever the test runs
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    assert any("calls left until the reset" in m.log.message for m in output.logs)


@pytest.mark.parametrize("concurrency", [1, 3, 10])
def test_the_fan_out_emits_the_same_records_at_any_concurrency(concurrency):
    with start_fake("talentlms", users=30, courses=12, enrollments=90, latency_ms=5) as server:
        output = run_read(server.config(max_concurrency=concurrency), streams=["course_enrollments"])
        assert not output.errors
        ids = [r["id"] for r in records_by_stream(output)["course_enrollments"]]
        assert len(ids) == len(set(ids)) and set(ids) == server.app.expected_ids()["course_enrollments"]
        assert sorted(p for p in server.paths() if "/courses/id:" in p) == sorted(f"/api/v1/courses/id:{c}" for c in server.app.data.courses)
