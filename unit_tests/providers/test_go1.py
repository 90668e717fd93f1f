"""Go1 mappers, status rules, token request, version header and paging on documented-shape payloads (requests-mock)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm
from airbyte_cdk.models import FailureType, SyncMode

from integration_tests.harness import final_states, records_by_stream, run_read
from source_lms_enrollments.providers.go1 import (
    API_VERSION,
    USER_ACCOUNTS_API_VERSION,
    enrollment_status,
    is_enrollable,
    to_course,
    to_course_enrollment,
    to_user,
    user_role,
)
from source_lms_enrollments.unified import now_iso

RESOURCES = Path(__file__).parent.parent / "resources" / "go1"
BASE = "https://gateway.go1.com"
TOKEN_URL = "https://auth.go1.com/oauth/token"
NOW = "2026-01-01T00:00:00Z"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**provider):
    return {"provider": {"provider_type": "go1", "client_id": "cid", "client_secret": "csecret", **provider}}


def qs(request) -> dict[str, list[str]]:
    """The query as sent (requests-mock's `.query` is lower-cased)."""
    return parse_qs(urlsplit(request.url).query)


def hit(number: int, updated: str, **extra):
    return {"id": str(number), "user_account_id": "432", "lo_id": "567", "created_time": "2022-01-01T00:00:00+00:00",
            "updated_time": updated, "status": "in-progress", **extra}


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_maps_an_account_and_its_person():
    raw = load("user_accounts__page1.json")["hits"][0]
    assert to_user(raw) == {
        "id": "432", "name": "Zoë O'Brien", "first_name": "Zoë", "last_name": "O'Brien", "username": "zoe.obrien",
        "emails": [{"email": "zoe@example.com", "type": "work", "is_primary": True}],
        "status": "active", "role": "manager", "locale": "en-AU", "timezone": None, "job_title": None,
        "last_login_at": "2022-04-01T08:00:00Z", "created_at": "2022-01-10T00:00:00Z",
        "updated_at": "2022-03-01T00:00:00Z",  # the person's rename is later than the account's own change
        "custom_fields": {"account_guid": "acc_01HBYXG21DRXDQ6XBNMDJ8WTMH", "user_guid": "usr_01HBYXG21DRXDQ6XBNMDJ8WTMH", "portal_id": "2001"},
        "remote_data": None,
    }


def test_an_inactive_account_without_roles_or_email():
    raw = load("user_accounts__page1.json")["hits"][1]
    user = to_user(raw, keep_raw=True)
    assert user["status"] == "inactive" and user["role"] == "learner" and user["emails"] == []
    assert user["name"] == "John" and user["updated_at"] == "2022-05-01T00:00:00Z" and user["remote_data"]["id"] == "433"


@pytest.mark.parametrize("roles, expected", [
    ([{"role": "Student"}], "learner"), ([{"role": "Student"}, {"role": "Administrator"}], "admin"),
    ([{"role": "Tutor"}], "instructor"), ([{"role": "Something new"}], "other"), ([], "learner"), (None, "learner"),
])
def test_the_most_privileged_role_wins(roles, expected):
    assert user_role(roles) == expected


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_maps_the_documented_learning_object():
    raw = load("learning_objects__page1.json")["hits"][0]
    assert to_course(raw, "published") == {
        "id": "567", "title": "Introduction to Programming",
        "description": "Learn the basics of programming with this comprehensive course.", "code": None,
        "type": "course", "status": "published", "language": None, "duration_seconds": None,
        "urls": [{"url": "https://res.cloudinary.com/go1/image/upload/intro.png", "type": "image"}],
        "categories": [{"id": "64", "name": "Technology Skills"}, {"id": "17", "name": "IT Software"}],
        "tags": [{"id": "Agile", "name": "Agile"}, {"id": "Business Skills", "name": "Business Skills"}],
        "created_at": "2023-05-19T05:13:30Z", "updated_at": "2023-05-19T05:13:30Z",
        "custom_fields": {"go1_type": "course", "lifecycle_state": "published", "content_id": "con_01HBYXF3HYPTG5Q1RJ7BPFAF23",
                          "external_id": "course123", "provider_id": "9876"},
        "remote_data": None,
    }


def test_a_retired_standalone_video_is_an_archived_other_and_a_module_is_not_enrollable():
    hits = load("learning_objects__page1.json")["hits"]
    assert [is_enrollable(h) for h in hits] == [True, False, True]
    video = to_course(hits[2], "retired")
    assert video["type"] == "other" and video["status"] == "archived" and video["custom_fields"]["go1_type"] == "video"


def test_the_listing_state_stands_in_when_lifecycle_is_not_included():
    raw = {"lo_id": "1", "core": {"type": "playlist", "title": "Path"}, "updated_time": "2024-01-01T00:00:00Z"}
    course = to_course(raw, "removed")
    assert course["type"] == "path" and course["status"] == "archived" and course["custom_fields"]["lifecycle_state"] == "removed"


# ---- enrollments ---------------------------------------------------------------------------------------------------
def test_to_course_enrollment_maps_the_documented_hit():
    raw = load("enrollments__page1.json")["hits"][0]
    assert to_course_enrollment(raw, NOW) == {
        "id": "123", "user": {"id": "432", "name": None, "emails": []}, "course": {"id": "567", "title": None},
        "status": "passed", "assigned_at": "2023-04-18T01:08:23Z", "due_at": "2022-03-31T03:29:38Z",
        "enrolled_at": "2022-03-19T01:29:36Z", "started_at": "2022-03-29T01:29:36Z", "last_activity_at": None,
        "completed_at": "2022-03-29T03:29:36Z", "progress_percent": 100, "time_spent_seconds": None, "score": 100,
        "is_mandatory": None, "assigned_by": {"id": "123", "name": None}, "attempt_number": None, "attempts_count": None,
        "urls": [], "created_at": "2022-03-19T01:29:36Z", "updated_at": "2022-03-29T01:29:36Z",
        "custom_fields": {"enrollment_type": "assigned", "pass": True}, "remote_data": None,
    }


def test_in_progress_and_not_started_rows():
    _, in_progress, not_started = load("enrollments__page1.json")["hits"]
    first = to_course_enrollment(in_progress, NOW)
    assert first["status"] == "in_progress" and first["progress_percent"] is None and first["assigned_by"] is None
    second = to_course_enrollment(not_started, NOW)
    assert second["status"] == "assigned" and second["progress_percent"] == 0 and second["started_at"] is None


@pytest.mark.parametrize("row, expected", [
    ({"status": "not-started", "enrollment_type": "self-directed"}, "enrolled"),
    ({"status": "not-started", "enrollment_type": "assigned"}, "assigned"),
    ({"status": "assigned"}, "assigned"),
    ({"status": "in-progress"}, "in_progress"),
    ({"status": "completed", "pass": False}, "completed"),
    ({"status": "completed"}, "completed"),
    ({"status": "completed", "pass": True}, "passed"),
    ({"status": "in-progress", "due_date": "2025-01-01T00:00:00+00:00"}, "overdue"),
    ({"status": "completed", "due_date": "2025-01-01T00:00:00+00:00"}, "completed"),
    ({"status": "archived"}, "unknown"),
])
def test_status_table(row, expected):
    assert enrollment_status(row, NOW) == expected


# ---- auth and headers ----------------------------------------------------------------------------------------------
def test_token_request_and_version_headers():
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/user-accounts", json=load("user_accounts__page1.json"))
        mock.get(f"{BASE}/enrollments", json=load("enrollments__page1.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users", "course_enrollments"])
        token_requests = [r for r in mock.request_history if r.method == "POST"]
        gets = [r for r in mock.request_history if r.method == "GET"]
    assert not output.errors
    assert len(token_requests) == 1
    assert parse_qs(token_requests[0].text) == {"grant_type": ["client_credentials"], "client_id": ["cid"], "client_secret": ["csecret"]}
    versions = {r.path: r.headers["Api-Version"] for r in gets}
    assert versions == {"/user-accounts": USER_ACCOUNTS_API_VERSION, "/enrollments": API_VERSION}
    assert all(r.headers["Authorization"] == "Bearer eyJhbGciOiJSUzI1NiJ9.go1.sample" for r in gets)


def test_a_rejected_secret_is_a_config_error_naming_the_fields():
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, status_code=401, json={"error": "invalid_client", "error_description": "Client authentication failed."})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.config_error
    assert "provider.client_id" in error.message and "provider.client_secret" in error.message and "invalid_client" in error.message
    assert "csecret" not in error.message


