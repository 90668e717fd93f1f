"""TalentLMS mappers and status rules on documented-shape payloads, and the streams over requests-mock."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.talentlms import (
    duration_to_seconds,
    enrollment_status,
    is_learner_row,
    portal_date_to_iso,
    to_course,
    to_course_enrollment,
    to_user,
    user_role,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "talentlms"
BASE = "https://acme.talentlms.com"
API_KEY = "k" * 30
NOW = "2026-01-01T00:00:00Z"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**extra):
    return {"provider": {"provider_type": "talentlms", "base_url": BASE, "api_key": API_KEY}, **extra}


# ---- dates ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, date_format, expected",
    [
        ("25/12/2019, 03:58:40", "DDMMYYYY", "2019-12-25T03:58:40Z"),
        ("12/25/2019, 03:58:40", "MMDDYYYY", "2019-12-25T03:58:40Z"),
        ("2019/12/25, 03:58:40", "YYYYMMDD", "2019-12-25T03:58:40Z"),
        ("12/25/2019, 03:58:40 PM", "MMDDYYYY", "2019-12-25T15:58:40Z"),
        ("06/08/2019", "DDMMYYYY", "2019-08-06T00:00:00Z"),
        ("23/08/2020, 06:30", "DDMMYYYY", "2020-08-23T06:30:00Z"),
        ("", "DDMMYYYY", None),
        (None, "DDMMYYYY", None),
    ],
)
def test_portal_dates_follow_the_portal_format(value, date_format, expected):
    assert portal_date_to_iso(value, date_format) == expected


def test_a_date_that_does_not_match_the_portal_format_fails_loudly():
    with pytest.raises(ValueError):
        portal_date_to_iso("25/12/2019, 03:58:40", "MMDDYYYY")


@pytest.mark.parametrize("value, seconds", [("1h 2m 3s", 3723), ("3m 17s", 197), ("0s", 0), (None, None), ("", None)])
def test_total_time_strings(value, seconds):
    assert duration_to_seconds(value) == seconds


@pytest.mark.parametrize(
    "user_type, role",
    [("SuperAdmin", "admin"), ("Admin-Type", "admin"), ("Trainer-Type", "instructor"), ("Learner-Type", "learner"),
     ("Learner-Instructor", "instructor"), ("Team-Manager", "other"), (None, "other")],
)
def test_user_roles_from_user_types(user_type, role):
    assert user_role(user_type) == role


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_maps_the_documented_list_item():
    raw = load("users.json")[0]
    user = to_user(raw, "DDMMYYYY")
    assert user == {
        "id": "40457", "name": "John Smith", "first_name": "John", "last_name": "Smith", "username": "jsmith",
        "emails": [{"email": "jsmith@example.org", "type": "work", "is_primary": True}],
        "status": "active", "role": "learner", "locale": "English", "timezone": "(GMT +02:00) Athens",
        "job_title": None, "last_login_at": None, "created_at": "2015-11-12T07:06:53Z",
        "updated_at": "2020-08-21T06:05:00Z", "custom_fields": {"custom_field_1": "Acme LLC"}, "remote_data": None,
    }


def test_to_user_integer_twin_inactive_admin_and_non_ascii():
    user = to_user(load("users.json")[1], "DDMMYYYY")
    assert (user["name"], user["status"], user["role"], user["updated_at"]) == ("Zoë Øvergaard", "inactive", "admin", "2020-08-25T13:46:50Z")


def test_to_user_past_deactivation_date_means_inactive_and_missing_fields_are_null():
    user = to_user(load("users.json")[2], "DDMMYYYY")
    assert user["status"] == "inactive"
    assert user["emails"] == [] and user["last_name"] is None and user["name"] == "Kenji"
    assert user["updated_at"] is None and user["timezone"] is None and user["custom_fields"] == {}


def test_remote_data_never_keeps_the_auto_login_link():
    raw = load("users.json")[0]
    user = to_user(raw, "DDMMYYYY", keep_raw=True)
    assert user["remote_data"]["login"] == "jsmith"
    assert "login_key" not in user["remote_data"]


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_maps_the_documented_list_item():
    course = to_course(load("courses.json")[0], "DDMMYYYY")
    assert course == {
        "id": "123", "title": "Safety 101", "description": "<p>Stay safe.</p>", "code": "SAF101", "type": "course",
        "status": "published", "language": None, "duration_seconds": None,
        "urls": [{"url": "https://acme.talentlms.com/shared/start/key:XYZ", "type": "share"},
                 {"url": "https://acme.talentlms.com/pages/images/course.png", "type": "image"}],
        "categories": [{"id": "4", "name": None}], "tags": [], "created_at": "2019-11-24T09:52:37Z",
        "updated_at": "2020-05-15T04:25:35Z", "custom_fields": {"custom_field_1": "HSE"}, "remote_data": None,
    }


def test_inactive_course_is_disabled_with_empty_fields_null():
    course = to_course(load("courses.json")[1], "DDMMYYYY")
    assert (course["status"], course["code"], course["description"], course["urls"], course["categories"]) == ("disabled", None, None, [], [])


# ---- enrollments ---------------------------------------------------------------------------------------------------
def rows():
    return load("courses__id_123.json")["users"]


def test_instructor_rows_are_not_learner_enrollments():
    assert [is_learner_row(r) for r in rows()] == [True, True, False, True]


def test_to_course_enrollment_joins_the_user_list_for_name_and_email():
    detail = load("courses__id_123.json")
    person = {"id": "2", "name": "Zoë Øvergaard", "emails": [{"email": "zoe@example.org", "type": "work", "is_primary": True}]}
    record = to_course_enrollment(rows()[1], detail, person, NOW)
    assert record["id"] == "2:123"
    assert record["user"] == person
    assert record["course"] == {"id": "123", "title": "Safety 101"}
    assert record["status"] == "completed"
    assert (record["enrolled_at"], record["completed_at"], record["created_at"]) == ("2019-12-25T03:58:40Z", "2019-12-25T03:58:50Z", "2019-12-25T03:58:40Z")
    assert (record["progress_percent"], record["time_spent_seconds"]) == (100, 3723)
    assert record["urls"] == [{"url": "https://acme.talentlms.com/unit/view/id:3474", "type": "launch"}]
    assert record["updated_at"] is None  # no per-enrollment modification time: always re-emitted


def test_unknown_user_in_a_course_keeps_the_ids_and_nulls_the_join():
    record = to_course_enrollment(rows()[0], load("courses__id_123.json"), None, NOW)
    assert record["user"] == {"id": "40457", "name": None, "emails": []}


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"completion_status": "Completed"}, "completed"),
        ({"completed_on_timestamp": "1577246330", "completion_percentage": "100"}, "completed"),
        ({"completion_status": "failed", "completion_percentage": "100"}, "failed"),
        ({"expired_on_timestamp": "1585735200", "completion_percentage": "35"}, "expired"),
        ({"expired_on_timestamp": "1900000000", "completion_percentage": "35"}, "in_progress"),  # expiry in the future
        ({"completion_percentage": "35"}, "in_progress"),
        ({"completion_status": "incomplete", "completion_percentage": "0", "total_time": "3m 17s"}, "in_progress"),
        ({"completion_status": "incomplete", "completion_percentage": "0", "total_time": None}, "enrolled"),
        ({"completion_status": "not_attempted"}, "enrolled"),
        ({"completion_percentage": "0"}, "enrolled"),
        ({}, "unknown"),
    ],
)
def test_status_rules_top_to_bottom(row, expected):
    assert enrollment_status(row, NOW) == expected


def test_progress_is_clamped_and_numeric():
    row = {**rows()[3], "completion_percentage": "135"}
    assert to_course_enrollment(row, {"id": "1"}, None, NOW)["progress_percent"] == 100


# ---- streams over requests-mock ------------------------------------------------------------------------------------
def mock_portal(m: rm.Mocker) -> None:
    m.get(f"{BASE}/api/v1/siteinfo", json=load("siteinfo.json"))
    m.get(f"{BASE}/api/v1/ratelimit", json=load("ratelimit.json"))
    m.get(f"{BASE}/api/v1/users", json=load("users.json"))
    m.get(f"{BASE}/api/v1/courses", json=load("courses.json"))
    m.get(f"{BASE}/api/v1/courses/id:123", json=load("courses__id_123.json"))
    m.get(f"{BASE}/api/v1/courses/id:124", status_code=404, json={"error": {"type": "invalid_request_error", "message": "The requested course does not exist"}})


def test_read_sends_basic_auth_with_the_key_as_user_name_and_skips_a_vanished_course():
    with rm.Mocker() as m:
        mock_portal(m)
        output = run_read(config(), mode=SyncMode.full_refresh)
        assert not output.errors
        records = records_by_stream(output)
        assert [r["id"] for r in records["course_enrollments"]] == ["40457:123", "2:123", "40458:123"]
        expected = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
        assert {r.headers["Authorization"] for r in m.request_history} == {expected}
        assert any("404" in log.log.message and "/api/v1/courses/id:124" in log.log.message for log in output.logs)


def test_a_wrong_key_ends_the_read_with_a_config_error_naming_the_field():
    with rm.Mocker() as m:
        m.get(rm.ANY, status_code=401, json=load("error__invalid_key.json"))
        output = run_read(config(), streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "Invalid API key provided" in error.message and "provider.api_key" in error.message
    assert API_KEY not in json.dumps([m.log.message for m in output.logs])


def test_an_error_body_with_status_200_is_an_error_not_records():
    with rm.Mocker() as m:
        m.get(f"{BASE}/api/v1/siteinfo", json=load("siteinfo.json"))
        m.get(f"{BASE}/api/v1/users", json={"error": {"type": "invalid_request_error", "message": "Invalid arguments provided"}})
        output = run_read(config(), streams=["users"], expecting_exception=True)
    assert not output.records
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "/api/v1/users" in error.message and "Invalid arguments provided" in error.message


def test_a_record_without_id_stops_the_sync_naming_the_endpoint():
    with rm.Mocker() as m:
        m.get(f"{BASE}/api/v1/siteinfo", json=load("siteinfo.json"))
        m.get(f"{BASE}/api/v1/courses", json=[{"name": "no id"}])
        output = run_read(config(), streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/api/v1/courses" in error.message and "id" in error.message
