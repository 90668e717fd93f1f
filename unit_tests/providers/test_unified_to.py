"""Unified.to mappers on documented-shape payloads (LmsStudent, LmsInstructor, LmsCourse, LmsActivity of
docs.unified.to/lms/*/model), and the streams over requests-mock: Bearer auth, the connection in the path,
limit/offset paging, updated_gte, enrollments rebuilt from all their activities, errors."""

from __future__ import annotations

import json
from pathlib import Path

import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers import unified_to
from source_lms_enrollments.providers.unified_to import to_course, to_course_enrollment, to_user, unified_to_error_message

RESOURCES = Path(__file__).parent.parent / "resources" / "unified_to"
BASE = "https://api.unified.to"
TOKEN = "eyJhbGciOiJIUzI1NiJ9." + "t" * 40
CONNECTION = "65e8a2c1f0b3a47d9c2e1b05"
LMS = f"{BASE}/lms/{CONNECTION}"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**extra):
    return {"provider": {"provider_type": "unified_to", "api_token": TOKEN, "connection_id": CONNECTION}, **extra}


def mock_connection(m) -> None:
    m.get(f"{BASE}/unified/connection/{CONNECTION}", json={"id": CONNECTION, "integration_type": "docebo", "integration_name": "Docebo", "auth": {"token": "lms-secret"}})


def activities_of(name: str = "activity__page1.json"):
    return [a for a in load(name) if a.get("course_id")]


# ---- users ---------------------------------------------------------------------------------------------------------
def test_a_student_maps_with_its_emails_and_keeps_what_the_schema_lacks_as_custom_fields():
    user = to_user(load("student__page1.json")[0], "learner", extras={"unified_to_integration": "docebo"})
    assert user == {
        "id": "10432", "name": "Ayşe Yılmaz", "first_name": "Ayşe", "last_name": "Yılmaz", "username": None,
        "emails": [{"email": "ayse@example.com", "type": "work", "is_primary": None},
                   {"email": "ayse.y@example.net", "type": "home", "is_primary": None}],
        "status": None, "role": "learner", "locale": None, "timezone": None, "job_title": None, "last_login_at": None,
        "created_at": "2024-01-15T08:00:00Z", "updated_at": "2024-03-05T17:20:00Z",
        "custom_fields": {"telephones": [{"telephone": "+90 555 000 0001", "type": "MOBILE"}],
                          "address": {"city": "Istanbul", "country_code": "TR"},
                          "image_url": "https://cdn.example.com/u/10432.png", "unified_to_integration": "docebo"},
        "remote_data": None,
    }


def test_a_sparse_student_gets_its_name_from_first_and_last_and_nulls_elsewhere():
    user = to_user(load("student__page1.json")[1])
    assert user["name"] == "Admin Person" and user["emails"] == [] and user["updated_at"] is None and user["custom_fields"] == {}


def test_an_instructor_has_role_instructor_and_its_title_as_job_title():
    user = to_user(load("instructor__page1.json")[0], "instructor")
    assert user["role"] == "instructor" and user["job_title"] == "Senior trainer" and user["custom_fields"] == {}


def test_remote_data_is_the_unified_record_with_the_lms_raw_payload():
    raw = load("student__page1.json")[0]
    assert to_user(raw, keep_raw=True)["remote_data"]["raw"] == {"user_id": 10432, "username": "ayse", "level": 3, "valid": 1}


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_maps_the_documented_object():
    course = to_course(load("course__page1.json")[0])
    assert course["id"] == "204" and course["title"] == "Fire safety 2024" and course["type"] == "course"
    assert course["status"] == "published" and course["language"] == "en" and course["duration_seconds"] == 2700
    assert course["updated_at"] == "2024-04-10T04:15:00Z"  # +02:00 to UTC
    assert course["urls"] == [{"url": "https://cdn.example.com/c/204.png", "type": "image"}, {"url": "https://acme.docebosaas.com/learn/course/204", "type": "web"}]
    assert course["categories"] == [{"id": None, "name": "Compliance"}, {"id": None, "name": "Safety"}]
    assert course["custom_fields"] == {
        "provider_name": "Docebo Content", "is_private": False, "price_amount": 0, "currency": "EUR", "skills": ["Safety"],
        "instructors": [{"id": "88", "name": "Jean Martin"}], "published_at": "2023-09-15T00:00:00Z",
    }