@pytest.mark.parametrize("status", [401, 403])
def test_an_api_401_or_403_is_a_config_error_with_go1s_message(status):
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/enrollments", status_code=status, json=load("error__unauthenticated.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"], expecting_exception=True)
        token_requests = [r for r in mock.request_history if r.method == "POST"]
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.config_error
    # A 401 renews the token once first (the CDK's own words then lead; ours are in the internal message).
    assert len(token_requests) == (2 if status == 401 else 1)
    said = error.internal_message if status == 401 else error.message
    assert "HTTP %d: unauthenticated: User is unauthenticated. Check" % status in said and "provider.client_secret" in said


def test_token_url_must_be_https_off_loopback():
    output = run_read(config(token_url="http://auth.example.com/oauth/token"), expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.config_error and "provider.token_url" in error.message


# ---- paging and filters ----------------------------------------------------------------------------------------------
def test_enrollments_send_update_time_gte_sorted_ascending_and_page_by_50():
    page1 = {"total": 60, "hits": [hit(n, f"2024-02-01T00:00:{n % 60:02d}+00:00") for n in range(50)]}
    page2 = {"total": 60, "hits": [hit(n, "2024-02-02T00:00:00+00:00") for n in range(50, 60)]}
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/enrollments", [{"json": page1}, {"json": page2}])
        output = run_read(config(), streams=["course_enrollments"],
                          state={"course_enrollments": {"updated_at": "2024-01-31T00:00:00Z", "swept_at": now_iso()}})
        queries = [qs(r) for r in mock.request_history if r.method == "GET"]
    assert len(records_by_stream(output)["course_enrollments"]) == 60
    assert [q["offset"] for q in queries] == [["0"], ["50"]]
    assert all(q["limit"] == ["50"] and q["sort"] == ["updated_time"] and q["order"] == ["asc"] for q in queries)
    assert all(q["update_time_gte"] == ["2024-01-31T00:00:00Z"] for q in queries)


def test_a_sweep_lists_every_enrollment_without_the_filter():
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/enrollments", json=load("enrollments__page1.json"))
        run_read({**config(), "deletion_sweep_days": 0}, streams=["course_enrollments"],
                 state={"course_enrollments": {"updated_at": "2022-04-01T00:00:00Z"}})
        queries = [qs(r) for r in mock.request_history if r.method == "GET"]
    assert "update_time_gte" not in queries[0]


def test_past_the_offset_ceiling_a_new_window_starts_at_the_last_time_without_repeating_rows(monkeypatch):
    from source_lms_enrollments.providers import go1

    monkeypatch.setattr(go1.Go1CourseEnrollments, "offset_results_limit", 100)
    # 150 rows; rows 95-104 share one time, across the ceiling at 100.
    stamps = [f"2024-03-01T00:{n // 60:02d}:{n % 60:02d}+00:00" if not 95 <= n <= 104 else "2024-03-01T01:35:00+00:00" for n in range(150)]
    stamps = [s if n < 105 else f"2024-03-01T02:{(n - 105) // 60:02d}:{(n - 105) % 60:02d}+00:00" for n, s in enumerate(stamps)]
    rows = [hit(1000 + n, stamps[n]) for n in range(150)]

    def answer(request, context):
        query = qs(request)
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        assert offset + limit <= 100, "the ceiling was passed"
        since = query.get("update_time_gte", [None])[0]
        listed = [r for r in rows if since is None or r["updated_time"] >= since.replace("Z", "+00:00")]
        return {"total": len(listed), "hits": listed[offset:offset + limit]}

    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/enrollments", json=answer)
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
        queries = [qs(r) for r in mock.request_history if r.method == "GET"]
    ids = [r["id"] for r in records_by_stream(output)["course_enrollments"]]
    assert ids == [str(1000 + n) for n in range(150)]  # every row once, in order
    assert queries[2]["update_time_gte"] == ["2024-03-01T01:35:00Z"] and queries[2]["offset"] == ["0"]


def test_a_window_of_one_timestamp_is_an_error_not_a_loop(monkeypatch):
    from source_lms_enrollments.providers import go1

    monkeypatch.setattr(go1.Go1CourseEnrollments, "offset_results_limit", 100)
    rows = [hit(n, "2024-03-01T00:00:00+00:00") for n in range(120)]
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/enrollments", json=lambda request, _: {"total": 120, "hits": rows[int(qs(request)["offset"][0]):][:50]})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.system_error and "/enrollments" in error.message and "share updated_time" in error.message


def test_learning_objects_scroll_per_state_with_updated_time_min():
    first = load("learning_objects__page1.json")
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/learning-objects", [
            {"json": {"total": 4, "hits": first["hits"], "next_scroll_id": "s1"}},
            {"json": {"total": 4, "hits": [{"lo_id": "571", "core": {"type": "course", "title": "Last"}, "updated_time": "2024-01-01T00:00:00Z"}], "next_scroll_id": "s2"}},
            {"json": {"total": 0, "hits": [], "next_scroll_id": "s3"}},
            {"json": {"total": 0, "hits": []}},
        ])
        output = run_read(config(), streams=["courses"], state={"courses": {"updated_at": "2022-12-31T00:00:00Z", "swept_at": now_iso()}})
        queries = [qs(r) for r in mock.request_history if r.method == "GET"]
    assert [r["id"] for r in records_by_stream(output)["courses"]] == ["567", "568", "571"]  # the module is not a course
    assert [q.get("state[]") for q in queries] == [["draft", "published"], ["draft", "published"], ["retired"], ["removed"]]
    assert "scroll_id" not in queries[0] and queries[1]["scroll_id"] == ["s1"]  # total reached after two pages: no third
    assert all(q["use_scroll"] == ["true"] and q["limit"] == ["5000"] and q["collection"] == ["subscribe"] for q in queries)
    assert all(q["updated_time[min]"] == ["2022-12-31T00:00:00Z"] for q in queries)


