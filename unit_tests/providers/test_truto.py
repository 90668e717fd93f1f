"""Truto mappers on documented-shape payloads (seed 001/003, Truto's users and courses pages), and the streams
over requests-mock: auth, account scoping, cursor paging, the remote-data switch, errors."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.truto import to_course, to_course_enrollment, to_user, truto_error_message

RESOURCES = Path(__file__).parent.parent / "resources" / "truto"
BASE = "https://api.truto.one"
TOKEN = "t" * 40
ACCOUNT = "62f44730-dd91-461e-bd6a-aedd9e0ad79d"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**extra):
    return {"provider": {"provider_type": "truto", "api_token": TOKEN, "integrated_account_id": ACCOUNT}, **extra}


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_keeps_truto_values_and_normalises_timestamps():
    user = to_user(load("users__page1.json")["result"][0])
    assert user == {
        "id": "1042", "name": "Ayşe Yılmaz", "first_name": "Ayşe", "last_name": "Yılmaz", "username": "ayse",
        "emails": [{"email": "ayse@example.com", "type": "work", "is_primary": True}],
        "status": "active", "role": "learner", "locale": "tr_TR", "timezone": "Europe/Istanbul", "job_title": "Nurse",
        "last_login_at": None, "created_at": "2024-01-15T08:00:00Z",
        "updated_at": "2024-03-05T17:20:00Z",  # +02:00 converted to UTC
        "custom_fields": {"department": "Ops"}, "remote_data": None,
    }


def test_a_partial_list_row_maps_with_nulls_and_out_of_enum_values_become_unknown_or_other():
    user = to_user(load("users__page1.json")["result"][1])
    assert user["id"] == "7" and user["name"] == "Admin Person"
    assert user["status"] == "unknown" and user["role"] == "other"
    assert user["emails"] == [] and user["updated_at"] is None and user["custom_fields"] == {}


def test_remote_data_is_the_truto_record_with_fields_this_schema_lacks():
    raw = load("users__page1.json")["result"][0]
    remote = to_user(raw, keep_raw=True)["remote_data"]
    assert remote["phones"] == raw["phones"] and remote["organization"] == {"id": "3", "name": "Branch 3"}
    assert remote["remote_data"]["user_type"] == "Learner-Type"  # Truto's own remote_data: the LMS payload
    assert "phones" not in to_user(raw)  # not a field of the unified schema


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_maps_the_documented_object():
    course = to_course(load("courses__page1.json")["result"][0])
    assert course == {
        "id": "117", "title": "Охрана труда", "description": "<p>Safety basics</p>", "code": "OT-1", "type": "course",
        "status": "published", "language": "ru", "duration_seconds": 5400,
        "urls": [{"url": "https://acme.talentlms.com/learner/courseinfo/id:117", "type": "launch"}],
        "categories": [{"id": "2", "name": "Compliance"}], "tags": [{"id": "t1", "name": "safety"}],
        "created_at": "2024-01-31T12:00:00Z", "updated_at": "2024-04-01T10:11:12Z",  # fraction dropped, not rounded
        "custom_fields": {"owner": "team-1"}, "remote_data": None,
    }


def test_course_type_and_status_outside_the_enums():
    course = to_course(load("courses__page1.json")["result"][1])
    assert course["type"] == "other" and course["status"] == "unknown"
    assert course["urls"] == [] and course["categories"] == [] and course["updated_at"] is None


# ---- course enrollments --------------------------------------------------------------------------------------------
def test_to_course_enrollment_supported_talentlms_fields():
    rows = load("course-enrollments__page1.json")["result"]
    record = to_course_enrollment(rows[0], {"id": "117", "title": "Охрана труда"})
    assert record["id"] == "1042_117"
    assert record["user"] == {"id": "1042", "name": "Ayşe Yılmaz", "emails": [{"email": "ayse@example.com", "type": "work", "is_primary": True}]}
    assert record["course"] == {"id": "117", "title": "Охрана труда"}
    assert record["status"] == "in_progress" and record["progress_percent"] == 45.5 and record["time_spent_seconds"] == 1260
    assert record["enrolled_at"] == "2024-03-01T09:00:00Z" and record["completed_at"] is None
    assert record["updated_at"] == "2024-03-05T17:20:00Z"
    for absent in ("assigned_at", "due_at", "started_at", "score", "is_mandatory", "assigned_by", "attempt_number"):
        assert record[absent] is None, absent
    assert record["urls"] == [] and record["custom_fields"] == {} and record["remote_data"] is None


def test_to_course_enrollment_every_field_and_unknown_extras_ignored():
    record = to_course_enrollment(load("course-enrollments__page1.json")["result"][1], {"id": "117", "title": "x"})
    assert record["status"] == "completed" and record["score"] == 88 and record["is_mandatory"] is True
    assert record["assigned_by"] == {"id": "7", "name": "Admin Person"}
    assert record["attempt_number"] == 2 and record["attempts_count"] == 2
    assert record["due_at"] == "2024-03-01T00:00:00Z" and record["last_activity_at"] == "2024-02-20T15:30:00Z"
    assert record["course"] == {"id": "117", "title": "Охрана труда"}  # the record's own title wins over the slice's
    assert record["custom_fields"] == {"cohort": "B"} and "certificate" not in record


def test_a_row_of_another_course_than_the_slice_is_dropped_and_a_missing_course_is_the_slice():
    row = load("course-enrollments__page1.json")["result"][0]
    assert to_course_enrollment(row, {"id": "999", "title": "Other"}) is None
    bare = {key: value for key, value in row.items() if key != "course"}
    assert to_course_enrollment(bare, {"id": "117", "title": "From the list"})["course"] == {"id": "117", "title": "From the list"}


@pytest.mark.parametrize("value, expected", [("passed", "passed"), ("OVERDUE", "overdue"), ("started", "unknown"), (None, "unknown")])
def test_enrollment_status_passes_the_enum_through_and_nothing_else(value, expected):
    assert to_course_enrollment({"id": "1", "status": value})["status"] == expected


def test_progress_is_clamped():
    assert to_course_enrollment({"id": "1", "progress_percent": 130})["progress_percent"] == 100


# ---- errors --------------------------------------------------------------------------------------------------------
def _response(status: int, body) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_error_message_says_when_the_lms_behind_truto_failed():
    assert truto_error_message(_response(429, load("error__remote_429.json"))) == "the LMS behind Truto said: API rate limit exceeded"
    assert truto_error_message(_response(401, {"statusCode": 401, "error": "Unauthorized", "message": "Invalid API token"})) == "Invalid API token"
    assert truto_error_message(_response(502, "<html>")) is None


# ---- streams over requests-mock ------------------------------------------------------------------------------------
def _query(request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def test_users_follow_next_cursor_with_bearer_and_account_and_drop_remote_data_when_off():
    second = {"result": [{"id": "8", "name": "Eight"}], "next_cursor": None}
    with rm.Mocker() as m:
        m.get(f"{BASE}/unified/lms/users", [{"json": load("users__page1.json")}, {"json": second}])
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"])
    assert [r["id"] for r in records_by_stream(output)["users"]] == ["1042", "7", "8"]
    first, following = m.request_history
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert _query(first) == {"integrated_account_id": [ACCOUNT], "limit": ["100"], "truto_ignore_remote_data": ["true"]}
    assert _query(following)["next_cursor"] == ["eyJvZmZzZXQiOjEwMH0"] and _query(following)["integrated_account_id"] == [ACCOUNT]


def test_remote_data_on_asks_truto_for_it():
    with rm.Mocker() as m:
        m.get(f"{BASE}/unified/lms/users", json={"result": load("users__page1.json")["result"], "next_cursor": None})
        output = run_read(config(include_remote_data=True), mode=SyncMode.full_refresh, streams=["users"])
    assert "truto_ignore_remote_data" not in _query(m.request_history[0])
    assert records_by_stream(output)["users"][0]["remote_data"]["remote_data"]["login"] == "ayse"


def test_enrollments_are_read_per_course_with_the_course_filter():
    with rm.Mocker() as m:
        m.get(f"{BASE}/unified/lms/courses", json=load("courses__page1.json"))
        m.get(f"{BASE}/unified/lms/course-enrollments", json=load("course-enrollments__page1.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    calls = [_query(r) for r in m.request_history if r.path.endswith("/course-enrollments")]
    assert sorted(c["course[id]"] for c in calls) == [["117"], ["118"]]  # read concurrently: in either order
    # Both courses answered the same rows (course 117's): kept once, under their own course only.
    assert sorted(r["id"] for r in records_by_stream(output)["course_enrollments"]) == ["1042_117", "1043_117"]


def test_a_cursor_that_repeats_ends_the_stream_instead_of_looping():
    page = {"result": [{"id": "1"}], "next_cursor": "same"}
    with rm.Mocker() as m:
        m.get(f"{BASE}/unified/lms/users", json=page)
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    assert len(m.request_history) == 2
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "repeats the cursor" in error.message and "/unified/lms/users" in error.message


def test_a_result_that_is_not_a_list_is_a_system_error_naming_the_endpoint():
    with rm.Mocker() as m:
        m.get(f"{BASE}/unified/lms/courses", json={"result": {"id": "1"}, "next_cursor": None})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/unified/lms/courses" in error.message and "'result'" in error.message


def test_a_wrong_token_is_a_config_error_quoting_truto_and_naming_the_fields():
    with rm.Mocker() as m:
        m.get(rm.ANY, status_code=401, json={"statusCode": 401, "error": "Unauthorized", "message": "Invalid API token"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "Invalid API token" in error.message and "provider.api_token" in error.message and TOKEN not in error.message