def test_an_inactive_course_is_disabled_and_its_time_estimate_is_the_duration():
    course = to_course(load("course__page1.json")[1])
    assert course["status"] == "disabled" and course["duration_seconds"] == 750 and course["urls"] == []
    assert to_course({"id": "1"})["status"] == "unknown"


# ---- enrollments from activities ----------------------------------------------------------------------------------
def test_a_course_level_activity_is_the_enrollment():
    row = activities_of()[0]
    enrollment = to_course_enrollment("10432", "301", [row])
    assert enrollment["id"] == "10432:301" and enrollment["user"]["id"] == "10432" and enrollment["course"]["id"] == "301"
    assert enrollment["status"] == "completed" and enrollment["progress_percent"] == 100 and enrollment["score"] == 87.5
    assert enrollment["time_spent_seconds"] == 5700 and enrollment["enrolled_at"] == "2024-02-01T08:00:00Z"
    assert enrollment["started_at"] == "2024-02-01T09:00:00Z" and enrollment["completed_at"] == "2024-03-02T10:00:00Z"
    assert enrollment["updated_at"] == "2024-03-02T10:00:00Z"
    assert enrollment["custom_fields"] == {"activity_ids": ["enr-5001"]}


def test_content_level_activities_aggregate_into_one_enrollment():
    rows = [a for a in activities_of() if a["course_id"] == "204"]
    enrollment = to_course_enrollment("10432", "204", rows)
    assert enrollment["status"] == "in_progress"  # one of three items completed
    assert enrollment["progress_percent"] == round((100 + 40 + 0) / 3, 2)
    assert enrollment["time_spent_seconds"] == 930  # 10 + 5.5 minutes; the third row has no duration
    assert enrollment["started_at"] == "2024-02-10T09:00:00Z" and enrollment["completed_at"] is None
    assert enrollment["updated_at"] == "2024-02-20T08:00:00Z" and enrollment["last_activity_at"] == "2024-02-20T08:00:00Z"
    assert enrollment["custom_fields"]["content_ids"] == ["lo-1", "lo-2", "lo-3"]


def test_every_item_completed_completes_the_enrollment_at_the_last_completion():
    rows = [dict(a, is_completed=True, progress_percentage=None, completed_at=f"2024-02-2{i}T00:00:00Z") for i, a in enumerate(activities_of()[1:4])]
    enrollment = to_course_enrollment("10432", "204", rows)
    assert enrollment["status"] == "completed" and enrollment["progress_percent"] == 100 and enrollment["completed_at"] == "2024-02-22T00:00:00Z"


def test_a_row_without_updated_at_makes_the_enrollment_updated_at_null():
    rows = activities_of()[1:4]
    rows[0] = {k: v for k, v in rows[0].items() if k != "updated_at"}
    assert to_course_enrollment("10432", "204", rows)["updated_at"] is None


