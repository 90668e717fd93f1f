"""Canvas mappers, status rules, error bodies, throttle handling and paging, on documented-shape payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.canvas import (
    Canvas,
    CanvasAdmins,
    CanvasPacer,
    CanvasThrottleBackoff,
    CanvasUsers,
    canvas_error_message,
    enrollment_status,
    is_learner_enrollment,
    is_throttled,
    progress_percent,
    to_course,
    to_course_enrollment,
    to_user,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "canvas"
BASE = "https://school.instructure.com"
API = f"{BASE}/api/v1"
TOKEN = "7~" + "t" * 64
NOW = "2026-01-01T00:00:00Z"
THROTTLED = b"403 Forbidden (Rate Limit Exceeded)\n"  # Canvas until October 2025 (request_throttle.rb)
THROTTLED_429 = b"429 Too Many Requests (Rate Limit Exceeded)\n"  # since: same bucket, status 429
# Both ways Canvas throttles, for tests that must hold for each.
THROTTLES = pytest.mark.parametrize("status, body", [(403, THROTTLED), (429, THROTTLED_429)], ids=["403", "429"])


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**provider):
    return {"provider": {"provider_type": "canvas", "base_url": BASE, "access_token": TOKEN, **provider}}


def response(status: int, body: bytes = b"", headers=None, url: str = f"{API}/accounts/1/users?per_page=100") -> requests.Response:
    r = requests.Response()
    r.status_code, r.url, r._content = status, url, body
    r.headers.update(headers or {})
    r.request = requests.Request("GET", url).prepare()
    return r


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_maps_the_documented_list_item_with_includes():
    assert to_user(load("accounts__users__page1.json")[0], "admin") == {
        "id": "117", "name": "Zoë García", "first_name": "Zoë", "last_name": "García", "username": "zoe@example.edu",
        "emails": [{"email": "zoe@example.edu", "type": "work", "is_primary": True}], "status": None, "role": "admin",
        "locale": "de", "timezone": "Europe/Berlin", "job_title": None, "last_login_at": "2024-05-30T17:45:25Z",
        "created_at": "2024-01-05T10:11:12Z", "updated_at": None, "custom_fields": {"sis_user_id": "SIS00117"},
        "remote_data": None,
    }


def test_an_older_user_without_first_and_last_name_falls_back_to_the_sortable_name():
    user = to_user(load("accounts__users__page1.json")[1], keep_raw=True)
    assert (user["first_name"], user["last_name"]) == ("Sam", "O'Brien")
    assert user["emails"] == [] and user["last_login_at"] is None and user["locale"] is None and user["role"] is None
    assert user["created_at"] == "2019-03-01T14:00:00Z"  # an offset is converted to UTC
    assert user["remote_data"]["login_id"] == "sobrien"


# ---- courses -------------------------------------------------------------------------------------------------------
def test_to_course_maps_the_documented_list_item():
    assert to_course(load("accounts__courses__page1.json")[0], BASE) == {
        "id": "503", "title": "Café Hygiene Basics", "description": "<p>Wash your hands.</p>", "code": "C-503",
        "type": "course", "status": "published", "language": "de", "duration_seconds": None,
        "urls": [{"url": f"{BASE}/courses/503", "type": "web"}], "categories": [{"id": "1", "name": None}], "tags": [],
        "created_at": "2024-01-12T08:00:00Z", "updated_at": None,
        "custom_fields": {"sis_course_id": "SISC503", "enrollment_term_id": 1, "start_at": "2024-01-17T08:00:00Z"},
        "remote_data": None,
    }


@pytest.mark.parametrize("index, status", [(0, "published"), (1, "archived"), (2, "draft")])
def test_course_workflow_states(index, status):
    assert to_course(load("accounts__courses__page1.json")[index], BASE)["status"] == status


def test_an_unknown_workflow_state_is_unknown():
    assert to_course({"id": 1, "workflow_state": "deleted"}, BASE)["status"] == "unknown"


# ---- enrollments ---------------------------------------------------------------------------------------------------
def rows():
    return load("courses__enrollments__page1.json")


def progress_by_user():
    return {str(row["id"]): row["progress"] for row in load("courses__bulk_user_progress__page1.json")}


def test_only_student_enrollments_are_learner_enrollments_custom_student_roles_included():
    assert [is_learner_enrollment(r) for r in rows()] == [True, True, False, False, True]
    assert not is_learner_enrollment({**rows()[0], "enrollment_state": "deleted"})
    assert not is_learner_enrollment({**rows()[0], "enrollment_state": "rejected"})


def test_to_course_enrollment_maps_the_documented_row_with_progress_and_the_user_join():
    person = {"id": "117", "name": "Zoë García", "emails": [{"email": "zoe@example.edu", "type": "work", "is_primary": True}]}
    course = {"course_id": "503", "course_title": "Café Hygiene Basics", "course_end_at": None}
    record = to_course_enrollment(rows()[0], course, person, progress_by_user()["117"], NOW)
    assert record == {
        "id": "9012", "user": person, "course": {"id": "503", "title": "Café Hygiene Basics"}, "status": "in_progress",
        "assigned_at": None, "due_at": None, "enrolled_at": "2024-01-20T09:00:00Z", "started_at": None,
        "last_activity_at": "2024-03-05T10:00:00Z", "completed_at": None, "progress_percent": 66.67,
        "time_spent_seconds": 5400, "score": 86.5, "is_mandatory": None, "assigned_by": None, "attempt_number": None,
        "attempts_count": None, "urls": [{"url": "https://school.instructure.com/courses/503/users/117", "type": "web"}],
        "created_at": "2024-01-20T09:00:00Z",
        "updated_at": "2024-03-05T10:00:00Z",  # last activity is later than the row's own updated_at
        "custom_fields": {"enrollment_state": "active", "role": "StudentEnrollment", "section_id": "10503", "final_score": 69.2},
        "remote_data": None,
    }


def test_module_completion_drives_completed_and_updated_at_even_on_a_concluded_enrollment():
    record = to_course_enrollment(rows()[4], {"course_id": "503", "course_title": "C"}, None, progress_by_user()["121"], NOW)
    assert record["status"] == "completed" and record["completed_at"] == "2023-04-28T16:26:08Z"
    assert record["progress_percent"] == 100 and isinstance(record["progress_percent"], int)
    assert record["updated_at"] == "2023-06-30T10:00:00Z"
    assert record["user"] == {"id": "121", "name": "Li Wei", "emails": []}  # not in the users join: the row's own name


def test_an_invited_custom_role_student_starts_at_start_at_with_no_progress():
    record = to_course_enrollment(rows()[1], {"course_id": "503", "course_title": "C"}, None, None, NOW, keep_raw=True)
    assert (record["status"], record["enrolled_at"], record["progress_percent"], record["score"]) == ("assigned", "2024-02-10T00:00:00Z", None, None)
    assert record["custom_fields"]["role"] == "Auditor" and record["remote_data"]["progress"] is None


@pytest.mark.parametrize(
    "row, progress, course_end, expected",
    [
        ({"enrollment_state": "invited"}, None, None, "assigned"),
        ({"enrollment_state": "creation_pending"}, None, None, "assigned"),
        ({"enrollment_state": "inactive"}, {"completed_at": "2024-01-01T00:00:00Z"}, None, "withdrawn"),
        ({"enrollment_state": "active"}, {"completed_at": "2024-01-01T00:00:00Z"}, None, "completed"),
        ({"enrollment_state": "active", "last_activity_at": None}, {"requirement_completed_count": 0}, None, "enrolled"),
        ({"enrollment_state": "active", "last_activity_at": None}, {"requirement_completed_count": 1}, None, "in_progress"),
        ({"enrollment_state": "active", "last_activity_at": "2024-01-01T00:00:00Z"}, None, None, "in_progress"),
        ({"enrollment_state": "completed", "end_at": "2024-06-30T00:00:00Z"}, None, None, "expired"),
        ({"enrollment_state": "completed", "end_at": None}, None, "2024-06-30T00:00:00Z", "expired"),
        ({"enrollment_state": "completed", "end_at": "2030-06-30T00:00:00Z"}, None, None, "unknown"),  # concluded early
        ({"enrollment_state": "completed", "end_at": None}, None, None, "unknown"),
        ({"enrollment_state": "something_new"}, None, None, "unknown"),
    ],
)
def test_status_rules_top_to_bottom(row, progress, course_end, expected):
    assert enrollment_status(row, progress, course_end, NOW) == expected


@pytest.mark.parametrize(
    "progress, percent",
    [(None, None), ({"requirement_count": 0, "requirement_completed_count": 0}, None),
     ({"requirement_count": 4, "requirement_completed_count": 1}, 25), ({"requirement_count": 3, "requirement_completed_count": 1}, 33.33)],
)
def test_progress_percent_is_null_without_requirements(progress, percent):
    assert progress_percent(progress) == percent


# ---- errors and throttling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, message",
    [
        (json.dumps(load("error__invalid_token.json")).encode(), "Invalid access token."),
        (json.dumps(load("error__unauthorized.json")).encode(), "user not authorized to perform that action"),
        (b'{"errors": {"enrollment_state": "is invalid"}}', "enrollment_state: is invalid"),
        (b'{"error": "invalid grading_period_id"}', "invalid grading_period_id"),
        (THROTTLED, "403 Forbidden (Rate Limit Exceeded)"),
        (b"<html><body>Oops</body></html>", None),
    ],
)
def test_error_bodies(body, message):
    assert canvas_error_message(response(400, body)) == message


def test_the_throttle_is_told_from_a_real_permission_error():
    assert is_throttled(response(403, THROTTLED, {"X-Rate-Limit-Remaining": "0.0"}))
    assert is_throttled(response(403, b"", {"X-Rate-Limit-Remaining": "-12.5"}))
    assert not is_throttled(response(403, b'{"errors":[{"message":"forbidden"}]}', {"X-Rate-Limit-Remaining": "580.2"}))
    # Since October 2025 Canvas throttles with 429: any 429 is the throttle, whatever its body and headers.
    assert is_throttled(response(429, THROTTLED_429, {"X-Rate-Limit-Remaining": "0.0"}))
    assert is_throttled(response(429, b""))


@THROTTLES
def test_the_stream_retries_the_throttle_and_keeps_403_a_config_error_otherwise(status, body):
    handler = CanvasUsers(Canvas(config())).get_error_handler()
    throttled = handler.interpret_response(response(status, body, {"X-Rate-Limit-Remaining": "0.0"}))
    assert (throttled.response_action, throttled.failure_type) == (ResponseAction.RATE_LIMITED, FailureType.transient_error)
    assert "/api/v1/accounts/1/users" in throttled.error_message and "throttled" in throttled.error_message
    assert f"HTTP {status}" in throttled.error_message
    denied = handler.interpret_response(response(403, b'{"errors":[{"message":"forbidden"}]}', {"X-Rate-Limit-Remaining": "580.2"}))
    assert (denied.response_action, denied.failure_type) == (ResponseAction.FAIL, FailureType.config_error)
    assert "provider.access_token" in denied.error_message


@THROTTLES
def test_the_throttle_backoff_waits_for_the_bucket_to_drain(status, body):
    backoff = CanvasThrottleBackoff()
    assert 0.5 <= backoff.backoff_time(response(status, body, {"X-Rate-Limit-Remaining": "0.0"}), 1) <= 1.0
    # 40 units over the mark at 10 units a second: at least 4 s, plus jitter
    assert 4.5 <= backoff.backoff_time(response(status, body, {"X-Rate-Limit-Remaining": "-40"}), 1) <= 5.0
    assert 2.0 <= backoff.backoff_time(response(status, body), 3) <= 4.0
    assert backoff.backoff_time(response(500, b""), 1) is None  # not ours: the shared policy decides
    assert backoff.backoff_time(requests.exceptions.ReadTimeout(), 1) is None


def test_a_retry_after_wins_over_the_bucket_estimate_then_the_throttle_backoff_then_jitter():
    strategies = CanvasUsers(Canvas(config())).get_backoff_strategy()
    names = [type(s).__name__ for s in strategies]
    assert names == ["RetryAfterBackoff", "CanvasThrottleBackoff", "ExponentialJitterBackoff"]
    throttled = response(429, THROTTLED_429, {"X-Rate-Limit-Remaining": "-40", "Retry-After": "9"})
    assert next(w for w in (s.backoff_time(throttled, 1) for s in strategies) if w) == 9.0


def test_admins_refused_with_401_or_403_are_ignored_but_a_throttled_403_is_retried():
    handler = CanvasAdmins(Canvas(config(account_id="1"))).get_error_handler()
    admins = f"{API}/accounts/1/admins?per_page=100"
    for status in (401, 403):
        denied = handler.interpret_response(response(status, json.dumps(load("error__unauthorized.json")).encode(), url=admins))
        assert denied.response_action == ResponseAction.IGNORE and "/api/v1/accounts/1/admins" in denied.error_message
    throttled = handler.interpret_response(response(403, THROTTLED, {"X-Rate-Limit-Remaining": "0.0"}, url=admins))
    assert throttled.response_action == ResponseAction.RATE_LIMITED
    assert handler.interpret_response(response(500, b"", url=admins)).response_action == ResponseAction.RETRY


def test_the_pacer_waits_only_when_the_quota_runs_low():
    waits = []
    pacer = CanvasPacer(sleep=waits.append)
    assert pacer.after(response(200, b"[]")) == 0.0  # no throttling on this site: no header
    assert pacer.after(response(200, b"[]", {"X-Rate-Limit-Remaining": "580.0", "X-Request-Cost": "0.2"})) == 0.0
    assert pacer.after(response(200, b"[]", {"X-Rate-Limit-Remaining": "30.0", "X-Request-Cost": "0.2"})) == pytest.approx(2.0)
    # an expensive request raises the mark: twice its cost
    assert pacer.after(response(200, b"[]", {"X-Rate-Limit-Remaining": "100.0", "X-Request-Cost": "80"})) == pytest.approx(6.0)
    assert pacer.after(response(200, b"[]", {"X-Rate-Limit-Remaining": "-5000", "X-Request-Cost": "1"})) == 30.0  # capped
    assert waits == [pytest.approx(2.0), pytest.approx(6.0), 30.0]


# ---- config ----------------------------------------------------------------------------------------------------------
def test_account_id_must_be_an_id_not_a_path():
    with pytest.raises(AirbyteTracedException) as error:
        Canvas(config(account_id="1/../../users"))
    assert "provider.account_id" in error.value.message
    assert Canvas(config(account_id=" 12345~67 ")).account_id == "12345~67"
    assert Canvas(config(account_id="")).configured_account is None


def test_the_spec_entry_masks_the_token_and_makes_the_account_optional():
    entry = Canvas.spec_entry()
    assert entry["properties"]["access_token"]["airbyte_secret"] is True
    assert entry["required"] == ["provider_type", "base_url", "access_token"]


# ---- streams over requests-mock ------------------------------------------------------------------------------------
def link(url: str, rel: str = "next") -> dict[str, str]:
    return {"Link": f'<{url}>; rel="{rel}", <{API}/accounts/1/users?page=1&per_page=100>; rel="first"'}


def mock_site(m: rm.Mocker) -> None:
    users = load("accounts__users__page1.json")
    m.get(f"{API}/accounts/self", json=load("accounts__self.json"))
    m.get(f"{API}/accounts/1/users", json=users[:1], headers=link(f"{API}/accounts/1/users?sort=id&page=2&per_page=100"))
    m.get(f"{API}/accounts/1/users?page=2", json=users[1:])
    for enrollment_type in ("observer", "student", "designer", "ta", "teacher"):
        m.get(f"{API}/accounts/1/users?enrollment_type={enrollment_type}", json=[])
    m.get(f"{API}/accounts/1/users?enrollment_type=student", json=users)
    m.get(f"{API}/accounts/1/admins", json=load("accounts__admins__page1.json"))
    m.get(f"{API}/accounts/1/courses", json=load("accounts__courses__page1.json")[:1])
    m.get(f"{API}/courses/503/enrollments", json=rows())
    m.get(f"{API}/courses/503/bulk_user_progress", json=load("courses__bulk_user_progress__page1.json"))


def test_a_read_follows_the_link_header_with_the_bearer_token_and_the_default_account():
    with rm.Mocker() as m:
        mock_site(m)
        output = run_read(config(), mode=SyncMode.full_refresh)
        assert not output.errors, output.errors
        records = records_by_stream(output)
        history = m.request_history
    assert {u["id"]: u["role"] for u in records["users"]} == {"117": "admin", "118": "learner"}  # deleted admin ignored
    assert [c["id"] for c in records["courses"]] == ["503"]
    assert [e["id"] for e in records["course_enrollments"]] == ["9012", "9013", "9016"]
    assert {r.headers["Authorization"] for r in history} == {f"Bearer {TOKEN}"}
    assert sum(r.path == "/api/v1/accounts/self" for r in history) == 1  # resolved once for all streams
    enrollments = next(r for r in history if r.path == "/api/v1/courses/503/enrollments")
    assert enrollments.qs["type[]"] == ["studentenrollment"] and enrollments.qs["per_page"] == ["100"]
    assert set(enrollments.qs["state[]"]) == {"active", "invited", "creation_pending", "inactive", "completed"}
    second_pages = [r for r in history if r.qs.get("page") == ["2"]]
    assert second_pages and all(r.qs.get("sort") == ["id"] for r in second_pages)  # the link's own parameters, nothing added


def test_a_configured_account_is_used_without_resolving_the_root():
    with rm.Mocker() as m:
        m.get(f"{API}/accounts/12/courses", json=load("accounts__courses__page1.json")[1:2])
        output = run_read(config(account_id="12"), mode=SyncMode.full_refresh, streams=["courses"])
        assert [r.path for r in m.request_history] == ["/api/v1/accounts/12/courses"]
    assert [c["id"] for c in records_by_stream(output)["courses"]] == ["504"]


def test_a_next_link_to_another_host_is_refused_so_the_token_never_leaves_canvas():
    with rm.Mocker() as m:
        m.get(f"{API}/accounts/1/courses", json=load("accounts__courses__page1.json")[:1],
              headers={"Link": '<https://evil.example.com/api/v1/accounts/1/courses?page=2>; rel="next"'})
        output = run_read(config(account_id="1"), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
        assert all(r.hostname == "school.instructure.com" for r in m.request_history)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "evil.example.com" in error.message


def test_a_while1_prefixed_answer_is_read():
    with rm.Mocker() as m:
        m.get(f"{API}/accounts/1/courses", content=b"while(1);" + json.dumps(load("accounts__courses__page1.json")).encode())
        output = run_read(config(account_id="1"), mode=SyncMode.full_refresh, streams=["courses"])
    assert len(records_by_stream(output)["courses"]) == 3


def test_check_names_the_account_field_when_the_account_does_not_exist():
    with rm.Mocker() as m:
        m.get(f"{API}/accounts/999", status_code=404, json=load("error__not_found.json"))
        with pytest.raises(AirbyteTracedException) as error:
            Canvas(config(account_id="999")).check()
    assert error.value.failure_type == FailureType.config_error
    assert "provider.account_id" in error.value.message and "/api/v1/accounts/999" in error.value.message
