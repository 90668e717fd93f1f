"""StackOne mappers, the assignment + completion join and the status rules on documented-shape payloads (StackOne's
LMS OpenAPI schemas and examples, StackOneHQ/hub-docs lms/api-reference/lms.json; error bodies from its
connector-errors guide), and the streams over requests-mock: Basic auth and x-account-id, the `next` cursor,
filter[updated_after], errors."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.stackone import (
    enrollment_status,
    join_learning_records,
    stackone_error_message,
    to_content,
    to_course,
    to_course_enrollment,
    to_user,
    updated_after_param,
)
from source_lms_enrollments.unified import now_iso

RESOURCES = Path(__file__).parent.parent / "resources" / "stackone"
BASE = "https://api.stackone.com/unified/lms"
API_KEY = "v1.eu1." + "k" * 30
ACCOUNT = "46132201201510402136"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


META = f"https://api.stackone.com/accounts/{ACCOUNT}/meta"


@contextmanager
def mocker(meta=None):
    """requests-mock with StackOne's account meta (the LMS behind it) answered: every sync asks it once."""
    with rm.Mocker() as m:
        m.get(META, json=meta or {"provider": "docebo", "category": "lms", "models": {}})
        yield m


def unified(m) -> list:
    """The requests to the unified LMS API (the account meta left out)."""
    return [r for r in m.request_history if "/unified/lms/" in r.url]


def config(**extra):
    return {"provider": {"provider_type": "stackone", "api_key": API_KEY, "account_id": ACCOUNT}, **extra}


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_from_the_documented_example():
    assert to_user(load("users__page1.json")["data"][0]) == {
        "id": "8187e5da-dc77-475e-9949-af0f1fa4e4e3", "name": "John Dew", "first_name": None, "last_name": None,
        "username": None, "emails": [{"email": "john@dew.com", "type": None, "is_primary": True}], "status": "active",
        "role": None, "locale": None, "timezone": None, "job_title": None, "last_login_at": None,
        "created_at": "2021-01-01T01:01:01Z", "updated_at": "2021-01-01T01:01:01Z",
        "custom_fields": {"my_project_custom_field_1": "REF-1236", "my_project_custom_field_2": "some other value"},
        "remote_data": None,
    }


def test_a_user_active_as_the_string_false_is_inactive_and_times_become_utc():
    user = to_user(load("users__page1.json")["data"][1])
    assert user["status"] == "inactive" and user["emails"] == [] and user["custom_fields"] == {}
    assert user["created_at"] == "2023-03-04T08:00:00Z" and user["updated_at"] == "2024-06-01T12:30:00Z"


@pytest.mark.parametrize("active, expected", [(True, "active"), ("true", "active"), (False, "inactive"),
                                              ("false", "inactive"), (None, "unknown"), ("yes", "unknown")])
def test_user_active_table(active, expected):
    assert to_user({"id": "u", "active": active})["status"] == expected


def test_remote_data_is_the_stackone_record():
    raw = load("users__page1.json")["data"][0]
    assert to_user(raw, keep_raw=True)["remote_data"] == raw


# ---- courses and content -----------------------------------------------------------------------------------------
def test_to_course_from_the_documented_example():
    course = to_course(load("courses__page1.json")["data"][0])
    assert course == {
        "id": "8187e5da-dc77-475e-9949-af0f1fa4e4e3", "title": "Software Engineer Lv 1",
        "description": "This course acts as learning content for software engineers.", "code": None, "type": "course",
        "status": "published", "language": "en-GB",
        "duration_seconds": None,  # P3Y6M4DT12H30M5S: years and months have no length in seconds
        "urls": [{"url": "https://www.linkedinlearning.com/?v=16873", "type": "launch"},
                 {"url": "https://www.googledrive.com/?v=16873", "type": "image"}],
        "categories": [{"id": "12345", "name": "Technology"}], "tags": [],
        "created_at": "2021-07-21T14:00:00Z", "updated_at": "2021-07-21T14:00:00Z",
        "custom_fields": {"my_project_custom_field_1": "REF-1236", "my_project_custom_field_2": "some other value"},
        "remote_data": None,
    }