def test_nothing_started_is_enrolled_and_a_letter_grade_stays_in_custom_fields():
    row = {"id": "a", "student_id": "1", "course_id": "2", "is_completed": False, "assigned_grade": "B+", "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
    enrollment = to_course_enrollment("1", "2", [row])
    assert enrollment["status"] == "enrolled" and enrollment["score"] is None and enrollment["progress_percent"] is None
    assert enrollment["custom_fields"]["grades"] == ["B+"]


def test_remote_data_of_an_enrollment_holds_all_its_activities():
    rows = activities_of()[1:4]
    assert to_course_enrollment("10432", "204", rows, keep_raw=True)["remote_data"] == {"activities": rows}


# ---- errors ----------------------------------------------------------------------------------------------------------
def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    return response


def test_the_error_message_names_unified_to_and_the_lms_behind_it():
    said = unified_to_error_message(_response(403, b'{"message": "REQUEST_LIMIT_EXCEEDED"}'), "Docebo")
    assert said.startswith("REQUEST_LIMIT_EXCEEDED") and "Unified.to" in said and "Docebo" in said
    assert "the LMS" in unified_to_error_message(_response(500, b'{"error": {"message": "boom"}}'))
    assert unified_to_error_message(_response(502, b"Bad Gateway")).startswith("Bad Gateway")
    assert unified_to_error_message(_response(500, b"{}")) is None
    assert unified_to_error_message(_response(401, b'{"message": "Unauthorized"}'), own=True) == "Unauthorized"  # no LMS behind


# ---- streams over requests-mock ----------------------------------------------------------------------------------------
def test_users_page_by_limit_and_offset_with_bearer_and_the_connection_in_the_path():
    students = [{"id": f"s{i}", "updated_at": "2024-01-01T00:00:00Z"} for i in range(150)]
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/student", json=lambda r, _: students[int(r.qs["offset"][0]):][: int(r.qs["limit"][0])])
        m.get(f"{LMS}/instructor", json=load("instructor__page1.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"])
        calls = [(r.path, r.qs.get("offset"), r.qs.get("limit"), r.headers["Authorization"]) for r in m.request_history if "/lms/" in r.path]
    users = records_by_stream(output)["users"]
    assert len(users) == 151 and users[-1]["role"] == "instructor" and users[0]["custom_fields"]["unified_to_integration_name"] == "Docebo"
    assert calls == [(f"/lms/{CONNECTION}/student", ["0"], ["100"], f"Bearer {TOKEN}"),
                     (f"/lms/{CONNECTION}/student", ["100"], ["100"], f"Bearer {TOKEN}"),
                     (f"/lms/{CONNECTION}/instructor", ["0"], ["100"], f"Bearer {TOKEN}")]
    assert "lms-secret" not in json.dumps(users)  # the connection's auth is never kept


def test_a_person_in_both_lists_is_emitted_once_as_a_student():
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/student", json=[{"id": "88", "name": "Jean"}])
        m.get(f"{LMS}/instructor", json=load("instructor__page1.json"))
        users = records_by_stream(run_read(config(), mode=SyncMode.full_refresh, streams=["users"]))["users"]
    assert [(u["id"], u["role"]) for u in users] == [("88", "learner")]


def test_incremental_sends_updated_gte_and_full_refresh_does_not():
    state = {"courses": {"updated_at": "2024-03-01T00:00:00Z", "swept_at": "2999-01-01T00:00:00Z"}}
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/course", json=load("course__page1.json"))
        run_read(config(), mode=SyncMode.incremental, state=state, streams=["courses"])
        run_read(config(), mode=SyncMode.full_refresh, streams=["courses"])
        sent = [r.qs.get("updated_gte") for r in m.request_history if r.path.endswith("/course")]
    assert sent == [["2024-03-01t00:00:00z"], None]  # requests-mock lower-cases query values


def test_an_incremental_read_rebuilds_a_changed_enrollment_from_all_its_activities():
    """Only the second of three content activities changed: the enrollment must still count all three."""
    rows = activities_of()[1:4]
    state = {"course_enrollments": {"updated_at": "2024-02-15T00:00:00Z", "swept_at": "2999-01-01T00:00:00Z"}}

    def answer(request, _):
        if "updated_gte" in request.qs:
            return [r for r in rows if r["updated_at"] >= "2024-02-15T00:00:00Z"]
        return rows if request.qs.get("course_id") == ["204"] else []

    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/activity", json=answer)
        output = run_read(config(), mode=SyncMode.incremental, state=state, streams=["course_enrollments"])
        asked = [sorted(k for k in r.qs if k not in ("limit", "offset")) for r in m.request_history if r.path.endswith("/activity")]
    (enrollment,) = records_by_stream(output)["course_enrollments"]
    assert asked == [["updated_gte"], ["course_id"]]
    assert enrollment["id"] == "10432:204" and enrollment["progress_percent"] == round(140 / 3, 2)
    assert enrollment["custom_fields"]["activity_ids"] == ["act-6001-0", "act-6001-1", "act-6001-2"]


def test_rows_of_another_course_are_dropped_when_the_course_filter_is_ignored():
    rows = activities_of()
    state = {"course_enrollments": {"updated_at": "2024-03-01T00:00:00Z", "swept_at": "2999-01-01T00:00:00Z"}}
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/activity", json=lambda r, _: [a for a in rows if a["updated_at"] >= "2024-03-01"] if "updated_gte" in r.qs else rows)
        output = run_read(config(), mode=SyncMode.incremental, state=state, streams=["course_enrollments"])
    assert [e["id"] for e in records_by_stream(output)["course_enrollments"]] == ["10432:301"]


def test_many_changed_courses_are_read_in_one_full_listing(monkeypatch):
    monkeypatch.setattr(unified_to, "MAX_COURSE_REREADS", 1)
    rows = activities_of()
    state = {"course_enrollments": {"updated_at": "2024-01-01T00:00:00Z", "swept_at": "2999-01-01T00:00:00Z"}}
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/activity", json=rows)
        output = run_read(config(), mode=SyncMode.incremental, state=state, streams=["course_enrollments"])
        asked = [sorted(k for k in r.qs if k not in ("limit", "offset")) for r in m.request_history if r.path.endswith("/activity")]
    assert asked == [["updated_gte"], []]
    assert sorted(e["id"] for e in records_by_stream(output)["course_enrollments"]) == ["10432:204", "10432:301"]


def test_a_wrong_token_is_a_config_error_naming_both_fields_without_the_connection_id():
    with rm.Mocker() as m:
        m.get(f"{BASE}/unified/connection/{CONNECTION}", status_code=401, json={"message": "Unauthorized"})
        m.get(f"{LMS}/student", status_code=401, json={"message": "Unauthorized"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0]
    message = error.trace.error.message
    assert error.trace.error.failure_type.value == "config_error"
    assert "provider.api_token" in message and "provider.connection_id" in message and "Unauthorized" in message
    assert CONNECTION not in message and TOKEN not in message and "{connection_id}" in message


def test_an_unknown_connection_is_a_config_error_naming_connection_id():
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/course", status_code=404, json={"message": "Connection not found"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    message = output.errors[0].trace.error.message
    assert output.errors[0].trace.error.failure_type.value == "config_error" and "provider.connection_id" in message
    assert "Connection not found" in message and "Docebo" in message


def test_a_value_a_mapper_cannot_read_is_a_system_error_naming_the_endpoint_and_record():
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/course", json=[{"id": "9", "name": "x", "duration_minutes": "soon"}])
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "/lms/{connection_id}/course" in error.message and "'9'" in error.message and CONNECTION not in error.message


def test_the_cursor_never_passes_the_start_of_the_read_less_a_minute():
    """An activity changed while the enrollments are read (after the changes-first pass) must be asked for again."""
    import time as _time

    from source_lms_enrollments.unified import epoch_to_iso

    now = epoch_to_iso(_time.time())
    rows = [dict(a, updated_at=now) for a in activities_of()]
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/activity", json=rows)
        started = _time.time()
        output = run_read(config(), mode=SyncMode.incremental, streams=["course_enrollments"])
    assert records_by_stream(output)["course_enrollments"]
    cursor = output.most_recent_state.stream_state.updated_at
    assert cursor <= epoch_to_iso(started - 59), (cursor, now)


def test_a_row_naming_only_its_content_item_counts_for_the_courses_of_that_content():
    rows = [{k: v for k, v in a.items() if k != "course_id"} for a in activities_of()[1:4]] + [dict(load("activity__page1.json")[4], updated_at="2024-02-01T00:00:00Z")]
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/activity", json=rows)
        m.get(f"{LMS}/content", json=[{"id": f"lo-{i}", "course_ids": ["204"]} for i in (1, 2, 3)])  # lo-9: in no course
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    (enrollment,) = records_by_stream(output)["course_enrollments"]
    assert enrollment["id"] == "10432:204" and enrollment["custom_fields"]["content_ids"] == ["lo-1", "lo-2", "lo-3"]
    assert any("1 activity row(s)" in m.log.message for m in output.logs)  # lo-9's row: left out, and said


def test_an_incremental_read_of_content_only_rows_rebuilds_from_a_full_listing():
    rows = [{k: v for k, v in a.items() if k != "course_id"} for a in activities_of()[1:4]]
    state = {"course_enrollments": {"updated_at": "2024-02-15T00:00:00Z", "swept_at": "2999-01-01T00:00:00Z"}}
    with rm.Mocker() as m:
        mock_connection(m)
        m.get(f"{LMS}/activity", json=lambda r, _: [a for a in rows if a["updated_at"] >= "2024-02-15"] if "updated_gte" in r.qs else rows)
        m.get(f"{LMS}/content", json=[{"id": f"lo-{i}", "course_ids": ["204"]} for i in (1, 2, 3)])
        output = run_read(config(), mode=SyncMode.incremental, state=state, streams=["course_enrollments"])
        asked = [sorted(k for k in r.qs if k not in ("limit", "offset")) for r in m.request_history if r.path.endswith("/activity")]
    (enrollment,) = records_by_stream(output)["course_enrollments"]
    assert asked == [["updated_gte"], []] and len(enrollment["custom_fields"]["activity_ids"]) == 3
    assert enrollment["progress_percent"] == round(140 / 3, 2)
