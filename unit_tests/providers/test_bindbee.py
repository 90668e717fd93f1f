"""Bindbee mappers and status rules on documented-shape payloads (seed 000, Bindbee's OpenAPI), and the streams
over requests-mock: both auth headers, cursor paging, the raw-data switch, expand, errors."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.bindbee import (
    ENROLLMENT_EXPAND,
    bindbee_error_message,
    enrollment_status,
    to_course,
    to_course_enrollment,
    to_user,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "bindbee"
BASE = "https://api.bindbee.dev/api/lms/v1"
API_KEY = "bb_" + "k" * 30
CONNECTOR = "ct_" + "c" * 30


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**extra):
    return {"provider": {"provider_type": "bindbee", "api_token": API_KEY, "connector_token": CONNECTOR}, **extra}


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_joins_the_three_names_and_uses_modified_at():
    assert to_user(load("users__page1.json")["items"][0]) == {
        "id": "018b18ef-c487-703c-afd9-0ca478ccd9d6", "name": "Ірина Петрівна Шевченко", "first_name": "Ірина",
        "last_name": "Шевченко", "username": None, "emails": [{"email": "iryna@example.com", "type": None, "is_primary": True}],
        "status": "active", "role": None, "locale": None, "timezone": None, "job_title": None, "last_login_at": None,
        "created_at": None, "updated_at": "2024-06-01T02:00:00Z", "custom_fields": {"department": "R&D"}, "remote_data": None,
    }


def test_a_user_without_email_or_custom_fields_and_pending_is_invited():
    user = to_user(load("users__page1.json")["items"][1])
    assert user["name"] == "Sam" and user["emails"] == [] and user["custom_fields"] == {} and user["status"] == "invited"


@pytest.mark.parametrize("status, expected", [("ACTIVE", "active"), ("INACTIVE", "inactive"), ("PENDING", "invited"),
                                              ("DELETED", "deleted"), ("on_leave", "unknown"), (None, "unknown")])
def test_user_status_table(status, expected):
    assert to_user({"id": "u", "status": status})["status"] == expected


def test_remote_data_is_the_bindbee_record_with_remote_id_and_raw_data():
    raw = load("users__page1.json")["items"][0]
    remote = to_user(raw, keep_raw=True)["remote_data"]
    assert remote["remote_id"] == "5012" and remote["raw_data"] == {"id": 5012, "login": "iryna"}


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_maps_duration_urls_language_and_category_ids():
    assert to_course(load("courses__page1.json")["items"][0]) == {
        "id": "018b18ef-c99c-7a86-9946-7b7c9d5433e5", "title": "Atención al cliente", "description": None, "code": None,
        "type": "course", "status": "published", "language": "es_ES", "duration_seconds": 5400,
        "urls": [{"url": "https://lms.example.com/course/7", "type": "launch"}, {"url": "https://lms.example.com/img/7.png", "type": "image"}],
        "categories": [{"id": "018b18ef-0005-7000-8000-000000000001", "name": None}], "tags": [],
        "created_at": None, "updated_at": "2024-06-01T02:00:00Z", "custom_fields": {}, "remote_data": None,
    }


def test_a_course_with_expanded_categories_a_passed_through_status_and_no_duration():
    course = to_course(load("courses__page1.json")["items"][1])
    assert course["categories"] == [{"id": "018b18ef-0005-7000-8000-000000000002", "name": "Sales"}]
    assert course["status"] == "unknown" and course["duration_seconds"] is None and course["urls"] == [] and course["language"] is None


@pytest.mark.parametrize("status, expected", [("ACTIVE", "published"), ("PENDING", "draft"), ("INACTIVE", "disabled"), ("X", "unknown")])
def test_course_status_table(status, expected):
    assert to_course({"id": "c", "status": status})["status"] == expected


# ---- enrollments ---------------------------------------------------------------------------------------------------
def test_an_expanded_enrollment_with_a_passing_completion():
    record = to_course_enrollment(load("enrollments__page1.json")["items"][0])
    assert record["id"] == "018b18ef-c487-703c-afd9-0ca478ccd9d6"
    assert record["user"] == {"id": "018b18ef-c487-703c-afd9-0ca478ccd9d6", "name": "Ірина Петрівна Шевченко",
                              "emails": [{"email": "iryna@example.com", "type": None, "is_primary": True}]}
    assert record["course"] == {"id": "018b18ef-c99c-7a86-9946-7b7c9d5433e5", "title": "Atención al cliente"}
    assert record["status"] == "passed" and record["score"] == 95 and record["time_spent_seconds"] == 4500
    assert record["started_at"] == "2025-08-01T10:00:00Z" and record["completed_at"] == "2025-08-01T11:15:00Z"
    # The completion was written after the enrollment (2021): its write is the record's change.
    assert record["updated_at"] == "2025-08-02T09:00:00Z"
    assert record["custom_fields"] == {"category_group": "REG"}
    for absent in ("enrolled_at", "assigned_at", "due_at", "progress_percent", "created_at", "last_activity_at"):
        assert record[absent] is None, absent


def test_an_assigned_enrollment_without_start_or_completion_is_enrolled():
    record = to_course_enrollment(load("enrollments__page1.json")["items"][1])
    assert record["status"] == "enrolled" and record["user"]["name"] == "Sam" and record["user"]["emails"] == []
    assert record["updated_at"] == "2025-07-01T00:00:00Z" and record["completed_at"] is None and record["custom_fields"] == {}


def test_relations_left_as_bare_ids_keep_the_joins():
    record = to_course_enrollment(load("enrollments__page1.json")["items"][2])
    assert record["user"] == {"id": "018b18ef-c487-703c-afd9-0ca478ccd9d6", "name": None, "emails": []}
    assert record["course"] == {"id": "018b18ef-c99c-7a86-9946-7b7c9d5433e6", "title": None}
    assert record["status"] == "in_progress"


@pytest.mark.parametrize(
    "completion, start, expected",
    [({"grade": "PASS"}, None, "passed"), ({"grade": "fail"}, "2025-01-01T00:00:00Z", "failed"), ({"grade": "B"}, None, "completed"),
     ({"grade": "-"}, None, "completed"), ({"grade": None}, None, "completed"), ("018b-completion-id", None, "completed"),
     (None, "2025-01-01T00:00:00Z", "in_progress"), (None, None, "enrolled")],
)
def test_status_rules_first_match_wins(completion, start, expected):
    assert enrollment_status(completion, start) == expected


def test_a_duration_that_is_not_iso_8601_is_refused():
    with pytest.raises(ValueError):
        to_course({"id": "c", "duration": "90 minutes"})


# ---- errors --------------------------------------------------------------------------------------------------------
def _response(status: int, body) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_error_messages_from_detail_strings_and_validation_lists():
    assert bindbee_error_message(_response(401, {"detail": "Invalid API key"})) == "Invalid API key"
    assert bindbee_error_message(_response(422, load("error__validation_422.json"))) == "query.page_size: Input should be less than or equal to 200"
    assert bindbee_error_message(_response(500, [])) is None


# ---- streams over requests-mock ------------------------------------------------------------------------------------
def _query(request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def test_users_send_both_headers_follow_the_cursor_and_keep_raw_data_off_by_default():
    last = {"cursor": None, "page_size": 1, "items": [{"id": "u3", "modified_at": "2024-01-01T00:00:00Z", "custom_fields": None}]}
    with rm.Mocker() as m:
        m.get(f"{BASE}/users", [{"json": load("users__page1.json")}, {"json": last}])
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"])
    assert len(records_by_stream(output)["users"]) == 3
    first, second = m.request_history
    assert first.headers["Authorization"] == f"Bearer {API_KEY}" and first.headers["X-Connector-Token"] == CONNECTOR
    assert _query(first) == {"page_size": ["100"], "include_raw_data": ["false"], "include_custom_fields": ["true"]}
    assert _query(second)["cursor"] == ["MDE4YjE4ZWYtYzk5Yy03YTg2LTk5NDYtN2I3YzlkNTQzM2U1"]
    assert _query(second)["include_custom_fields"] == ["true"]  # every other parameter identical along the walk


def test_include_remote_data_asks_for_raw_data():
    with rm.Mocker() as m:
        m.get(f"{BASE}/courses", json=load("courses__page1.json"))
        output = run_read(config(include_remote_data=True), mode=SyncMode.full_refresh, streams=["courses"])
    assert _query(m.request_history[0])["include_raw_data"] == ["true"]
    assert records_by_stream(output)["courses"][0]["remote_data"]["remote_id"] == "crs-7"


def test_enrollments_expand_user_course_and_completion_in_one_list():
    with rm.Mocker() as m:
        m.get(f"{BASE}/enrollments", json=load("enrollments__page1.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert len(m.request_history) == 1
    assert _query(m.request_history[0])["expand"] == [ENROLLMENT_EXPAND]
    assert " " not in ENROLLMENT_EXPAND  # Bindbee: comma separated, no spaces
    assert len(records_by_stream(output)["course_enrollments"]) == 3


def test_a_wrong_key_is_a_config_error_naming_both_fields_without_leaking_them():
    with rm.Mocker() as m:
        m.get(rm.ANY, status_code=401, json={"detail": "Invalid API key"}, headers={"WWW-Authenticate": "Bearer"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "Invalid API key" in error.message
    assert "provider.api_token" in error.message and "provider.connector_token" in error.message
    assert API_KEY not in error.message and CONNECTOR not in error.message


def test_an_unreadable_duration_ends_the_sync_naming_the_endpoint_and_record():
    body = {"cursor": None, "page_size": 1, "items": [{"id": "c1", "modified_at": "2024-01-01T00:00:00Z", "duration": "90 minutes"}]}
    with rm.Mocker() as m:
        m.get(f"{BASE}/courses", json=body)
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/api/lms/v1/courses" in error.message and "'c1'" in error.message
