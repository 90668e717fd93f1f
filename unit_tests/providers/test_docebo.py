"""Docebo mappers, status rules, token requests and paging on documented-shape payloads (requests-mock)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests_mock as rm
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.http_policy import MAX_RETRIES
from source_lms_enrollments.providers.docebo import (
    Docebo,
    docebo_date,
    enrollment_status,
    is_course_learner_row,
    to_course,
    to_course_enrollment,
    to_user,
)
from source_lms_enrollments.unified import now_iso

RESOURCES = Path(__file__).parent.parent / "resources" / "docebo"
BASE = "https://acme.docebosaas.com"
NOW = "2026-01-01T00:00:00Z"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**provider):
    return {"provider": {"provider_type": "docebo", "base_url": BASE, "client_id": "cid", "client_secret": "csecret", **provider}}


# ---- dates ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [("2024-05-10 12:00:03", "2024-05-10T12:00:03Z"), ("2024-05-10", "2024-05-10T00:00:00Z"),
     ("0000-00-00 00:00:00", None), ("0000-00-00", None), ("", None), (None, None)],
)
def test_docebo_dates(value, expected):
    assert docebo_date(value) == expected


def test_a_date_in_another_format_fails_loudly():
    with pytest.raises(ValueError):
        docebo_date("10/05/2024 12:00")


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_maps_the_documented_list_item():
    raw = load("manage_v1_user__page1.json")["data"]["items"][0]
    assert to_user(raw) == {
        "id": "12301", "name": "John Smith", "first_name": "John", "last_name": "Smith", "username": "jsmith",
        "emails": [{"email": "jsmith@example.com", "type": "work", "is_primary": True}],
        "status": "active", "role": "admin", "locale": "en", "timezone": "Europe/Rome", "job_title": None,
        "last_login_at": "2024-05-11T08:01:44Z", "created_at": "2023-04-02T09:15:00Z", "updated_at": "2024-05-10T12:00:03Z",
        "custom_fields": {"field_12": "Sales"}, "remote_data": None,
    }


def test_to_user_with_zero_dates_numeric_level_and_no_email():
    user = to_user(load("manage_v1_user__page1.json")["data"]["items"][1], keep_raw=True)
    assert user["id"] == "12302" and user["name"] == "Maria Rossi"  # empty fullname: first + last
    assert user["status"] == "suspended" and user["role"] == "learner"
    assert user["updated_at"] is None and user["last_login_at"] is None  # 0000-00-00 dates
    assert user["emails"] == [] and user["locale"] == "italian"
    assert user["remote_data"]["user_id"] == 12302


def test_an_expired_user_is_inactive_and_a_power_user_a_manager():
    user = to_user(load("manage_v1_user__page1.json")["data"]["items"][2])
    assert user["status"] == "inactive" and user["role"] == "manager" and user["last_login_at"] is None


@pytest.mark.parametrize("level, role", [("godadmin", "admin"), ("3", "admin"), ("poweruser", "manager"), ("admin", "manager"),
                                         ("4", "manager"), ("user", "learner"), (6, "learner"), ("custom", "other"), (None, "other")])
def test_user_roles_from_levels(level, role):
    assert to_user({"user_id": 1, "level": level})["role"] == role


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_maps_the_documented_list_item():
    raw = load("learn_v1_courses__page1.json")["data"]["items"][0]
    assert to_course(raw, BASE) == {
        "id": "42", "title": "Safety 101", "description": "<p>Stay safe.</p>", "code": "SAF-101", "type": "course",
        "status": "unknown", "language": "en", "duration_seconds": 1800,
        "urls": [{"url": f"{BASE}/learn/course/internal/view/elearning/42/safety-101", "type": "web"},
                 {"url": "https://cdn.example.org/safety.png", "type": "image"}],
        "categories": [{"id": "3", "name": "Compliance"}], "tags": [], "created_at": None,
        "updated_at": "2024-02-10T14:22:05Z", "custom_fields": {}, "remote_data": None,
    }


def test_a_course_without_category_code_or_duration():
    course = to_course(load("learn_v1_courses__page1.json")["data"]["items"][1], BASE)
    assert course["categories"] == [] and course["code"] is None and course["duration_seconds"] is None
    assert course["description"] is None and course["language"] is None


# ---- enrollments ---------------------------------------------------------------------------------------------------
ROWS = load("learn_v1_enrollments__page1.json")["data"]["items"]
PERSON = {"id": "12301", "name": "John Smith", "emails": [{"email": "jsmith@example.com", "type": "work", "is_primary": True}]}


def test_to_course_enrollment_maps_the_documented_list_item():
    assert to_course_enrollment(ROWS[0], PERSON, NOW) == {
        "id": "12301:42", "user": PERSON, "course": {"id": "42", "title": "Safety 101"}, "status": "in_progress",
        "assigned_at": None, "due_at": None, "enrolled_at": "2024-02-01T00:00:00Z", "started_at": None,
        "last_activity_at": None, "completed_at": None, "progress_percent": None, "time_spent_seconds": 1260,
        "score": 0, "is_mandatory": None, "assigned_by": None, "attempt_number": None, "attempts_count": None,
        "urls": [{"url": "https://acme.docebosaas.com/learn/course/42/safety-101", "type": "launch"}],
        "created_at": "2024-02-01T00:00:00Z", "updated_at": "2024-02-10T14:22:05Z", "custom_fields": {}, "remote_data": None,
    }


def test_a_completed_enrollment_past_its_end_stays_completed():
    record = to_course_enrollment(ROWS[1], None, NOW)
    assert record["status"] == "completed" and record["progress_percent"] == 100 and record["score"] == 87.5
    assert record["completed_at"] == "2024-01-20T16:30:00Z" and record["urls"] == []
    assert record["user"] == {"id": "12302", "name": None, "emails": []}  # not visible to the token's user


def test_a_not_started_enrollment_past_its_end_is_expired():
    record = to_course_enrollment(ROWS[2], None, NOW)
    assert record["status"] == "expired" and record["progress_percent"] == 0
    assert record["enrolled_at"] is None and record["completed_at"] is None


def test_instructor_and_learning_plan_rows_are_not_course_learner_enrollments():
    assert [is_course_learner_row(row) for row in ROWS] == [True, True, True, False, False]


@pytest.mark.parametrize(
    "status, expected",
    [("subscribed", "enrolled"), ("enrolled", "enrolled"), ("in_progress", "in_progress"), ("in progress", "in_progress"),
     ("completed", "completed"), ("waiting", "assigned"), ("waiting_list", "assigned"), ("to_confirm", "assigned"),
     ("overbooking", "assigned"), ("suspended", "withdrawn"), ("0", "enrolled"), ("1", "in_progress"), (2, "completed"),
     ("-2", "assigned"), ("3", "withdrawn"), ("archived", "unknown"), (None, "unknown")],
)
def test_status_table(status, expected):
    assert enrollment_status({"status": status}, NOW) == expected


@pytest.mark.parametrize("status", ["subscribed", "in_progress", "waiting", "suspended"])
def test_expiry_overrides_every_status_but_completed(status):
    assert enrollment_status({"status": status, "enroll_end_date": "2025-12-31 23:59:59"}, NOW) == "expired"
    assert enrollment_status({"status": status, "enroll_end_date": "2026-01-02 00:00:00"}, NOW) != "expired"
    assert enrollment_status({"status": status, "enroll_end_date": "0000-00-00 00:00:00"}, NOW) != "expired"


# ---- config and token requests ---------------------------------------------------------------------------------------
def test_username_without_password_is_a_config_error():
    with pytest.raises(AirbyteTracedException) as raised:
        Docebo(config(username="admin"))
    assert raised.value.failure_type == FailureType.config_error and "provider.password" in raised.value.message


@pytest.mark.parametrize(
    "provider, expected",
    [({}, {"grant_type": ["client_credentials"], "client_id": ["cid"], "client_secret": ["csecret"], "scope": ["api"]}),
     ({"username": "admin", "password": "pw"}, {"grant_type": ["password"], "client_id": ["cid"], "client_secret": ["csecret"],
                                                 "scope": ["api"], "username": ["admin"], "password": ["pw"]})],
)
def test_token_request_per_grant(provider, expected):
    auth = Docebo(config(**provider)).authenticator
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", json=load("oauth2_token.json"))
        assert auth.get_auth_header() == {"Authorization": "Bearer a1b2c3d4e5f60718293a4b5c6d7e8f9000112233"}
        assert parse_qs(mock.last_request.text) == expected
        auth.get_auth_header()
        assert mock.call_count == 1  # reused until it expires


@pytest.mark.parametrize(
    "provider, status, body, expected",
    [({}, 400, "oauth2_token__invalid_client.json", "provider.client_secret"),
     ({"username": "a", "password": "b"}, 401, "oauth2_token__invalid_grant.json", "provider.password")],
)
def test_a_rejected_token_request_names_the_fields_to_fix(provider, status, body, expected):
    auth = Docebo(config(**provider)).authenticator
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", status_code=status, json=load(body))
        with pytest.raises(AirbyteTracedException) as raised:
            auth.get_auth_header()
    error = raised.value
    assert error.failure_type == FailureType.config_error
    assert expected in error.message and f"HTTP {status}" in error.message and load(body)["error"] in error.message
    assert "csecret" not in error.message and "Traceback" not in error.message


def test_a_non_docebo_host_is_named_as_the_likely_mistake():
    auth = Docebo(config()).authenticator
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", status_code=404, text="<html>Not found</html>")
        with pytest.raises(AirbyteTracedException) as raised:
            auth.get_auth_header()
    assert "provider.base_url" in raised.value.message


def test_an_expired_token_is_renewed_before_the_next_request():
    auth = Docebo(config()).authenticator
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", [{"json": {"access_token": "first", "expires_in": 0}},
                                           {"json": {"access_token": "second", "expires_in": 3600}}])
        assert auth.get_auth_header()["Authorization"] == "Bearer first"
        assert auth.get_auth_header()["Authorization"] == "Bearer second"  # the first one had expired
        assert auth.get_auth_header()["Authorization"] == "Bearer second"
        assert mock.call_count == 2


def test_the_token_endpoint_is_retried_like_any_request_then_succeeds(monkeypatch):
    waits = []
    monkeypatch.setattr("source_lms_enrollments.oauth.time.sleep", waits.append)
    auth = Docebo(config()).authenticator
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", [*[{"status_code": 503, "json": {"message": "busy"}}] * MAX_RETRIES, {"json": load("oauth2_token.json")}])
        assert auth.get_auth_header()["Authorization"].startswith("Bearer ")
        assert mock.call_count == MAX_RETRIES + 1
    assert len(waits) == MAX_RETRIES


def test_check_asks_for_the_token_as_few_times_as_the_check_stream(monkeypatch):
    monkeypatch.setattr("source_lms_enrollments.oauth.time.sleep", lambda _: None)
    provider = Docebo(config())
    provider.check_stream()
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", status_code=503, json={"message": "busy"})
        with pytest.raises(AirbyteTracedException) as raised:
            provider.authenticator.get_auth_header()
        assert mock.call_count == 2
    assert raised.value.failure_type == FailureType.transient_error and "Docebo POST /oauth2/token answered HTTP 503: busy" in raised.value.message


# ---- paging, through the streams --------------------------------------------------------------------------------------
def test_users_follow_has_more_data_with_a_stable_sort():
    first = load("manage_v1_user__page1.json")
    second = {"data": {"items": [{"user_id": "12304", "username": "z1", "status": "1"}, {"user_id": "12305", "username": "z2", "status": "1"}],
                       "has_more_data": False, "current_page": 2, "total_page_count": 2}}
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", json=load("oauth2_token.json"))
        mock.get(f"{BASE}/manage/v1/user", [{"json": first}, {"json": second}])
        records = records_by_stream(run_read(config(), mode=SyncMode.full_refresh, streams=["users"]))["users"]
        queries = [parse_qs(r.query) for r in mock.request_history if r.method == "GET"]
    assert [r["id"] for r in records] == ["12301", "12302", "12303", "12304", "12305"]
    assert [q["page"] for q in queries] == [["1"], ["2"]]
    assert all(q["page_size"] == ["200"] and q["sort_attr"] == ["username"] and q["sort_dir"] == ["asc"] for q in queries)
    assert all("updated_from" not in q for q in queries)  # no documented filter on users


def test_enrollments_send_updated_from_and_pass_the_cursor_back():
    first = load("learn_v1_enrollments__page1.json")
    second = {"data": {"items": [], "has_more_data": False, "current_page": 2, "cursor": "a1b2c3"}}
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", json=load("oauth2_token.json"))
        mock.get(f"{BASE}/learn/v1/enrollments", [{"json": first}, {"json": second}])
        mock.get(f"{BASE}/manage/v1/user", json=load("manage_v1_user__page1.json") | {"data": {**load("manage_v1_user__page1.json")["data"], "has_more_data": False}})
        output = run_read(config(), streams=["course_enrollments"], state={"course_enrollments": {"updated_at": "2024-01-06T10:00:00Z", "swept_at": now_iso()}})
        queries = [parse_qs(r.query) for r in mock.request_history if r.path == "/learn/v1/enrollments"]
    records = records_by_stream(output)["course_enrollments"]
    assert [r["id"] for r in records] == ["12301:42", "12302:42", "12302:43"]
    assert records[0]["user"]["name"] == "John Smith"  # joined from /manage/v1/user
    assert queries[0]["updated_from"] == ["2024-01-06 10:00:00"] and queries[0]["get_cursor"] == ["1"]
    assert "cursor" not in queries[0] and queries[1]["cursor"] == ["a1b2c3"] and queries[1]["page"] == ["2"]


def test_a_page_without_the_envelope_is_a_system_error_naming_the_endpoint():
    with rm.Mocker() as mock:
        mock.post(f"{BASE}/oauth2/token", json=load("oauth2_token.json"))
        mock.get(f"{BASE}/learn/v1/courses", json={"items": []})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.system_error and "/learn/v1/courses" in error.message
