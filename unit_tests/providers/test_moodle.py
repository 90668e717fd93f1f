"""Moodle mappers, status rules and error classification on documented-shape payloads, and the streams over requests-mock."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm
from airbyte_cdk.models import FailureType, SyncMode

from integration_tests.harness import records_by_stream, run_read
from source_lms_enrollments.providers.moodle import (
    Moodle,
    MoodleUsers,
    completion_time,
    course_total_percent,
    enrollment_status,
    is_learner_row,
    is_site_course,
    moodle_error,
    to_course,
    to_course_enrollment,
    to_user,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "moodle"
BASE = "https://moodle.example.edu"
TOKEN = "abcdef0123456789abcdef0123456789"
SERVER = re.compile(re.escape(f"{BASE}/webservice/rest/server.php"))


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**provider):
    return {"provider": {"provider_type": "moodle", "base_url": BASE, "token": TOKEN, **provider}}


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_maps_the_documented_user_description():
    raw = load("core_user_get_users__page1.json")["users"][0]
    assert to_user(raw) == {
        "id": "7", "name": "Zoë Müller", "first_name": "Zoë", "last_name": "Müller", "username": "u7",
        "emails": [{"email": "u7@example.edu", "type": "work", "is_primary": True}],
        "status": "active", "role": None, "locale": "de", "timezone": None, "job_title": None,
        "last_login_at": "2024-04-01T19:33:20Z", "created_at": None, "updated_at": None,
        "custom_fields": {"standort": "Nord", "department": "Vertrieb", "idnumber": "E0007", "auth": "manual"},
        "remote_data": None,
    }


def test_suspended_and_unconfirmed_users_and_zero_times():
    users = load("core_user_get_users__page1.json")["users"]
    suspended, unconfirmed = to_user(users[1]), to_user(users[2])
    assert suspended["status"] == "suspended" and suspended["last_login_at"] is None and suspended["timezone"] == "Asia/Tokyo"
    assert unconfirmed["status"] == "invited"


def test_a_user_without_the_suspended_field_has_an_unknown_status():
    raw = {k: v for k, v in load("core_user_get_users__page1.json")["users"][0].items() if k != "suspended"}
    assert to_user(raw)["status"] == "unknown"


def test_remote_data_is_the_raw_payload_when_asked():
    raw = load("core_user_get_users__page1.json")["users"][0]
    assert to_user(raw, keep_raw=True)["remote_data"] == raw


# ---- courses -------------------------------------------------------------------------------------------------------
def test_the_site_course_is_not_a_course():
    courses = load("core_course_get_courses__page1.json")
    assert [is_site_course(c) for c in courses] == [True, False, False]


def test_to_course_maps_the_documented_course():
    raw = load("core_course_get_courses__page1.json")[1]
    assert to_course(raw, f"{BASE}/course/view.php?id=2", {"3": "Pflichtschulungen"}) == {
        "id": "2", "title": "Arbeitssicherheit – Grundlagen", "description": "<p>Sicher arbeiten.</p>", "code": "K002",
        "type": "course", "status": "published", "language": "de", "duration_seconds": None,
        "urls": [{"url": f"{BASE}/course/view.php?id=2", "type": "web"}],
        "categories": [{"id": "3", "name": "Pflichtschulungen"}], "tags": [],
        "created_at": "2024-01-02T00:00:00Z", "updated_at": "2024-02-01T00:00:00Z",
        "custom_fields": {"idnumber": "AS-01", "format": "topics", "startdate": "2024-01-05T00:00:00Z"},
        "remote_data": None,
    }


def test_a_hidden_course_is_a_draft_and_timemodified_zero_is_null():
    course = to_course(load("core_course_get_courses__page1.json")[2], "u", {})
    assert (course["status"], course["updated_at"], course["language"], course["categories"]) == ("draft", None, None, [{"id": "3", "name": None}])
    assert course["custom_fields"]["enddate"] == "2025-07-01T00:00:00Z"


# ---- enrollments ---------------------------------------------------------------------------------------------------
def test_only_rows_with_a_learner_role_are_learner_enrollments():
    rows = load("core_enrol_get_enrolled_users__page1.json")
    # student, student, editingteacher, teacher + manager, no role at all
    assert [is_learner_row(r) for r in rows] == [True, True, False, False, False]
    assert [is_learner_row(r, frozenset({"student", "teacher"})) for r in rows] == [True, True, False, True, False]


@pytest.mark.parametrize(
    "active, suspended, completed, progress, last_access, expected",
    [
        (False, True, None, None, 0, "withdrawn"),
        (False, False, None, None, 1711000000, "expired"),
        (False, None, None, None, 0, "unknown"),  # before Moodle 3.11: suspended and ended look alike
        (True, False, True, 100, 1711000000, "completed"),
        (True, False, False, 33.3, 0, "in_progress"),
        (True, False, False, 0, 1711000000, "in_progress"),  # visited, nothing completed yet
        (True, False, None, None, 1711000000, "in_progress"),  # completion off: access is all there is
        (True, False, False, 0, 0, "enrolled"),
        (True, None, None, None, 0, "enrolled"),
    ],
)
def test_status_rules_top_to_bottom(active, suspended, completed, progress, last_access, expected):
    assert enrollment_status(active, suspended, completed, progress, last_access) == expected


def test_to_course_enrollment_with_progress_completion_and_score():
    row = load("core_enrol_get_enrolled_users__page1.json")[0]
    progress = load("core_enrol_get_users_courses__page1.json")[0]
    completed_at = completion_time(load("core_completion_get_course_completion_status__page1.json")["completionstatus"])
    score = course_total_percent(load("gradereport_user_get_grade_items__page1.json")["usergrades"][0]["gradeitems"])
    record = to_course_enrollment(row, {"id": "2", "title": "Arbeitssicherheit – Grundlagen"}, f"{BASE}/course/view.php?id=2",
                                  is_active=True, is_suspended=False, progress=progress, completed_at=completed_at, score=score)
    assert record["id"] == "7:2"
    assert record["user"] == {"id": "7", "name": "Zoë Müller", "emails": [{"email": "u7@example.edu", "type": "work", "is_primary": True}]}
    assert record["course"] == {"id": "2", "title": "Arbeitssicherheit – Grundlagen"}
    assert (record["status"], record["progress_percent"], record["score"]) == ("completed", 100, 80.0)
    assert record["completed_at"] == "2024-03-01T10:46:40Z"  # the latest completed criterion
    assert record["last_activity_at"] == "2024-03-21T05:46:40Z"
    assert record["enrolled_at"] is None and record["updated_at"] is None
    assert record["custom_fields"] == {"roles": ["student"]}


def test_an_ungraded_course_total_and_an_incomplete_status_are_null():
    grades = load("gradereport_user_get_grade_items__page1.json")["usergrades"]
    assert course_total_percent(grades[1]["gradeitems"]) is None
    assert course_total_percent([{"itemtype": "mod", "graderaw": 5, "grademax": 10}]) is None
    assert completion_time({"completed": False, "completions": [{"timecompleted": 1709290000}]}) is None
    assert completion_time(None) is None


def test_progress_is_clamped_and_a_suspended_enrolment_keeps_its_last_access():
    row = load("core_enrol_get_enrolled_users__page1.json")[0]
    record = to_course_enrollment(row, {"id": "2"}, "u", is_active=True, is_suspended=False, progress={"progress": 100.0000001})
    assert record["progress_percent"] == 100
    withdrawn = to_course_enrollment(row, {"id": "2"}, "u", is_active=False, is_suspended=True)
    assert withdrawn["status"] == "withdrawn" and withdrawn["last_activity_at"] == "2024-03-21T05:46:40Z"
    assert withdrawn["progress_percent"] is None


# ---- errors ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, failure, words",
    [
        ("error__invalidtoken.json", FailureType.config_error, ["rejected provider.token", "invalidtoken"]),
        ("error__accessexception.json", FailureType.config_error, ["does not hold core_enrol_get_enrolled_users", "External services"]),
        ("error__nopermissions.json", FailureType.config_error, ["lacks a capability", "nopermissions"]),
        ("error__nocriteriaset.json", FailureType.system_error, ["nocriteriaset"]),
    ],
)
def test_exception_bodies_are_classified_on_errorcode(name, failure, words):
    error = moodle_error("core_enrol_get_enrolled_users", load(name))
    assert error.failure_type == failure
    for word in words:
        assert word in error.message
    assert "debuginfo" not in error.message  # debugging output stays in the internal message


def test_a_translated_message_is_still_a_token_error():
    error = moodle_error("core_user_get_users", {"exception": "moodle_exception", "errorcode": "invalidtoken", "message": "Token non valido - il token non è stato trovato"})
    assert error.failure_type == FailureType.config_error and "provider.token" in error.message


def test_the_endpoint_name_is_the_function_never_the_url_with_its_token():
    stream = MoodleUsers(Moodle(config()))
    url = f"{BASE}/webservice/rest/server.php?wstoken={TOKEN}&wsfunction=core_user_get_users&moodlewsrestformat=json"
    assert stream.endpoint_name(url) == "core_user_get_users"
    assert stream.endpoint_name(None) == "core_user_get_users"


def test_learner_roles_must_be_a_list_of_names():
    with pytest.raises(Exception, match="learner_roles"):
        Moodle(config(learner_roles="student"))


# ---- streams over requests-mock --------------------------------------------------------------------------------------
def answer(request, context):
    function = parse_qs(urlsplit(request.url).query)["wsfunction"][0]
    if function == "core_webservice_get_site_info":
        return load("core_webservice_get_site_info.json")
    if function == "core_enrol_get_enrolled_users":
        options = {v[0] for k, v in parse_qs(urlsplit(request.url).query).items() if k.endswith("[name]")}
        rows = load("core_enrol_get_enrolled_users__page1.json")
        if "onlysuspended" in options:
            return [{"id": 8, "fullname": "Kenji Nakamura"}]
        if "onlyactive" in options:
            return [{"id": 7, "fullname": "Zoë Müller"}]
        return rows
    if function == "core_enrol_get_users_courses":
        return load("core_enrol_get_users_courses__page1.json")
    return load(f"{function}__page1.json")


def test_read_sends_the_token_as_wstoken_json_format_and_uses_only_the_functions_the_service_holds():
    with rm.Mocker() as m:
        m.get(SERVER, json=answer)
        output = run_read(config(), mode=SyncMode.full_refresh)
        assert not output.errors
        records = records_by_stream(output)
        sent = [parse_qs(urlsplit(r.url).query) for r in m.request_history]
    assert all(q["wstoken"] == [TOKEN] and q["moodlewsrestformat"] == ["json"] for q in sent)
    functions = [q["wsfunction"][0] for q in sent]
    # The service of this token lacks categories, completion status and grades: none of them is called.
    assert not {"core_course_get_categories", "core_completion_get_course_completion_status", "gradereport_user_get_grade_items"} & set(functions)
    assert [u["id"] for u in records["users"]] == ["7", "8", "9"]
    assert [c["id"] for c in records["courses"]] == ["2", "3"]
    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    assert set(enrollments) == {"7:2", "8:2", "7:3", "8:3"}  # the same roster answers for both courses here
    assert enrollments["7:2"]["status"] == "completed" and enrollments["7:2"].get("completed_at") is None  # no completion function
    assert enrollments["8:2"]["status"] == "withdrawn"
    assert enrollments["7:3"]["status"] == "in_progress"  # course 3 has completion off: no progress call for it
    assert functions.count("core_enrol_get_users_courses") == 1  # user 7 only: the one active learner in a tracked course


def test_an_exception_body_with_status_200_ends_the_read_with_no_records():
    with rm.Mocker() as m:
        m.get(SERVER, json=load("error__invalidtoken.json"))
        output = run_read(config(), streams=["users"], expecting_exception=True)
    assert not output.records
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "core_user_get_users" in error.message and "provider.token" in error.message
    assert TOKEN not in json.dumps([m.log.message for m in output.logs]) + error.message


def test_a_site_without_a_required_function_fails_the_enrollment_read_naming_it():
    info = load("core_webservice_get_site_info.json")
    info["functions"] = [f for f in info["functions"] if f["name"] != "core_enrol_get_enrolled_users"]
    with rm.Mocker() as m:
        m.get(SERVER, json=info)
        output = run_read(config(), streams=["course_enrollments"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "core_enrol_get_enrolled_users" in error.message
    assert len(m.request_history) == 1  # failed before any course was read


def test_an_html_page_instead_of_json_names_the_function():
    with rm.Mocker() as m:
        m.get(SERVER, text="<html><body>Moodle login</body></html>", headers={"Content-Type": "text/html"})
        output = run_read(config(), streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "core_user_get_users" in error.message and "not valid JSON" in error.message