def test_an_inactive_course_is_disabled_with_its_duration():
    course = to_course(load("courses__page1.json")["data"][1])
    assert course["status"] == "disabled" and course["duration_seconds"] == 2700 and course["language"] is None


def test_content_is_an_assignable_learning_object_of_type_other_with_tags_and_launch_urls():
    content = to_content(load("content__page1.json")["data"][0])
    assert content["type"] == "other" and content["duration_seconds"] == 5445
    assert content["tags"] == [{"id": None, "name": "Sales Techniques"}, {"id": None, "name": "Customer Service"}]
    assert [u["type"] for u in content["urls"]] == ["launch", "mobile", "image"]


def test_a_duration_that_is_not_iso_8601_is_refused():
    with pytest.raises(ValueError):
        to_course({"id": "c", "duration": "90 minutes"})


# ---- the join and the status rules -------------------------------------------------------------------------------
def _pairs():
    return join_learning_records(load("assignments__page1.json")["data"], load("completions__page1.json")["data"])


def test_assignments_and_completions_join_per_learner_and_learning_object():
    pairs = _pairs()
    assert set(pairs) == {
        ("c28xyrc55866bvuv", "8187e5da-dc77-475e-9949-af0f1fa4e4e3"),  # assignment + completion
        ("8187e5da-dc77-475e-9949-af0f1fa4e4e3", "8187e5da-dc77-475e-9949-af0f1fa4e4e4"),  # assignment only
        ("c28xyrc55866bvuv", "col-42"),  # a collection: joined here, dropped by the stream (no list to join)
        ("8187e5da-dc77-475e-9949-af0f1fa4e4e3", "c28xcrs0000002"),  # a completion without an assignment
    }
    assignment, completions = pairs[("c28xyrc55866bvuv", "8187e5da-dc77-475e-9949-af0f1fa4e4e3")]
    assert assignment["id"] == "123456" and [c["id"] for c in completions] == ["123456"]


def test_records_that_name_no_learner_or_learning_object_are_left_out():
    assert join_learning_records([{"id": "a", "user_id": "u"}], [{"id": "c", "learning_object_id": "x"}]) == {}


def test_the_latest_assignment_and_completion_win_and_the_deprecated_course_id_still_joins():
    old = {"user_id": "u", "course_id": "c", "updated_at": "2024-01-01T00:00:00Z", "status": {"value": "pending"}}
    new = {"user_id": "u", "learning_object_id": "c", "updated_at": "2024-02-01T00:00:00Z", "status": {"value": "in_progress"}}
    first = {"user_id": "u", "learning_object_id": "c", "completed_at": "2024-03-01T00:00:00Z", "result": {"value": "Fail"}}
    second = {"user_id": "u", "learning_object_id": "c", "completed_at": "2024-04-01T00:00:00Z", "result": {"value": "Pass"}}
    (assignment, completions), = join_learning_records([new, old], [first, second]).values()
    assert assignment is new and completions == [second, first]


