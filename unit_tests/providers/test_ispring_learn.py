"""iSpring Learn mappers and status rules on documented-shape payloads (JSON and XML), and the streams over requests-mock."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.models import SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.ispring_learn import (
    certificate_fields,
    enrollment_status,
    error_message,
    parse_xml,
    profile_fields,
    to_course,
    to_course_enrollment,
    to_user,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "ispring_learn"
BASE = "https://api-learn.ispringlearn.com"
CLIENT_SECRET = "FAKE-ispring-client-secret-for-tests-only"
NOW = "2026-01-01T00:00:00Z"


def raw(name: str) -> bytes:
    return (RESOURCES / name).read_bytes()


def load(name: str):
    return parse_xml(raw(name)) if name.endswith(".xml") else json.loads(raw(name))


def config(**extra):
    return {"provider": {"provider_type": "ispring_learn", "client_id": "00000000-fa4e-4000-8000-000000000001",
                         "client_secret": CLIENT_SECRET}, **extra}


# ---- XML ------------------------------------------------------------------------------------------------------------
def test_xml_list_of_one_is_a_list_and_empty_elements_are_null():
    page = load("users_v2__page2.xml")
    assert isinstance(page["userProfiles"], list) and len(page["userProfiles"]) == 1
    user = page["userProfiles"][0]
    assert user["groups"] == ["9c8b7a6d-6b7e-11ee-b2b4-d6615e040b19"]
    assert user["userRoles"] == [{"roleId": "2d3e4f50-6b7e-11ee-b2b4-d6615e040b19", "roleType": "publisher"}]
    assert user["lastLoginDate"] is None and user["fields"]["last_name"] is None
    assert page["nextPageToken"] is None


def test_xml_and_json_pages_read_alike():
    json_item = load("contents__page1.json")["contentItems"][0]
    xml_item = load("contents__page1.xml")["contentItems"][0]
    assert to_course(xml_item) == to_course(json_item)
    json_enrollment = load("enrollments__page1.json")["enrollments"][0]
    xml_enrollment = load("enrollments__page1.xml")["enrollments"][0]
    result = load("learners_results__page1.json")["results"][0]
    assert to_course_enrollment(result, xml_enrollment, None, NOW) == to_course_enrollment(result, json_enrollment, None, NOW)


def test_a_dtd_is_refused():
    with pytest.raises(ValueError):
        parse_xml(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><response>&a;</response>')


@pytest.mark.parametrize(
    "name, content_type, expected",
    [("error__invalid_client.json", "application/json", "Invalid client credentials"),
     ("error__invalid_client.xml", "application/xml", "Invalid client credentials")],
)
def test_error_body_in_either_format(name, content_type, expected):
    response = requests.Response()
    response._content, response.status_code = raw(name), 401
    response.headers["Content-Type"] = content_type
    assert error_message(response) == expected


def test_plain_text_error_body():
    response = requests.Response()
    response._content, response.status_code = b"Unknown content item", 404
    response.headers["Content-Type"] = "text/plain"
    assert error_message(response) == "Unknown content item"


# ---- users ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields, expected",
    [([{"name": "LOGIN", "value": "j"}, {"name": "EMAIL", "value": "j@x.org"}], {"login": "j", "email": "j@x.org"}),
     ({"login": "j", "email": "j@x.org"}, {"login": "j", "email": "j@x.org"}),
     ({"field": {"name": "login", "value": "j"}}, {"login": "j"}),
     ({"field": [{"name": "login", "value": "j"}, {"name": "EMAIL", "value": "j@x.org"}]}, {"login": "j", "email": "j@x.org"}),
     (None, {})],
)
def test_profile_fields_in_every_shape(fields, expected):
    assert profile_fields(fields) == expected


def test_to_user_maps_the_documented_json_profile():
    user = to_user(load("users_v2__page1.json")["userProfiles"][0])
    assert user == {
        "id": "3f1c9a52-6b7e-11ee-b2b4-d6615e040b19", "name": "John Smith", "first_name": "John", "last_name": "Smith",
        "username": "jsmith", "emails": [{"email": "jsmith@example.com", "type": "work", "is_primary": True}],
        "status": "active", "role": "learner", "locale": None, "timezone": None, "job_title": None,
        "last_login_at": "2024-03-01T06:00:00Z", "created_at": "2024-01-05T10:11:12Z", "updated_at": None,
        "custom_fields": {"job_title": "Nurse"}, "remote_data": None,
    }


def test_employment_ended_user_is_deleted_and_department_admin_is_admin():
    user = to_user(load("users_v2__page1.json")["userProfiles"][1])
    assert (user["status"], user["role"], user["name"], user["emails"]) == ("deleted", "admin", "Zoë Øvergaard", [])
    assert user["created_at"] == "2024-01-06T09:00:00Z" and user["last_login_at"] is None


def test_to_user_from_xml_inactive_publisher_with_empty_fields():
    user = to_user(load("users_v2__page2.xml")["userProfiles"][0])
    assert (user["status"], user["role"], user["name"], user["last_name"]) == ("inactive", "instructor", "Kenji", None)
    assert user["emails"] == [{"email": "kenji@example.com", "type": "work", "is_primary": True}]
    assert user["custom_fields"] == {"country_id": None}


@pytest.mark.parametrize("role, expected", [("learner", "learner"), ("administrator", "admin"), ("department_administrator", "admin"),
                                            ("publisher", "instructor"), ("custom", "other"), ("something_new", "other")])
def test_user_roles(role, expected):
    assert to_user({"userId": "u", "role": role})["role"] == expected


def test_unknown_user_status_is_unknown():
    assert to_user({"userId": "u", "status": 2})["status"] == "unknown"


# ---- courses --------------------------------------------------------------------------------------------------------
def test_to_course_course_and_learning_track():
    course, track = (to_course(item) for item in load("contents__page1.json")["contentItems"])
    assert course == {
        "id": "146ac240-d54f-11e9-9b88-0a580af40973", "title": "Safety 101", "description": "<p>Basics.</p>", "code": None,
        "type": "course", "status": "unknown", "language": None, "duration_seconds": None,
        "urls": [{"url": "https://acme.ispringlearn.com/app/content-item/146ac240-d54f-11e9-9b88-0a580af40973", "type": "view"}],
        "categories": [], "tags": [], "created_at": "2023-11-24T09:52:37Z", "updated_at": None,
        "custom_fields": {"e1f2a3b4-6b7e-11ee-b2b4-d6615e040b19": "HSE", "subtitle": "Stay safe"}, "remote_data": None,
    }
    assert (track["type"], track["description"], track["custom_fields"]) == ("path", None, {})


@pytest.mark.parametrize("item, expected", [({"contentItemType": "Video"}, "other"), ({"type": "learningTrack"}, "path"), ({}, "other")])
def test_content_types(item, expected):
    assert to_course({"contentItemId": "c", **item})["type"] == expected


# ---- enrollments ----------------------------------------------------------------------------------------------------
def test_to_course_enrollment_joins_enrollment_and_user():
    result = load("learners_results__page1.json")["results"][0]
    enrollment = load("enrollments__page1.json")["enrollments"][0]
    person = {"id": result["userId"], "name": "John Smith", "emails": [{"email": "jsmith@example.com", "type": "work", "is_primary": True}]}
    record = to_course_enrollment(result, enrollment, person, NOW, keep_raw=True)
    assert record == {
        "id": "b7c8d9e0-6b7e-11ee-b2b4-d6615e040b19", "user": person,
        "course": {"id": "146ac240-d54f-11e9-9b88-0a580af40973", "title": "Safety 101"},
        "status": "passed", "assigned_at": "2024-02-01T09:30:00Z", "due_at": "2024-03-01T00:00:00Z",
        "enrolled_at": "2024-02-01T09:30:00Z", "started_at": None, "last_activity_at": None,
        "completed_at": "2024-02-20T15:45:10Z", "progress_percent": 100, "time_spent_seconds": 1260, "score": 92.5,
        "is_mandatory": True, "assigned_by": None, "attempt_number": None, "attempts_count": None, "urls": [],
        "created_at": "2024-02-01T09:30:00Z", "updated_at": None,
        "custom_fields": {"issuedCertificateId": "c0d1e2f3-6b7e-11ee-b2b4-d6615e040b19", "certIssueDate": "2024-02-20T00:00:00Z",
                          "certExpiryDate": "2025-02-20T00:00:00Z"},
        "remote_data": {"result": result, "enrollment": enrollment},
    }


def test_catalogue_enrollment_is_not_assigned_and_expired_access_wins_over_overdue():
    result = load("learners_results__page1.json")["results"][1]
    enrollment = load("enrollments__page1.json")["enrollments"][1]
    record = to_course_enrollment(result, enrollment, None, NOW)
    assert record["id"] == "d9e0f1a2-6b7e-11ee-b2b4-d6615e040b19"  # no enrollmentId in the result: the joined one
    assert (record["assigned_at"], record["is_mandatory"], record["status"]) == (None, False, "expired")
    assert record["enrolled_at"] == "2024-02-05T08:00:00Z" and record["progress_percent"] == 45
    assert record["custom_fields"] == {"expirationDate": "2024-02-10T00:00:00Z"}
    assert record["user"] == {"id": "5d2e8b10-6b7e-11ee-b2b4-d6615e040b19", "name": None, "emails": []}


def test_xml_result_without_enrollment_uses_the_pair_id_and_null_scores():
    result = load("learners_results__page2.xml")["results"][0]
    record = to_course_enrollment(result, None, None, NOW)
    assert record["id"] == "7a9b0c1d-6b7e-11ee-b2b4-d6615e040b19:146ac240-d54f-11e9-9b88-0a580af40973"
    assert (record["status"], record["score"], record["progress_percent"], record["time_spent_seconds"]) == ("enrolled", None, 0, 0)
    assert (record["due_at"], record["completed_at"], record["is_mandatory"], record["custom_fields"]) == (None, None, None, {})


def test_legacy_enrollment_certificate_fields():
    legacy = load("enrollment__legacy.xml")["enrollment"]
    assert certificate_fields({}, legacy) == {
        "issuedCertificateId": "p-1sJDjmULL5DdpXPJTcbm4jVIaWVHvNmrjAxATRbNE", "certIssueDate": "2019-10-01T00:00:00Z",
        "certExpiryDate": "2020-10-01T00:00:00Z", "expirationDate": "2019-10-24T00:00:00Z",
    }
    record = to_course_enrollment({"userId": legacy["learnerId"], "courseId": legacy["courseId"], "completionStatus": "complete"}, legacy, None, NOW)
    assert (record["id"], record["enrolled_at"], record["due_at"], record["status"]) == (
        "0c1d2e3f-deb5-11e9-8afe-0a580af40764", "2019-09-24T00:00:00Z", "2019-10-24T00:00:00Z", "completed")


ADMIN, CATALOGUE = {"enrollmentTypeGroup": 0}, {"enrollmentTypeGroup": "1"}
PAST, FUTURE = "2025-06-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    "result, enrollment, expected",
    [
        ({"completionStatus": "complete"}, None, "completed"),
        ({"completionStatus": "accepted", "isOverdue": True}, None, "completed"),
        ({"completionStatus": "passed", "expirationDate": PAST}, None, "passed"),
        ({"completionStatus": "failed"}, None, "failed"),
        ({"completionStatus": "declined"}, None, "failed"),
        ({"completionStatus": "in_progress", "expirationDate": PAST, "isOverdue": True}, None, "expired"),
        ({"completionStatus": "in_progress"}, {"expirationDate": "2025-06-01"}, "expired"),  # the enrollment's date
        ({"completionStatus": "in_progress", "expirationDate": FUTURE, "isOverdue": "1"}, None, "overdue"),
        ({"completionStatus": "not_started", "isOverdue": "true"}, ADMIN, "overdue"),
        ({"completionStatus": "in_progress", "isOverdue": "0"}, None, "in_progress"),
        ({"completionStatus": "pending"}, None, "in_progress"),
        ({"completionStatus": "incomplete", "progress": "12.5"}, None, "in_progress"),
        ({"completionStatus": "incomplete", "progress": 0}, None, "enrolled"),
        ({"completionStatus": "not_started"}, ADMIN, "assigned"),
        ({"completionStatus": "not_started"}, CATALOGUE, "enrolled"),
        ({"completionStatus": "not_started"}, None, "enrolled"),
        ({"completionStatus": "archived"}, None, "unknown"),
        ({}, None, "unknown"),
    ],
)
def test_status_rules_top_to_bottom(result, enrollment, expected):
    assert enrollment_status(result, enrollment, NOW) == expected


def test_progress_is_clamped():
    record = to_course_enrollment({"userId": "u", "courseId": "c", "progress": 130.0}, None, None, NOW)
    assert record["progress_percent"] == 100


# ---- streams over requests-mock -------------------------------------------------------------------------------------
def mock_account(m: rm.Mocker, xml: bool = False) -> None:
    def answer(name: str):
        kind = "application/xml" if name.endswith(".xml") else "application/json"
        return {"content": raw(name), "headers": {"Content-Type": kind}}

    m.post(f"{BASE}/api/v3/token", **answer("token.xml" if xml else "token.json"))

    def users(request, context):
        page = answer("users_v2__page2.xml") if parse_qs(urlsplit(request.url).query).get("pageToken") else answer("users_v2__page1.json")
        context.headers["Content-Type"] = page["headers"]["Content-Type"]
        return page["content"]

    def results(request, context):
        page = answer("learners_results__page2.xml") if parse_qs(urlsplit(request.url).query).get("pageToken") else answer("learners_results__page1.json")
        context.headers["Content-Type"] = page["headers"]["Content-Type"]
        return page["content"]

    m.get(f"{BASE}/users/v2", content=users)
    m.get(f"{BASE}/contents", **answer("contents__page1.xml" if xml else "contents__page1.json"))
    m.get(f"{BASE}/enrollments", **answer("enrollments__page1.xml" if xml else "enrollments__page1.json"))
    m.get(f"{BASE}/learners/results", content=results)


def test_read_asks_for_json_pages_by_token_and_reads_xml_pages_too():
    with rm.Mocker() as m:
        mock_account(m)
        output = run_read(config(), mode=SyncMode.full_refresh)
        assert not output.errors, output.errors
        records = records_by_stream(output)
        calls = [(r.method, urlsplit(r.url).path, parse_qs(urlsplit(r.url).query)) for r in m.request_history]
        api_calls = [r for r in m.request_history if r.method == "GET"]
    assert [r["id"] for r in records["users"]] == ["3f1c9a52-6b7e-11ee-b2b4-d6615e040b19", "5d2e8b10-6b7e-11ee-b2b4-d6615e040b19",
                                                    "7a9b0c1d-6b7e-11ee-b2b4-d6615e040b19"]
    assert [r["type"] for r in records["courses"]] == ["course", "path"]
    assert [r["id"] for r in records["course_enrollments"]] == [
        "b7c8d9e0-6b7e-11ee-b2b4-d6615e040b19", "d9e0f1a2-6b7e-11ee-b2b4-d6615e040b19",
        "7a9b0c1d-6b7e-11ee-b2b4-d6615e040b19:146ac240-d54f-11e9-9b88-0a580af40973"]
    assert records["course_enrollments"][0]["user"]["name"] == "John Smith"  # joined from /users/v2
    assert all(r.headers["Accept"] == "application/json" for r in api_calls)
    assert all(r.headers["Authorization"] == "Bearer 5_nz54vlUBIcxt8oJOmE5K6Qr1ARMy5jwPMdVATOCBB" for r in api_calls)
    assert [c for c in calls if c[0] == "POST"] == [("POST", "/api/v3/token", {})]  # one token for the whole sync
    users_pages = [c[2] for c in calls if c[1] == "/users/v2"]
    assert users_pages[0] == {"pageSize": ["1000"]}
    assert users_pages[1] == {"pageSize": ["1000"], "pageToken": ["MmFiZmJhNDItZmE1MS0xMWU5LTk1ZjAtMGE1ODBhZjQwYTgz"]}
    assert [c[2] for c in calls if c[1] == "/contents"][0]["contentTypes"] == ["Course", "LearningTrack"]
    assert [c[2] for c in calls if c[1] == "/learners/results"][0]["userStatuses"] == ["1", "3", "5"]


def test_an_xml_host_including_its_token_answer_gives_the_same_records():
    with rm.Mocker() as m:
        mock_account(m)
        json_records = records_by_stream(run_read(config(), mode=SyncMode.full_refresh, streams=["courses", "course_enrollments"]))
    with rm.Mocker() as m:
        mock_account(m, xml=True)
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses", "course_enrollments"])
    assert not output.errors
    xml_records = records_by_stream(output)
    assert xml_records["courses"] == json_records["courses"][:1]  # the XML content page holds the course only
    xml_rows, json_rows = xml_records["course_enrollments"], json_records["course_enrollments"]
    assert (xml_rows[0], xml_rows[2]) == (json_rows[0], json_rows[2])
    # The XML enrollment page holds the first enrollment only: the second result finds no enrollment to join.
    assert xml_rows[1]["id"] == "5d2e8b10-6b7e-11ee-b2b4-d6615e040b19:a2239d7c-0a37-11ec-b63a-0242ac140033"
    assert json_rows[1]["id"] == "d9e0f1a2-6b7e-11ee-b2b4-d6615e040b19"


def test_a_token_rejected_mid_sync_is_renewed_once_and_the_page_retried():
    with rm.Mocker() as m:
        mock_account(m)
        m.post(f"{BASE}/api/v3/token", [{"json": {"access_token": "first-token-0123456789", "expires_in": 1800, "token_type": "bearer"}},
                                        {"json": {"access_token": "second-token-0123456789", "expires_in": 1800, "token_type": "bearer"}}])
        sent = []  # the header as sent: the CDK re-authorizes the same request object on retry

        def contents(request, context):
            sent.append(request.headers["Authorization"])
            if len(sent) == 1:
                context.status_code = 401
                return b'{"code": 401, "message": "Access token expired"}'
            return raw("contents__page1.json")

        m.get(f"{BASE}/contents", content=contents, headers={"Content-Type": "application/json"})
        output = run_read(config(), mode=SyncMode.full_refresh, streams=["courses"])
        order = [(r.method, urlsplit(r.url).path) for r in m.request_history]
    assert not output.errors
    assert len(records_by_stream(output)["courses"]) == 2
    assert order == [("POST", "/api/v3/token"), ("GET", "/contents"), ("POST", "/api/v3/token"), ("GET", "/contents")]
    assert sent == ["Bearer first-token-0123456789", "Bearer second-token-0123456789"]
    logged = json.dumps([m.log.message for m in output.logs])
    assert "first-token-0123456789" not in logged and "second-token-0123456789" not in logged


def test_a_wrong_secret_ends_the_read_with_a_config_error_naming_the_fields():
    with rm.Mocker() as m:
        m.post(f"{BASE}/api/v3/token", status_code=401, json=json.loads(raw("error__invalid_client.json")))
        output = run_read(config(), streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "POST /api/v3/token answered HTTP 401: Invalid client credentials" in error.message
    assert "provider.client_secret" in error.message
    assert CLIENT_SECRET not in json.dumps([m.log.message for m in output.logs])


def test_a_page_that_is_not_an_ispring_answer_names_the_endpoint():
    with rm.Mocker() as m:
        mock_account(m)
        m.get(f"{BASE}/contents", text="<html><body>Welcome to our LMS</body></html>", headers={"Content-Type": "text/html"})
        output = run_read(config(), streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/contents" in error.message


def test_an_unreadable_date_names_the_endpoint_and_the_item():
    page = {"contentItems": [{"contentItemId": "c1", "title": "t", "addedDate": "01.02.2024"}]}
    with rm.Mocker() as m:
        mock_account(m)
        m.get(f"{BASE}/contents", json=page)
        output = run_read(config(), streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/contents" in error.message and "'c1'" in error.message
