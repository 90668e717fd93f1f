"""Northpass mappers, status rules and paging on documented-shape JSON:API payloads, and the streams over requests-mock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.northpass import (
    enrollment_status,
    jsonapi_error_message,
    next_page_params,
    to_course,
    to_course_enrollment,
    to_user,
    user_status,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "northpass"
API = "https://api.northpass.com/v2"
API_KEY = "np" + "k" * 30
COURSE_ID = "9b0e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**extra):
    return {"provider": {"provider_type": "northpass", "api_key": API_KEY}, **extra}


# ---- users ---------------------------------------------------------------------------------------------------------
def test_a_person_maps_to_a_unified_user():
    user = to_user(load("people__page1.json")["data"][0])
    assert user == {
        "id": "3f6c2b1e-8d7a-4c55-9a0e-2b1f6d9e4a10",
        "name": "Zoë Müller",
        "first_name": "Zoë",
        "last_name": "Müller",
        "username": None,
        "emails": [{"email": "zoe.mueller@example.org", "type": "work", "is_primary": True}],
        "status": "active",
        "role": "learner",
        "locale": None,
        "timezone": None,
        "job_title": None,
        "last_login_at": None,
        "created_at": "2024-02-03T10:11:12Z",
        "updated_at": "2024-05-06T07:08:09Z",
        "custom_fields": {},
        "remote_data": None,
    }


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"disabled": False, "activated_at": "2024-01-01T00:00:00Z"}, "active"),
        ({"disabled": False, "activated_at": None}, "invited"),
        ({"disabled": True, "activated_at": "2024-01-01T00:00:00Z"}, "inactive"),
        ({"disabled": True, "activated_at": None}, "inactive"),  # disabled wins over a pending invitation
        ({}, "invited"),
    ],
)
def test_user_status(attributes, expected):
    assert user_status(attributes) == expected


def test_people_without_email_or_activation():
    invited, disabled = load("people__page1.json")["data"][1:3]
    assert to_user(invited)["status"] == "invited"
    assert to_user(disabled)["status"] == "inactive" and to_user(disabled)["emails"] == []


def test_remote_data_keeps_the_resource_but_never_the_invite_token():
    invited = load("people__page1.json")["data"][1]
    remote = to_user(invited, keep_raw=True)["remote_data"]
    assert remote["id"] == invited["id"] and remote["links"] == invited["links"]
    assert "invite_token" not in remote["attributes"] and remote["attributes"]["email"] == "jill@example.org"
    assert "INVITE-secret-123" not in json.dumps(remote)
    assert invited["attributes"]["invite_token"] == "INVITE-secret-123"  # the input is not changed


# ---- courses -------------------------------------------------------------------------------------------------------
def test_a_course_maps_to_a_unified_course():
    course = to_course(load("courses__page1.json")["data"][0])
    assert course["id"] == COURSE_ID and course["title"] == "Datenschutz-Grundlagen"
    assert course["description"] == "<p>Was die DSGVO verlangt.</p>"
    assert course["type"] == "course" and course["status"] == "published"
    assert course["urls"] == [{"url": "https://cdn.example.org/dsgvo.png", "type": "image"}]
    assert (course["created_at"], course["updated_at"]) == ("2024-01-10T09:00:00Z", "2024-03-01T16:30:00Z")
    assert course["code"] is None and course["categories"] == [] and course["tags"] == []


def test_course_status_values_and_date_shapes():
    draft, archived, mystery = [to_course(raw) for raw in load("courses__page1.json")["data"][1:]]
    assert draft["status"] == "draft" and archived["status"] == "archived" and mystery["status"] == "unknown"
    assert draft["description"] is None and draft["urls"] == []  # "" and null are unset
    assert draft["created_at"] == "2024-04-01T07:00:00Z"  # an offset is normalised to UTC
    assert draft["updated_at"] == "2024-04-02T09:00:00Z"  # fractions dropped, never rounded up
    assert mystery["created_at"] is None and mystery["updated_at"] is None


# ---- enrollments ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "progress, expected",
    [(0, "enrolled"), (None, "enrolled"), (0.5, "in_progress"), (35.5, "in_progress"), (99.9, "in_progress"),
     (100, "completed"), (100.0, "completed"), (120, "completed"), ("60", "in_progress")],
)
def test_enrollment_status_follows_progress(progress, expected):
    assert enrollment_status(progress) == expected


def test_an_enrollment_row_maps_with_the_joined_person_and_course():
    row = load("courses__id__enrollments__page1.json")["data"][0]
    person = {"id": "3f6c2b1e-8d7a-4c55-9a0e-2b1f6d9e4a10", "name": "Zoë Müller",
              "emails": [{"email": "zoe.mueller@example.org", "type": "work", "is_primary": True}]}
    record = to_course_enrollment(row, {"id": COURSE_ID, "title": "Datenschutz-Grundlagen"}, person)
    assert record["id"] == f"3f6c2b1e-8d7a-4c55-9a0e-2b1f6d9e4a10:{COURSE_ID}"
    assert record["user"] == person and record["course"] == {"id": COURSE_ID, "title": "Datenschutz-Grundlagen"}
    assert record["status"] == "in_progress" and record["progress_percent"] == 35.5
    assert record["enrolled_at"] == record["created_at"] == "2024-03-02T08:00:00Z"
    assert record["updated_at"] is None and record["completed_at"] is None and record["remote_data"] is None


def test_an_enrollment_row_without_attributes_takes_the_person_from_relationships():
    row = load("courses__id__enrollments__page1.json")["data"][3]
    record = to_course_enrollment(row, {"id": COURSE_ID, "title": "T"}, None)
    assert record["user"] == {"id": "a1b2c3d4-0000-4000-8000-000000000004", "name": None, "emails": []}
    assert record["status"] == "enrolled" and record["progress_percent"] is None and record["enrolled_at"] is None


# ---- paging and errors ---------------------------------------------------------------------------------------------
def test_next_page_params_come_from_links_next():
    assert next_page_params(load("people__page1.json")) == {"page": "2"}
    assert next_page_params(load("people__page2.json")) is None  # no next: the last page
    assert next_page_params({"data": [], "links": {"next": {"href": f"{API}/people?page=3&limit=50"}}}) == {"page": "3", "limit": "50"}
    assert next_page_params({"data": []}) is None
    assert next_page_params({"data": [], "links": {"next": None}}) is None


def test_jsonapi_error_messages():
    def response(body):
        r = requests.Response()
        r._content, r.status_code = json.dumps(body).encode() if body is not None else b"<html>", 401
        return r

    assert jsonapi_error_message(response(load("error__unauthorized.json"))) == "Unauthorized: Invalid API key."
    assert jsonapi_error_message(response(load("error__invalid_attribute.json"))) == "Invalid Attribute: Uh oh, that name has already been added"
    assert jsonapi_error_message(response(None)) is None
    assert jsonapi_error_message(response({"errors": "nope"})) is None


# ---- the streams over requests-mock: headers, paging, joins, errors -------------------------------------------------
@pytest.fixture
def api():
    with rm.Mocker() as mocker:
        mocker.get(f"{API}/people", [{"json": load("people__page1.json")}, {"json": load("people__page2.json")}] * 2)
        mocker.get(f"{API}/courses", json={"data": [load("courses__page1.json")["data"][0]], "links": {}})
        mocker.get(f"{API}/courses/{COURSE_ID}/enrollments", json=load("courses__id__enrollments__page1.json"))
        yield mocker


def test_streams_page_by_links_next_keep_their_limit_and_send_the_key_in_a_header(api):
    records = records_by_stream(run_read(config(), mode=SyncMode.full_refresh))
    assert [u["id"] for u in records["users"]][-1] == "a1b2c3d4-0000-4000-8000-000000000004"  # page 2 was read
    people_calls = [r for r in api.request_history if r.path == "/v2/people"]
    assert [r.qs for r in people_calls[:2]] == [{"limit": ["100"]}, {"limit": ["100"], "page": ["2"]}]
    for call in api.request_history:
        assert call.headers["X-Api-Key"] == API_KEY and "api_key" not in call.qs
        assert call.headers["Accept"] == "application/json"
    enrollments = {e["user"]["id"]: e for e in records["course_enrollments"]}
    assert enrollments["a1b2c3d4-0000-4000-8000-000000000004"]["user"]["name"] == "José García"  # joined across pages
    assert enrollments["a1b2c3d4-0000-4000-8000-000000000002"]["status"] == "completed"


def test_a_wrong_key_is_a_config_error_quoting_northpass(api):
    api.get(f"{API}/people", status_code=401, json=load("error__unauthorized.json"))
    output = run_read(config(), streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "Unauthorized: Invalid API key." in error.message and "provider.api_key" in error.message
    assert API_KEY not in error.message


def test_a_next_link_to_the_page_just_read_fails_instead_of_looping(api):
    api.get(f"{API}/people", json={"data": [load("people__page1.json")["data"][0]], "links": {"next": f"{API}/people"}})
    output = run_read(config(), streams=["users"], expecting_exception=True)
    assert "refusing to loop" in output.errors[0].trace.error.message and "/v2/people" in output.errors[0].trace.error.message
    assert len([r for r in api.request_history if r.path == "/v2/people"]) == 1


def test_a_body_that_is_not_a_jsonapi_document_names_the_endpoint(api):
    api.get(f"{API}/courses", json={"courses": []})
    output = run_read(config(), streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/v2/courses" in error.message and "data array" in error.message
