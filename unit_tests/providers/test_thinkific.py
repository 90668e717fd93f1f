"""Thinkific mappers, status rules, paging, rate-limit reading and error bodies on documented-shape payloads
(Admin API v1 OpenAPI: UserResponse, CourseResponse, EnrollmentResponse, Pagination), and the streams over
requests-mock."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import final_states, records_by_stream, run_read
from source_lms_enrollments.providers.thinkific import (
    Thinkific,
    enrollment_status,
    progress_percent,
    reset_wait_seconds,
    site_subdomain,
    thinkific_error_message,
    to_course,
    to_course_enrollment,
    to_user,
    updated_after_param,
    user_role,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "thinkific"
API = "https://api.thinkific.com/api/public/v1"
API_KEY = "tk" + "k" * 30
SUBDOMAIN = "acme-academy"
NOW = "2024-06-01T00:00:00Z"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**extra):
    return {"provider": {"provider_type": "thinkific", "api_key": API_KEY, "subdomain": SUBDOMAIN}, **extra}


def enrollment(item_id: int):
    return next(e for e in load("enrollments__page1.json")["items"] if e["id"] == item_id)


# ---- users ---------------------------------------------------------------------------------------------------------
def test_a_user_maps_to_a_unified_user():
    user = to_user(load("users__page1.json")["items"][0])
    assert user["id"] == "1" and user["name"] == "Bob Smith"
    assert (user["first_name"], user["last_name"], user["username"]) == ("Bob", "Smith", None)
    assert user["emails"] == [{"email": "bob@example.com", "type": "work", "is_primary": True}]
    assert user["status"] == "active" and user["role"] == "learner"  # an affiliate sells; it does not teach
    assert user["job_title"] == "User's headline"
    assert user["created_at"] == "2018-07-12T23:19:00Z"
    assert user["updated_at"] is None  # UserResponse has no modification time
    assert user["custom_fields"] == {"Phone": "887 909 9999", "company": "The user's company"}
    assert user["remote_data"] is None
    assert to_user(load("users__page1.json")["items"][0], keep_raw=True)["remote_data"]["affiliate_code"] == "abc123"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ([], "learner"),
        (None, "learner"),
        (["affiliate"], "learner"),
        (["group_analyst"], "manager"),
        (["course_admin", "group_analyst"], "instructor"),
        (["group_analyst", "site_admin"], "admin"),
    ],
)
def test_user_role_takes_the_strongest_thinkific_role(roles, expected):
    assert user_role(roles) == expected


# ---- courses -------------------------------------------------------------------------------------------------------
def test_a_course_maps_to_a_unified_course():
    course = to_course(load("courses__page1.json")["items"][0])
    assert course["id"] == "1" and course["title"] == "My Course" and course["code"] == "my-course"
    assert course["description"] == "Course description" and course["type"] == "course"
    assert course["status"] == "unknown"  # nothing in CourseResponse says draft or published
    assert course["urls"] == [{"url": "http://example.com/card.jpg", "type": "image"}]
    assert [t["name"] for t in course["tags"]] == ["course", "learn", "great"]
    assert course["duration_seconds"] is None  # `duration` is deprecated free text ("22"), not seconds
    assert (course["created_at"], course["updated_at"]) == (None, None)
    assert course["custom_fields"] == {"product_id": "11", "instructor_id": "1"}


# ---- enrollments ---------------------------------------------------------------------------------------------------
def test_a_completed_enrollment_maps_with_its_user_and_course():
    record = to_course_enrollment(enrollment(1), now=NOW)
    assert record["id"] == "1"
    assert record["user"] == {"id": "1", "name": "Bob Smith", "emails": [{"email": "bob@example.com", "type": "work", "is_primary": True}]}
    assert record["course"] == {"id": "1", "title": "My Course"}
    assert record["status"] == "completed" and record["progress_percent"] == 100
    assert record["enrolled_at"] == "2018-01-01T01:01:00Z" and record["started_at"] == "2018-01-01T01:01:00Z"
    assert record["completed_at"] == "2018-01-31T01:01:00Z" and record["updated_at"] == "2018-01-31T01:01:00Z"
    assert record["custom_fields"] == {"expiry_date": "2019-01-01T01:01:00Z", "expired": False, "is_free_trial": False}


def test_percentage_completed_is_a_fraction():
    assert to_course_enrollment(enrollment(2), now=NOW)["progress_percent"] == 75
    assert progress_percent(0.333) == 33.3
    assert progress_percent("0.5") == 50
    assert progress_percent(None) is None
    assert progress_percent(1.7) == 100 and progress_percent(-0.1) == 0


@pytest.mark.parametrize(
    ("item_id", "expected"),
    [(1, "completed"), (2, "in_progress"), (3, "expired"), (4, "enrolled")],
)
def test_status_of_the_documented_rows(item_id, expected):
    assert to_course_enrollment(enrollment(item_id), now=NOW)["status"] == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"completed": True, "expired": True, "percentage_completed": 1.0}, "completed"),  # completion outlives expiry
        ({"completed": False, "completed_at": "2024-01-01T00:00:00Z", "percentage_completed": 0.9}, "completed"),
        ({"completed": False, "percentage_completed": 1.0}, "completed"),
        ({"expired": True, "percentage_completed": 0.0}, "expired"),
        ({"activated_at": "2030-01-01T00:00:00Z", "percentage_completed": 0.0}, "assigned"),
        ({"activated_at": "2024-01-01T00:00:00Z", "percentage_completed": 0.01}, "in_progress"),
        ({"activated_at": None, "is_free_trial": True, "percentage_completed": 0.0}, "enrolled"),
        ({"percentage_completed": None}, "enrolled"),
    ],
)
def test_enrollment_status_rules(fields, expected):
    assert enrollment_status({"completed": False, "expired": False, **fields}, NOW) == expected


def test_an_expired_enrollment_is_not_a_deletion():
    record = to_course_enrollment(enrollment(3), now=NOW)
    assert record["status"] == "expired" and "remote_deleted_at" not in record  # the base sets null for a live row
    assert record["custom_fields"]["expired"] is True


def test_an_enrollment_without_user_or_course_cannot_be_read():
    with pytest.raises(ValueError):
        to_course_enrollment({**enrollment(1), "user_id": None})


# ---- helpers -------------------------------------------------------------------------------------------------------
def test_updated_after_is_sent_one_second_before_the_cursor():
    assert updated_after_param("2024-05-01T12:00:00Z") == "2024-05-01T11:59:59Z"
    assert updated_after_param("2024-01-01T00:00:00Z") == "2023-12-31T23:59:59Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000000030", 30.0),  # epoch seconds (developers.thinkific.com)
        ("1000000030000", 30.0),  # epoch milliseconds
        ("30000", 30.0),  # milliseconds until the reset (support.thinkific.dev)
        ("12", 12.0),  # a small number: seconds
        ("999", 60.0),  # never longer than the one-minute window
        ("999999999", 999999.999),  # just under epoch seconds: milliseconds
        ("1000000000", 0.0),  # a reset already past
        ("", None),
        ("soon", None),
        ("-3", None),
    ],
)
def test_ratelimit_reset_is_read_in_every_documented_unit(value, expected):
    wait = reset_wait_seconds(value, now=1_000_000_000.0)
    assert wait == (pytest.approx(expected) if expected is not None else None)


def test_error_bodies():
    def response(body, status):
        r = requests.Response()
        r.status_code, r._content = status, json.dumps(body).encode()
        return r

    assert thinkific_error_message(response(load("error__unauthorized.json"), 401)) == "Authentication Error"
    assert "not available on your plan" in thinkific_error_message(response(load("error__forbidden.json"), 403))
    assert thinkific_error_message(response(load("error__unprocessable.json"), 422)) == "first_name can't be blank"
    assert thinkific_error_message(response({"errors": ["Course could not be found."]}, 422)) == "Course could not be found."
    assert thinkific_error_message(response([1, 2], 500)) is None


def test_pacing_is_thinkifics_minute_limit_or_the_users_lower_cap():
    assert Thinkific(config()).pace() == (110, 60.0)
    assert Thinkific(config(requests_per_minute=30)).pace() == (30, 60.0)
    assert Thinkific(config(requests_per_minute=500)).pace() == (110, 60.0)
    assert Thinkific(config()).api_budget is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("acme-academy", "acme-academy"), (" Acme ", "acme"), ("acme.thinkific.com", "acme"), ("https://acme.thinkific.com/", "acme")],
)
def test_the_subdomain_is_taken_from_a_name_or_the_sites_address(value, expected):
    assert site_subdomain(value) == expected


@pytest.mark.parametrize("value", ["", "ac me", "acme\nX-Other: 1", "-acme", "acme.example.org", "acme_academy"])
def test_a_subdomain_that_cannot_be_one_is_a_config_error_before_any_request(value):
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    with pytest.raises(AirbyteTracedException) as raised:
        Thinkific({"provider": {"provider_type": "thinkific", "api_key": API_KEY, "subdomain": value}})
    assert raised.value.failure_type.value == "config_error" and "provider.subdomain" in raised.value.message


def test_spec_entry_names_both_fields_and_hides_the_key():
    entry = Thinkific.spec_entry()
    assert entry["required"] == ["provider_type", "api_key", "subdomain"]
    assert entry["properties"]["api_key"]["airbyte_secret"] is True
    assert "airbyte_secret" not in entry["properties"]["subdomain"]
    assert entry["properties"]["base_url"]["default"] == "https://api.thinkific.com"


# ---- streams over requests-mock ------------------------------------------------------------------------------------
@pytest.fixture
def api():
    with rm.Mocker() as mocker:
        def users(request, context):
            page = parse_qs(urlsplit(request.url).query).get("page", ["1"])[0]
            return load("users__page2.json") if page == "2" else load("users__page1.json")

        mocker.get(f"{API}/users", json=users)
        mocker.get(f"{API}/courses", json=load("courses__page1.json"))
        mocker.get(f"{API}/enrollments", json=load("enrollments__page1.json"))
        yield mocker


def _queries(mocker, path):
    return [parse_qs(urlsplit(r.url).query) for r in mocker.request_history if urlsplit(r.url).path == f"/api/public/v1/{path}"]


def test_streams_page_by_next_page_and_send_both_auth_headers(api):
    records = records_by_stream(run_read(config(), mode=SyncMode.full_refresh))
    assert [u["id"] for u in records["users"]] == ["1", "2", "3"]
    assert [u["role"] for u in records["users"]] == ["learner", "instructor", "admin"]
    assert [c["id"] for c in records["courses"]] == ["1"]
    assert [e["id"] for e in records["course_enrollments"]] == ["1", "2", "3", "4"]
    assert [q["page"] for q in _queries(api, "users")] == [["1"], ["2"]]
    assert all(q["limit"] == ["100"] for q in _queries(api, "users"))
    for request in api.request_history:
        assert request.headers["X-Auth-API-Key"] == API_KEY and request.headers["X-Auth-Subdomain"] == SUBDOMAIN
        assert API_KEY not in request.url
    assert "query[updated_after]" not in _queries(api, "enrollments")[0]  # full refresh: no filter


def test_incremental_sends_updated_after_for_enrollments_only_and_sweeps_first(api):
    first = run_read(config(start_date="2018-03-01T00:00:00Z", deletion_sweep_days=7))
    # The first incremental read is a sweep (the whole list, so later deletions can be found): no filter yet.
    assert "query[updated_after]" not in _queries(api, "enrollments")[-1]
    enrollments = records_by_stream(first)["course_enrollments"]
    assert sorted(e["id"] for e in enrollments) == ["2", "3", "4"]  # 1 was updated before start_date
    api.reset_mock()
    second = run_read(config(start_date="2018-03-01T00:00:00Z", deletion_sweep_days=7), state=final_states(first))
    assert not second.errors
    assert _queries(api, "enrollments")[0]["query[updated_after]"] == ["2019-01-31T23:59:59Z"]  # cursor − 1 s
    assert all("query[updated_after]" not in q for q in _queries(api, "users") + _queries(api, "courses"))


@pytest.mark.parametrize(("status", "body"), [(401, "error__unauthorized.json"), (403, "error__forbidden.json")])
def test_a_rejected_key_is_a_config_error_naming_both_fields(api, status, body):
    api.get(f"{API}/users", status_code=status, json=load(body))
    output = run_read(config(), streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "provider.api_key" in error.message and "provider.subdomain" in error.message and "Thinkific" in error.message
    assert API_KEY not in error.message


def test_a_next_page_that_does_not_move_forward_fails_instead_of_looping(api):
    looping = load("users__page1.json")
    looping["meta"]["pagination"]["next_page"] = 1
    api.get(f"{API}/users", json=looping)
    output = run_read(config(), streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "refusing to loop" in error.message
    assert len(api.request_history) == 1


@pytest.mark.parametrize("body", [{"data": []}, {"items": [{"name": "no id"}]}, {"items": [], "meta": {"pagination": {"next_page": "two"}}}])
def test_a_body_that_is_not_a_thinkific_list_names_the_endpoint(api, body):
    api.get(f"{API}/courses", json=body)
    output = run_read(config(), streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "Thinkific GET /api/public/v1/courses" in error.message
