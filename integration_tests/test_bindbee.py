"""Bindbee through the real entrypoint against the fake Bindbee: values and ids, paging, the raw-data switch,
expanded enrollments, incremental on modified_at, the documented rate limit and both credentials."""

from __future__ import annotations

import time

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.bindbee import HRIS_CONNECTOR_TOKEN, bindbee_id
from integration_tests.harness import catalog, final_states, iso, queries, records_by_stream, run_cli, run_read


@pytest.fixture
def fake():
    server = start_fake("bindbee", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


EXPECTED_STATUS = {"passed": "passed", "failed": "failed", "completed": "completed", "in_progress": "in_progress",
                   "expired": "in_progress", "withdrawn": "in_progress", "not_started": "enrolled", "assigned": "enrolled"}


def test_values_ids_and_joins(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    data = fake.app.data

    users = {u["id"]: u for u in records["users"]}
    person = data.people[5]
    user = users[bindbee_id("user", 5)]  # Bindbee's id, not the LMS's "5"
    assert user["name"] == f"{person.first_name} Maria {person.last_name}"  # middle name joined
    assert user["emails"] == [{"email": person.email, "type": None, "is_primary": True}]
    assert user["updated_at"] == iso(person.updated) and user["custom_fields"] == {"department": person.custom["department"]}
    assert users[bindbee_id("user", 18)]["status"] == "deleted"  # a passed-through LMS value that says the same as ours
    assert users[bindbee_id("user", 9)]["status"] == "inactive"

    courses = {c["id"]: c for c in records["courses"]}
    one = data.courses[1]
    assert courses[bindbee_id("course", 1)]["title"] == one.name
    assert courses[bindbee_id("course", 1)]["duration_seconds"] == one.duration_seconds
    assert courses[bindbee_id("course", 3)].get("duration_seconds") is None

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    for row in fake.app.listed_enrollments():
        record = enrollments[bindbee_id("enrollment", row.id)]
        member = data.people[row.user_id]
        assert record["user"]["id"] in users and record["course"]["id"] in courses  # joins on Bindbee ids
        assert record["user"]["id"] == bindbee_id("user", row.user_id) and record["course"]["title"] == data.courses[row.course_id].name
        assert record["user"]["emails"] == ([{"email": member.email, "type": None, "is_primary": True}] if member.email else [])
        assert record["status"] == EXPECTED_STATUS[row.state], row
        assert record.get("started_at") == iso(row.started)
        assert record.get("completed_at") == (iso(row.completed) if row.state in ("completed", "passed", "failed") else None)
        assert record["updated_at"] == iso(row.updated)


def test_enrollments_come_in_one_expanded_list_without_user_course_or_completion_reads(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert set(fake.paths()) == {"/api/lms/v1/enrollments"}
    query = queries(fake, "/api/lms/v1/enrollments")[0]
    assert query["expand"] == ["user[id,first_name,middle_name,last_name,email_address],course[id,name],completion"]


def test_every_list_walks_several_cursor_pages_with_identical_parameters(fake, monkeypatch):
    from source_lms_enrollments.providers import bindbee

    monkeypatch.setattr(bindbee.BindbeeStream, "page_size", 7)
    monkeypatch.setattr(bindbee.BindbeeEnrollments, "page_size", 7)
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    assert {r["id"] for r in records["users"]} == fake.app.expected_ids()["users"]
    assert {r["id"] for r in records["course_enrollments"]} == fake.app.expected_ids()["course_enrollments"]
    calls = queries(fake, "/api/lms/v1/users")
    assert len(calls) == -(-len(fake.app.data.people) // 7)
    assert "cursor" not in calls[0] and all("cursor" in q for q in calls[1:])
    assert all({k: v for k, v in q.items() if k != "cursor"} == calls[0] for q in calls)


def test_remote_data_switch_drives_include_raw_data_and_custom_fields_are_always_asked(fake):
    off = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"]))["users"]
    assert all(q["include_raw_data"] == ["false"] and q["include_custom_fields"] == ["true"] for q in queries(fake, "/api/lms/v1/users"))
    assert all(r.get("remote_data") is None for r in off)
    fake.clear()
    on = records_by_stream(run_read(fake.config(include_remote_data=True), mode=SyncMode.full_refresh, streams=["users"]))["users"]
    assert all(q["include_raw_data"] == ["true"] for q in queries(fake, "/api/lms/v1/users"))
    sample = next(r for r in on if r["id"] == bindbee_id("user", 2))
    assert sample["remote_data"]["remote_id"] == "2" and sample["remote_data"]["raw_data"]["login"] == "user2"


def test_incremental_is_client_side_on_modified_at_and_a_new_completion_moves_its_enrollment(fake):
    first = run_read(fake.config())
    state = final_states(first)
    learner = next(e for e in fake.app.listed_enrollments() if e.state in ("not_started", "assigned"))
    fake.app.data.touch(enrollments=[learner.id])  # the learner starts: Bindbee rewrites the enrollment
    fake.clear()
    second = records_by_stream(run_read(fake.config(), state=state, streams=["course_enrollments"]))["course_enrollments"]
    changed = [r for r in second if r["id"] == bindbee_id("enrollment", learner.id)]
    assert len(changed) == 1 and changed[0]["status"] == "in_progress"
    # Besides it, only the record at the cursor itself comes again (>= is inclusive).
    assert all(r["updated_at"] == state["course_enrollments"]["updated_at"] for r in second if r not in changed)
    # No modified_after on Bindbee's LMS lists: the filtering is ours, so the request carries none.
    assert all("modified_after" not in q for q in queries(fake, "/api/lms/v1/enrollments"))


def test_the_documented_rate_limit_is_waited_out_per_retry_after(monkeypatch):
    from source_lms_enrollments.providers import bindbee

    monkeypatch.setattr(bindbee.BindbeeStream, "page_size", 10)  # 3 pages of users against 2 requests a second
    with start_fake("bindbee", users=30, courses=6, enrollments=60, limit=2, window=1.0) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["users"])
        assert not output.errors
        assert len(records_by_stream(output)["users"]) == 30
        assert any("429" in m.log.message for m in output.logs)


def test_a_connector_token_of_another_category_fails_check_naming_the_field(fake, tmp_path):
    config = fake.config()
    config["provider"]["connector_token"] = HRIS_CONNECTOR_TOKEN
    result = run_cli(["check"], tmp_path, config=config)
    status = result.connection_status()
    assert status["status"] == "FAILED" and "HTTP 403" in status["message"] and "provider.connector_token" in status["message"]
    assert HRIS_CONNECTOR_TOKEN not in result.stdout


def test_a_wrong_api_key_during_read_is_a_config_error_and_no_secret_is_printed(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["courses"]))
    errors = result.errors()
    assert result.returncode != 0 and errors[0]["failure_type"] == "config_error" and "HTTP 401" in errors[0]["message"]
    for secret in (bad["provider"]["api_token"], bad["provider"]["connector_token"]):
        assert secret not in result.stdout and secret not in result.stderr


def test_malformed_page_ends_with_a_system_error_naming_the_endpoint(fake):
    fake.add_fault("malformed", count=1, match="/api/lms/v1/courses")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/api/lms/v1/courses" in error.message


def test_a_user_the_lms_reports_deleted_keeps_the_time_first_seen_so(fake):
    """Bindbee passes the LMS's `DELETED` status through and gives no deletion time: the user is emitted with status
    deleted and `remote_deleted_at` = when this connector first saw it so (the same in later syncs), null for one
    already deleted at the first sync; no tombstone, since Bindbee still lists it."""
    people = fake.app.data.people
    already = next(p for p in people.values() if p.status == "deleted")
    first = run_read(fake.config())
    assert not first.errors
    users = {u["id"]: u for u in records_by_stream(first)["users"]}
    assert users[bindbee_id("user", already.id)]["status"] == "deleted"
    assert users[bindbee_id("user", already.id)].get("remote_deleted_at") is None
    leaver = next(p for p in people.values() if p.status == "active" and p.id != 1)
    leaver.status, leaver.updated = "deleted", int(time.time())  # Bindbee rewrites the record: modified_at moves
    before = iso(time.time() - 1)
    second = run_read(fake.config(), state=final_states(first))
    third = run_read(fake.config(), state=final_states(second))  # within the cursor's 5-minute lag: emitted again
    when = []
    for output in (second, third):
        assert not output.errors
        users = {u["id"]: u for u in records_by_stream(output)["users"]}
        record = users[bindbee_id("user", leaver.id)]
        assert record["status"] == "deleted" and not record.get("_ab_cdc_deleted_at")
        when.append(record["remote_deleted_at"])
    assert when[0] >= before and when[0] == when[1]