def test_a_removed_learning_object_says_when_it_was_removed():
    raw = {"lo_id": "900", "core": {"type": "course", "title": "Gone"}, "updated_time": "2024-01-01T00:00:00Z",
           "lifecycle": {"state": "removed", "pending_state": {"removed_time": "2024-06-01T10:00:00.000Z"}}}
    course = to_course(raw, "removed")
    assert course["status"] == "archived" and course["remote_deleted_at"] == "2024-06-01T10:00:00Z"
    assert course["updated_at"] == "2024-06-01T10:00:00Z"  # after the last live version
    assert "remote_deleted_at" not in to_course({**raw, "lifecycle": {"state": "retired"}}, "retired")  # live: the base sets null


def test_a_learning_object_seen_live_then_listed_removed_is_emitted_as_deleted():
    live = {"lo_id": "900", "core": {"type": "course", "title": "Soon gone"}, "updated_time": "2024-01-01T00:00:00Z",
            "lifecycle": {"state": "published"}}
    removed = {**live, "updated_time": "2024-02-01T00:00:00Z", "lifecycle": {"state": "removed"}}
    empty = {"json": {"total": 0, "hits": []}}
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/learning-objects", [{"json": {"total": 1, "hits": [live]}}, empty, empty,
                                               empty, empty, {"json": {"total": 1, "hits": [removed]}}])
        first = run_read(config(), streams=["courses"])
        second = run_read(config(), streams=["courses"], state=final_states(first))
    (before,) = records_by_stream(first)["courses"]
    (after,) = records_by_stream(second)["courses"]
    assert before["status"] == "published" and before.get("remote_deleted_at") is None
    assert after["status"] == "archived" and after["remote_deleted_at"] >= "2026-01-01T00:00:00Z"  # first seen removed now


def test_a_body_without_hits_is_a_system_error_naming_the_endpoint():
    with rm.Mocker() as mock:
        mock.post(TOKEN_URL, json=load("token.json"))
        mock.get(f"{BASE}/user-accounts", json={"data": []})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.system_error and "/user-accounts" in error.message
