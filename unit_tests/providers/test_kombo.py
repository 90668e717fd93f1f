"""Kombo mappers and status rules on documented-shape payloads (the example answers of Kombo's OpenAPI,
`unit_tests/resources/kombo/`), and the streams over requests-mock: both auth headers, the `data` envelope and
its cursor, the incremental parameters, deletions, error codes."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import final_states, records_by_stream, run_read
from source_lms_enrollments.deletions import decode_ids, encode_ids
from source_lms_enrollments.providers.kombo import (
    current_revision,
    kombo_error_message,
    to_course,
    to_course_enrollment,
    to_user,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "kombo"
BASE = "https://api.kombo.dev/v1/lms"
API_KEY = "kombo_" + "k" * 30
INTEGRATION = "successfactors:8d1hpPsbjxUkoCoa1veLZGe5"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**extra):
    return {"provider": {"provider_type": "kombo", "api_key": API_KEY, "integration_id": INTEGRATION}, **extra}


def page(results, next_cursor=None):
    return {"status": "success", "data": {"next": next_cursor, "results": results}}


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_on_the_documented_example():
    assert to_user(load("users__page1.json")["data"]["results"][0], tool="successfactors") == {
        "id": "26vafvWSRmbhNcxJYqjCzuJg", "name": "Sarah Johnson", "first_name": "Sarah", "last_name": "Johnson",
        "username": None, "emails": [{"email": "sarah.johnson@example.com", "type": "work", "is_primary": True}],
        "status": "active", "role": None, "locale": None, "timezone": None, "job_title": None, "last_login_at": None,
        "created_at": "2022-08-07T14:01:29Z", "updated_at": "2022-08-07T14:01:29Z",
        "custom_fields": {"kombo_tool": "successfactors"}, "remote_data": None, "remote_deleted_at": None,
    }


@pytest.mark.parametrize("status, expected", [("ACTIVE", "active"), ("INACTIVE", "inactive"), (None, "unknown"), ("SUSPENDED", "unknown")])
def test_user_status_table(status, expected):
    assert to_user({"id": "u", "status": status})["status"] == expected


def test_custom_fields_are_kept_and_remote_data_is_the_kombo_record():
    raw = {**load("users__page1.json")["data"]["results"][0], "custom_fields": {"cost_center": "4711"},
           "remote_data": {"/User": {"userId": "32"}}}
    user = to_user(raw, keep_raw=True)
    assert user["custom_fields"] == {"cost_center": "4711"}  # no tool named when the integration id does not say it
    assert user["remote_data"]["remote_id"] == "32" and user["remote_data"]["remote_data"] == {"/User": {"userId": "32"}}


def test_a_deleted_user_carries_its_deletion_time():
    raw = {**load("users__page1.json")["data"]["results"][0], "remote_deleted_at": "2024-05-02T10:11:12.345Z"}
    assert to_user(raw)["remote_deleted_at"] == "2024-05-02T10:11:12Z"


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_on_the_documented_example_reads_its_revision():
    assert to_course(load("courses__page1.json")["data"]["results"][0], tool="successfactors") == {
        "id": "26vafvWSRmbhNcxJYqjCzuJg", "title": "Building LMS integrations with Kombo",
        "description": "Learn how to build and integrate Learning Management System (LMS) integrations with Kombo. This course covers the unified LMS API, course management, user enrollment, progress tracking, and best practices for building robust LMS connectors.",
        "code": None, "type": "course", "status": "published", "language": None, "duration_seconds": None,
        "urls": [{"url": "https://learning.acme.com/courses/building-integrations/v1", "type": "launch"}],
        "categories": [], "tags": [], "created_at": "2022-08-07T14:01:29Z", "updated_at": "2022-08-07T14:01:29Z",
        "custom_fields": {"kombo_tool": "successfactors"}, "remote_data": None, "remote_deleted_at": None,
    }


def test_the_current_revision_is_live_then_active_then_newest():
    old = {"id": "r1", "status": "ACTIVE", "remote_created_at": "2023-01-01T00:00:00Z", "remote_deleted_at": None}
    new = {"id": "r2", "status": "ACTIVE", "remote_created_at": "2024-01-01T00:00:00Z", "remote_deleted_at": None}
    draft = {"id": "r3", "status": "INACTIVE", "remote_created_at": "2025-01-01T00:00:00Z", "remote_deleted_at": None}
    gone = {"id": "r4", "status": "ACTIVE", "remote_created_at": "2026-01-01T00:00:00Z", "remote_deleted_at": "2026-02-01T00:00:00Z"}
    assert current_revision([old, new, draft, gone])["id"] == "r2"
    assert current_revision([draft, gone])["id"] == "r3"
    assert current_revision([]) is None and current_revision(None) is None


def test_a_course_changed_through_its_revision_moves_updated_at_and_an_inactive_one_is_disabled():
    raw = load("courses__page1.json")["data"]["results"][0]
    revision = {**raw["revisions"][0], "status": "INACTIVE", "changed_at": "2024-09-09T09:09:09.999Z", "custom_fields": {"level": "B2"}}
    course = to_course({**raw, "revisions": [revision], "custom_fields": {"owner": "HR"}})
    assert course["updated_at"] == "2024-09-09T09:09:09Z"  # updated_after matches a revision's change: so must we
    assert course["status"] == "disabled" and course["custom_fields"] == {"level": "B2", "owner": "HR"}


def test_a_course_without_revisions_has_no_title_and_an_unknown_status():
    course = to_course({"id": "c", "changed_at": "2024-01-01T00:00:00Z", "revisions": []})
    assert course["title"] is None and course["status"] == "unknown" and course["urls"] == []


# ---- course progressions ---------------------------------------------------------------------------------------------
def test_to_course_enrollment_on_the_documented_example_joins_the_revisions_course():
    assert to_course_enrollment(load("course-progressions__page1.json")["data"]["results"][0], tool="successfactors") == {
        "id": "26vafvWSRmbhNcxJYqjCzuJg",
        # user_id is the documented link to GET /lms/users (the example's nested user.id differs: user_id wins)
        "user": {"id": "7xPdr68N8kG9EzLwjsN9xyz", "name": "Sarah Johnson",
                 "emails": [{"email": "sarah.johnson@example.com", "type": "work", "is_primary": True}]},
        "course": {"id": "26vafvWSRmbhNcxJYqjCzuJg", "title": "Building LMS integrations with Kombo"},
        "status": "completed", "assigned_at": None, "due_at": None, "enrolled_at": "2022-08-07T14:01:29Z",
        "started_at": None, "last_activity_at": None, "completed_at": "2022-08-07T14:01:29Z", "progress_percent": None,
        "time_spent_seconds": None, "score": None, "is_mandatory": None, "assigned_by": None, "attempt_number": None,
        "attempts_count": None, "urls": [], "created_at": None, "updated_at": "2022-08-07T14:01:29Z",
        "custom_fields": {"kombo_tool": "successfactors"}, "remote_data": None, "remote_deleted_at": None,
    }


@pytest.mark.parametrize("status, expected", [("ENROLLED", "enrolled"), ("IN_PROGRESS", "in_progress"), ("COMPLETED", "completed"),
                                              ("DROPPED", "withdrawn"), (None, "unknown"), ("PAUSED", "unknown")])
def test_progression_status_table(status, expected):
    assert to_course_enrollment({"id": "p", "status": status})["status"] == expected


def test_a_revision_whose_course_is_null_is_resolved_through_the_course_list():
    raw = load("course-progressions__page1.json")["data"]["results"][0]
    raw = {**raw, "course_revision": {**raw["course_revision"], "course": None}}
    asked = []
    record = to_course_enrollment(raw, lambda revision: asked.append(revision) or "course-of-" + revision)
    assert asked == ["3KMdr68N8kG9EzLwjsN9aoz"] and record["course"]["id"] == "course-of-3KMdr68N8kG9EzLwjsN9aoz"


# ---- errors ----------------------------------------------------------------------------------------------------------
def _response(status: int, body) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_error_messages_give_kombo_s_message_and_code_and_name_the_lms_behind_it():
    said = kombo_error_message(_response(400, load("error__model_not_available.json")))
    assert said.startswith('The "employees" model is not yet available for Greenhouse.') and said.endswith("(INTEGRATION.MODEL_NOT_AVAILABLE)")
    assert "log_url" not in said and "app.kombo.dev" not in said  # a link into the customer's dashboard stays out
    assert kombo_error_message(_response(500, load("error__minimal.json"))) == "The message is always in the response."
    remote = {"status": "error", "error": {"code": "REMOTE.INPUT_INVALID", "title": None, "message": "Invalid OData filter", "log_url": None}}
    assert kombo_error_message(_response(400, remote)) == "the LMS behind Kombo said: Invalid OData filter (REMOTE.INPUT_INVALID)"
    assert kombo_error_message(_response(502, ["not an envelope"])) is None


# ---- streams over requests-mock ------------------------------------------------------------------------------------
def _query(request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def test_users_send_both_headers_and_follow_next_inside_the_data_envelope():
    last = page([{**load("users__page1.json")["data"]["results"][0], "id": "u2"}])
    with rm.Mocker() as m:
        m.get(f"{BASE}/users", [{"json": load("users__page1.json")}, {"json": last}])
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"])
    assert [r["id"] for r in records_by_stream(output)["users"]] == ["26vafvWSRmbhNcxJYqjCzuJg", "u2"]
    first, second = m.request_history
    assert first.headers["Authorization"] == f"Bearer {API_KEY}" and first.headers["X-Integration-Id"] == INTEGRATION
    assert _query(first) == {"page_size": ["250"]}  # full refresh: no filter, deleted records hidden
    assert _query(second) == {"page_size": ["250"], "cursor": [load("users__page1.json")["data"]["next"]]}
    assert INTEGRATION not in first.url  # the integration goes in its header, never in a URL


def test_incremental_sends_updated_after_in_the_documented_format_and_asks_for_deleted_records():
    state = {"users": {"updated_at": "2024-03-01T10:00:00Z", "swept_at": "2999-01-01T00:00:00Z"}}
    with rm.Mocker() as m:
        m.get(f"{BASE}/users", json=page([]))
        run_read(config(), state=state, streams=["users"])
    assert _query(m.request_history[0]) == {"page_size": ["250"], "updated_after": ["2024-03-01T10:00:00.000Z"], "include_deleted": ["true"]}


def test_a_first_incremental_sync_lists_everything_with_deleted_records_and_emits_no_tombstone():
    deleted = {**load("users__page1.json")["data"]["results"][0], "id": "gone", "remote_deleted_at": "2024-01-02T00:00:00.000Z"}
    with rm.Mocker() as m:
        m.get(f"{BASE}/users", json=page([load("users__page1.json")["data"]["results"][0], deleted]))
        output = run_read(config(), streams=["users"])
    assert _query(m.request_history[0]) == {"page_size": ["250"], "include_deleted": ["true"]}
    assert [r["id"] for r in records_by_stream(output)["users"]] == ["26vafvWSRmbhNcxJYqjCzuJg"]  # never seen live: nothing to remove
    assert decode_ids(final_states(output)["users"]["listed_ids"]) == ["26vafvWSRmbhNcxJYqjCzuJg"]


def test_a_progression_kombo_marks_deleted_is_a_tombstone_naming_its_learner_and_course():
    live = load("course-progressions__page1.json")["data"]["results"][0]
    gone = {**live, "remote_deleted_at": "2024-06-01T08:00:00.000Z", "changed_at": "2024-06-01T08:00:00.000Z"}
    state = {"course_enrollments": {"updated_at": "2024-05-01T00:00:00Z", "swept_at": "2999-01-01T00:00:00Z",
                                    "listed_ids": encode_ids([live["id"], "other"])}}
    with rm.Mocker() as m:
        m.get(f"{BASE}/course-progressions", json=page([gone]))
        output = run_read(config(), state=state, streams=["course_enrollments"])
    [tombstone] = records_by_stream(output)["course_enrollments"]
    assert tombstone["_ab_cdc_deleted_at"] == tombstone["remote_deleted_at"] == tombstone["updated_at"] == "2024-06-01T08:00:00Z"
    assert tombstone["user"] == {"id": "7xPdr68N8kG9EzLwjsN9xyz", "name": None, "emails": None}
    assert tombstone["course"] == {"id": "26vafvWSRmbhNcxJYqjCzuJg", "title": None}
    assert all(tombstone.get(field) is None for field in ("status", "completed_at", "enrolled_at", "custom_fields"))
    states = final_states(output)["course_enrollments"]
    assert decode_ids(states["listed_ids"]) == ["other"] and states["updated_at"] == "2024-05-01T00:00:00Z"


def test_a_progression_whose_course_is_null_reads_the_course_list_once_for_the_join():
    raw = load("course-progressions__page1.json")["data"]["results"][0]
    orphans = [{**raw, "id": f"p{n}", "course_revision": {**raw["course_revision"], "course": None}} for n in range(3)]
    with rm.Mocker() as m:
        m.get(f"{BASE}/course-progressions", json=page(orphans))
        m.get(f"{BASE}/courses", json=load("courses__page1.json") | {"data": {"next": None, "results": load("courses__page1.json")["data"]["results"]}})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert {r["course"]["id"] for r in records_by_stream(output)["course_enrollments"]} == {"26vafvWSRmbhNcxJYqjCzuJg"}
    course_calls = [r for r in m.request_history if r.path.endswith("/courses")]
    assert len(course_calls) == 1 and _query(course_calls[0])["include_deleted"] == ["true"]


@pytest.mark.parametrize("status, body, field", [
    (401, {"status": "error", "error": {"code": "PLATFORM.AUTHENTICATION_INVALID", "title": None, "message": "Invalid API key.", "log_url": None}}, "provider.api_key"),
    (404, {"status": "error", "error": {"code": "PLATFORM.INTEGRATION_NOT_FOUND", "title": None, "message": "Integration not found.", "log_url": None}}, "provider.integration_id"),
])
def test_a_wrong_key_or_integration_is_a_config_error_naming_the_field_without_leaking_values(status, body, field):
    with rm.Mocker() as m:
        m.get(rm.ANY, status_code=status, json=body)
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and field in error.message and body["error"]["message"] in error.message
    assert API_KEY not in error.message and INTEGRATION not in error.message


def test_an_integration_error_is_a_config_error_whatever_the_status():
    with rm.Mocker() as m:
        m.get(rm.ANY, status_code=400, json=load("error__model_not_available.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "INTEGRATION.MODEL_NOT_AVAILABLE" in error.message and "Kombo" in error.message


def test_a_remote_outage_and_a_rate_limit_are_retried(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _seconds: None)
    outage = {"status": "error", "error": {"code": "REMOTE.SERVICE_UNAVAILABLE", "title": None, "message": "SuccessFactors is down", "log_url": None}}
    limited = {"status": "error", "error": {"code": "REMOTE.RATE_LIMIT_EXCEEDED", "title": None, "message": "LMS quota", "log_url": None}}
    with rm.Mocker() as m:
        m.get(f"{BASE}/users", [{"status_code": 424, "json": outage}, {"status_code": 400, "json": limited, "headers": {"Retry-After": "0"}},
                                {"json": load("users__page1.json") | {"data": {"next": None, "results": load("users__page1.json")["data"]["results"]}}}])
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"])
    assert not output.errors and len(m.request_history) == 3 and len(records_by_stream(output)["users"]) == 1


def test_an_answer_without_the_data_envelope_ends_the_sync_naming_the_endpoint():
    with rm.Mocker() as m:
        m.get(f"{BASE}/courses", json={"next": None, "results": []})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "Kombo GET /v1/lms/courses" in error.message