def test_an_enrollment_built_from_an_assignment_and_its_completion():
    assignment, completions = _pairs()[("c28xyrc55866bvuv", "8187e5da-dc77-475e-9949-af0f1fa4e4e3")]
    person = {"id": "c28xyrc55866bvuv", "name": "Ayşe Yılmaz", "emails": []}
    record = to_course_enrollment(person, {"id": "8187e5da-dc77-475e-9949-af0f1fa4e4e3", "title": "Software Engineer Lv 1"},
                                  assignment, completions)
    assert record == {
        "id": "c28xyrc55866bvuv:8187e5da-dc77-475e-9949-af0f1fa4e4e3",
        "user": {"id": "c28xyrc55866bvuv", "name": "Ayşe Yılmaz", "emails": []},
        "course": {"id": "8187e5da-dc77-475e-9949-af0f1fa4e4e3", "title": "Software Engineer Lv 1"},
        "status": "passed", "assigned_at": "2021-07-21T14:00:00Z", "due_at": "2021-07-21T14:00:00Z", "enrolled_at": None,
        "started_at": None, "last_activity_at": None, "completed_at": "2021-07-21T14:00:00Z", "progress_percent": 40,
        "time_spent_seconds": 5445, "score": 87, "is_mandatory": None, "assigned_by": None, "attempt_number": None,
        "attempts_count": None, "urls": [{"url": "https://example.com/certificate/12345", "type": "certificate"}],
        "created_at": "2021-07-21T14:00:00Z",
        "updated_at": "2021-07-22T14:00:00Z",  # the completion's, later than the assignment's
        "custom_fields": {"my_project_custom_field_1": "REF-1236", "my_project_custom_field_2": "some other value"},
        "remote_data": None,
    }


def test_a_completion_without_an_assignment_is_a_completed_enrollment():
    assignment, completions = _pairs()[("8187e5da-dc77-475e-9949-af0f1fa4e4e3", "c28xcrs0000002")]
    record = to_course_enrollment({"id": "8187e5da-dc77-475e-9949-af0f1fa4e4e3"}, {"id": "c28xcrs0000002"}, assignment, completions, keep_raw=True)
    assert assignment is None and record["status"] == "completed" and record["progress_percent"] == 100
    # No updated_at on the completion: its completed_at is the record's time (nothing else about it can change).
    assert record["updated_at"] == "2024-04-10T10:00:00Z"
    assert record["remote_data"] == {"assignment": None, "completions": completions}


def test_an_assignment_without_updated_at_makes_the_enrollment_undated():
    record = to_course_enrollment({"id": "u"}, {"id": "c"}, {"user_id": "u", "learning_object_id": "c", "updated_at": None},
                                  [{"updated_at": "2024-01-01T00:00:00Z"}])
    assert record["updated_at"] is None  # re-emitted every sync rather than an edit to the assignment being lost


@pytest.mark.parametrize("assignment, completion, expected", [
    ({"status": {"value": "pending"}}, None, "assigned"),
    ({"status": {"value": "in_progress"}}, None, "in_progress"),
    ({"status": {"value": "completed"}}, None, "completed"),
    ({"status": {"value": "completed"}, "result": {"value": "Pass"}}, None, "passed"),
    ({"status": {"value": "completed"}, "result": {"value": "Fail"}}, None, "failed"),
    ({"status": {"value": "unmapped_value", "source_value": "Expired"}}, None, "unknown"),
    ({"status": None}, None, "unknown"),
    ({"status": {"value": "in_progress"}}, {"result": {"value": "Pass"}}, "passed"),
    (None, {"result": {"value": "Fail"}}, "failed"),
    (None, {"result": {"value": "unmapped_value"}}, "completed"),
    (None, {"result": None}, "completed"),
    (None, None, "unknown"),
])
def test_status_rules(assignment, completion, expected):
    assert enrollment_status(assignment, completion) == expected


def test_the_lms_behind_stackone_is_named_in_custom_fields_when_stackone_says_it():
    raw = load("users__page1.json")["data"][0]
    assert to_user(raw, lms="docebo")["custom_fields"]["stackone_provider"] == "docebo"
    assert "stackone_provider" not in to_user(raw)["custom_fields"]


# ---- errors --------------------------------------------------------------------------------------------------------
def _response(status: int, body) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_error_messages_name_stackone_and_the_lms_behind_it_without_its_urls():
    assert stackone_error_message(_response(400, load("error__bad_request_400.json"))) == (
        "StackOne said: Human-readable error message (ValidationError); the LMS behind StackOne answered HTTP 400: "
        "Invalid input parameters")
    said = stackone_error_message(_response(502, load("error__bad_gateway_502.json")))
    assert said == "StackOne said: Bad Gateway; the LMS behind StackOne answered HTTP 503: Service temporarily unavailable"
    assert "/api/v1/employees" not in said
    assert stackone_error_message(_response(401, load("error__unauthorized_401.json"))) == "StackOne said: Unauthorized"
    assert stackone_error_message(_response(500, [])) is None


