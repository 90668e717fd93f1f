"""Truto through the real entrypoint against the fake Truto (over TalentLMS): values, paging, the remote-data
switch, per-course enrollments, rate limits and errors."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.harness import catalog, iso, queries, records_by_stream, run_cli, run_read


@pytest.fixture
def fake():
    server = start_fake("truto", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


def test_values_are_truto_s_own_with_timestamps_in_the_unified_shape(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    data = fake.app.data

    users = {u["id"]: u for u in records["users"]}
    person = data.people[2]
    assert users["2"]["name"] == f"{person.first_name} {person.last_name}" and users["2"]["username"] == person.login
    assert users["2"]["emails"] == [{"email": person.email, "type": "work", "is_primary": True}]
    assert users["2"]["updated_at"] == iso(person.updated) and users["2"]["created_at"] == iso(person.created)
    assert users["1"]["role"] == "admin" and users["11"]["role"] == "instructor" and users["13"]["role"] == "manager"
    assert users["2"]["custom_fields"] == {"department": person.custom["department"]}
    assert "18" not in users  # TalentLMS behind Truto does not list deleted users

    courses = {c["id"]: c for c in records["courses"]}
    six = data.courses[6]
    assert courses["6"]["type"] == "path" and courses["6"]["title"] == six.name and courses["6"]["code"] == six.code
    assert courses["6"]["categories"] == [{"id": six.category[0], "name": six.category[1]}]
    assert courses["6"]["updated_at"] == iso(six.updated)

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    for row in fake.app.listed_enrollments():
        record = enrollments[f"{row.user_id}_{row.course_id}"]
        assert record["user"]["id"] == str(row.user_id) and record["course"] == {"id": str(row.course_id), "title": data.courses[row.course_id].name}
        assert record["progress_percent"] == row.progress and record["time_spent_seconds"] == row.time_spent
        assert record["enrolled_at"] == iso(row.enrolled) and record["updated_at"] == iso(row.updated)
        assert record["status"] == {"not_started": "enrolled"}.get(row.state, row.state)


def test_every_list_walks_several_pages_of_next_cursor(fake, monkeypatch):
    from source_lms_enrollments.providers import truto

    monkeypatch.setattr(truto.TrutoStream, "page_size", 4)  # 30 users at limit=100 fit one page: walk many instead
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    assert {r["id"] for r in records["users"]} == fake.app.expected_ids()["users"]
    user_calls = queries(fake, "/unified/lms/users")
    assert len(user_calls) == -(-len(fake.app.listed_people()) // 4)
    assert "next_cursor" not in user_calls[0] and all("next_cursor" in q for q in user_calls[1:])
    assert all(q["limit"] == ["4"] and q["integrated_account_id"] == [fake.app.account_id] for q in user_calls)
    assert len({r["id"] for r in records["course_enrollments"]}) == len(records["course_enrollments"]) == len(fake.app.listed_enrollments())


def test_enrollments_are_asked_per_course_with_course_id(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    asked = sorted(q["course[id]"][0] for q in queries(fake, "/unified/lms/course-enrollments"))
    assert asked == sorted(str(c) for c in fake.app.data.courses)


def test_remote_data_switch_drives_truto_ignore_remote_data(fake):
    off = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"]))
    assert all(q.get("truto_ignore_remote_data") == ["true"] for q in queries(fake, "/unified/lms/course-enrollments"))
    assert all(r.get("remote_data") is None for r in off["course_enrollments"])
    fake.clear()
    on = records_by_stream(run_read(fake.config(include_remote_data=True), mode=SyncMode.full_refresh, streams=["course_enrollments"]))
    assert all("truto_ignore_remote_data" not in q for q in queries(fake, "/unified/lms/course-enrollments"))
    record = on["course_enrollments"][0]
    assert record["remote_data"]["remote_data"]["role"] == "learner"  # Truto's record, with the LMS's payload inside


def test_a_429_with_only_ratelimit_reset_is_waited_out(fake):
    fake.add_fault("rate_limit", count=1, match="/unified/lms/courses", retry_after=None)  # ratelimit-reset: 1, no Retry-After
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors and len(records_by_stream(output)["courses"]) == len(fake.app.data.courses)
    assert fake.paths().count("/unified/lms/courses") == 2 and time.monotonic() - started >= 1.0


def test_a_course_deleted_mid_sync_is_skipped_with_a_warning(fake):
    fake.add_fault("not_found", count=1, match="/unified/lms/course-enrollments")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    assert any("404" in m.log.message and "/unified/lms/course-enrollments" in m.log.message for m in output.logs)


def test_an_lms_that_requires_user_and_course_fails_clearly_naming_the_endpoint():
    with start_fake("truto", users=5, courses=2, enrollments=6, require_user_and_course=True) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "/unified/lms/course-enrollments" in error.message and "user.id is required" in error.message


def test_a_wrong_integrated_account_fails_check_with_truto_s_answer(fake, tmp_path):
    config = fake.config()
    config["provider"]["integrated_account_id"] = "00000000-0000-0000-0000-000000000000"
    status = run_cli(["check"], tmp_path, config=config).connection_status()
    assert status["status"] == "FAILED" and "Integrated account not found" in status["message"]


def test_a_wrong_token_during_read_is_a_config_error_and_never_printed(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["users"]))
    errors = result.errors()
    assert result.returncode != 0 and errors[0]["failure_type"] == "config_error"
    assert "HTTP 401" in errors[0]["message"] and "Invalid API token" in errors[0]["message"]
    token = bad["provider"]["api_token"]
    assert token not in result.stdout and token not in result.stderr and quote(token) not in result.stdout