def test_updated_after_is_one_second_before_the_cursor_in_stackones_format():
    assert updated_after_param("2024-05-01T12:00:00Z") == "2024-05-01T11:59:59.000Z"


# ---- streams over requests-mock ------------------------------------------------------------------------------------
def _query(request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def test_users_authenticate_with_basic_and_the_account_header_and_follow_next():
    last = {"next": None, "data": [{"id": "u3", "active": True, "updated_at": "2024-01-01T00:00:00.000Z"}]}
    with mocker() as m:
        m.get(f"{BASE}/users", [{"json": load("users__page1.json")}, {"json": {"next": "c2", "data": []}}, {"json": last}])
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"])
    assert len(records_by_stream(output)["users"]) == 3
    first, empty, third = unified(m)
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
    assert first.headers["x-account-id"] == ACCOUNT
    assert _query(first) == {"page_size": ["100"]}  # full refresh: no filter, no raw
    assert _query(empty)["next"] == ["eyJyIjphAsHHere"]
    assert _query(third)["next"] == ["c2"]  # an empty page with a cursor is not the end ("early cursor return")


def test_incremental_sends_filter_updated_after_for_users_courses_and_content():
    # swept_at: the last full listing was just now, so this sync filters (the next sweep is due in 7 days)
    swept = {"updated_at": "2024-05-01T12:00:00Z", "swept_at": now_iso()}
    state = {"users": swept, "courses": swept}
    empty = {"next": None, "data": []}
    with mocker() as m:
        for resource in ("users", "courses", "content"):
            m.get(f"{BASE}/{resource}", json=empty)
        run_read(config(max_concurrency=1), state=state, streams=["users", "courses"])
    for request in unified(m):
        assert _query(request)["filter[updated_after]"] == ["2024-05-01T11:59:59.000Z"], request.url
    assert sorted(urlsplit(r.url).path for r in unified(m)) == ["/unified/lms/content", "/unified/lms/courses", "/unified/lms/users"]


def test_enrollments_join_the_lists_and_drop_what_cannot_be_joined():
    users = {"next": None, "data": [{"id": "c28xyrc55866bvuv", "name": "Ayşe"}, {"id": "8187e5da-dc77-475e-9949-af0f1fa4e4e3", "name": "John"}]}
    courses = {"next": None, "data": [{"id": "8187e5da-dc77-475e-9949-af0f1fa4e4e3", "title": "Software Engineer Lv 1"},
                                      {"id": "c28xcrs0000002", "title": "GDPR basics"}]}
    with mocker() as m:
        m.get(f"{BASE}/assignments", json=load("assignments__page1.json"))
        m.get(f"{BASE}/completions", json=load("completions__page1.json"))
        m.get(f"{BASE}/users", json=users)
        m.get(f"{BASE}/courses", json=courses)
        m.get(f"{BASE}/content", json=load("content__page1.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    records = {r["id"]: r for r in records_by_stream(output)["course_enrollments"]}
    assert set(records) == {"c28xyrc55866bvuv:8187e5da-dc77-475e-9949-af0f1fa4e4e3",
                            "8187e5da-dc77-475e-9949-af0f1fa4e4e3:8187e5da-dc77-475e-9949-af0f1fa4e4e4",
                            "8187e5da-dc77-475e-9949-af0f1fa4e4e3:c28xcrs0000002"}  # not the collection's
    assert records["c28xyrc55866bvuv:8187e5da-dc77-475e-9949-af0f1fa4e4e3"]["user"]["name"] == "Ayşe"
    assert records["8187e5da-dc77-475e-9949-af0f1fa4e4e3:8187e5da-dc77-475e-9949-af0f1fa4e4e4"]["status"] == "failed"
    assert records["8187e5da-dc77-475e-9949-af0f1fa4e4e3:c28xcrs0000002"]["course"]["title"] == "GDPR basics"
    assert not any("raw" in _query(r) for r in unified(m))  # the page-level raw answers are never asked for


def test_no_learner_record_means_no_directory_reads():
    with mocker() as m:
        m.get(f"{BASE}/assignments", json={"next": None, "data": []})
        m.get(f"{BASE}/completions", json={"next": None, "data": []})
        run_read(config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert [urlsplit(r.url).path for r in unified(m)] == ["/unified/lms/assignments", "/unified/lms/completions"]


def test_a_wrong_key_is_a_config_error_naming_both_fields_without_leaking_them():
    with mocker() as m:
        m.get(rm.ANY, status_code=401, json=load("error__unauthorized_401.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "StackOne said: Unauthorized" in error.message
    assert "provider.api_key" in error.message and "provider.account_id" in error.message
    assert API_KEY not in error.message and ACCOUNT not in error.message


@pytest.mark.parametrize("status", [404, 412])
def test_an_unknown_or_disabled_account_is_a_config_error_naming_account_id(status):
    with mocker() as m:
        m.get(rm.ANY, status_code=status, json={"statusCode": status, "message": "x", "timestamp": "2024-01-01T00:00:00.000Z"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "provider.account_id" in error.message and ACCOUNT not in error.message


def test_a_list_the_lms_does_not_support_is_read_as_empty():
    with mocker() as m:
        m.get(f"{BASE}/courses", json=load("courses__page1.json"))
        m.get(f"{BASE}/content", status_code=501, json={"statusCode": 501, "message": "Not Implemented", "timestamp": "2024-01-01T00:00:00.000Z"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors and len(records_by_stream(output)["courses"]) == 2


def test_a_502_names_the_lms_behind_stackone_and_is_retried_then_transient():
    with mocker() as m:
        m.get(f"{BASE}/users", status_code=502, json=load("error__bad_gateway_502.json"), headers={"Retry-After": "0"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "transient_error" and "the LMS behind StackOne answered HTTP 503" in error.message
    assert len(unified(m)) == 6  # the first try and 5 retries



def test_records_name_the_lms_from_the_account_meta_read_once():
    with mocker({"provider": "cornerstone", "category": "lms", "models": {}}) as m:
        m.get(f"{BASE}/users", json=load("users__page1.json") | {"next": None})
        m.get(f"{BASE}/courses", json=load("courses__page1.json"))
        m.get(f"{BASE}/content", json=load("content__page1.json"))
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users", "courses"])
    records = [r for rs in records_by_stream(output).values() for r in rs]
    assert len(records) == 5 and all(r["custom_fields"]["stackone_provider"] == "cornerstone" for r in records)
    assert [r.url for r in m.request_history].count(META) == 1


def test_an_account_meta_stackone_refuses_leaves_the_lms_unnamed_and_the_sync_goes_on():
    with rm.Mocker() as m:
        m.get(META, status_code=403, json={"statusCode": 403, "message": "Forbidden", "timestamp": "2024-01-01T00:00:00.000Z"})
        m.get(f"{BASE}/users", json=load("users__page1.json") | {"next": None})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["users"])
    assert not output.errors and len(records_by_stream(output)["users"]) == 2
    assert all("stackone_provider" not in r["custom_fields"] for r in records_by_stream(output)["users"])
    assert any("could not be read" in m.log.message and ACCOUNT not in m.log.message for m in output.logs)


def test_check_refuses_an_account_of_another_category_naming_account_id():
    from source_lms_enrollments.providers.stackone import StackOne
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    with mocker({"provider": "bamboohr", "category": "hris", "models": {}}):
        with pytest.raises(AirbyteTracedException) as raised:
            StackOne(config()).check()
    assert "provider.account_id" in raised.value.message and "hris" in raised.value.message
    assert ACCOUNT not in raised.value.message
