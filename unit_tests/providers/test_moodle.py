"""Moodle mappers, status rules and error classification on the raw answers of a real Moodle 4.5.6 site
(unit_tests/resources/moodle/, copied from ../shared/recordings/moodle-4.5.6/), and the streams over requests-mock."""

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
    MoodleCompletionStatus,
    MoodleGradeItems,
    MoodleUsers,
    completion_time,
    course_total_percent,
    enrollment_status,
    is_guest,
    is_learner_row,
    is_site_course,
    left_out,
    moodle_error,
    plain_text,
    scores_by_user,
    to_course,
    to_course_enrollment,
    to_user,
)

RESOURCES = Path(__file__).parent.parent / "resources" / "moodle"
BASE = "https://moodle.example.edu"
TOKEN = "abcdef0123456789abcdef0123456789"
SERVER = re.compile(re.escape(f"{BASE}/webservice/rest/server.php"))
SITE = "http://127.0.0.1:8766"  # the recorded site's URL, as it appears in the payloads


def load(name: str):
    return json.loads((RESOURCES / name).read_text())


def config(**provider):
    return {"provider": {"provider_type": "moodle", "base_url": BASE, "token": TOKEN, **provider}}


def recorded_user(user_id: int) -> dict:
    return next(u for u in load("core_user_get_users__all.json")["users"] if u["id"] == user_id)


def recorded_course(course_id: int) -> dict:
    return next(c for c in load("core_course_get_courses__all.json") if c["id"] == course_id)


def recorded_member(user_id: int) -> dict:
    return next(m for m in load("core_enrol_get_enrolled_users__all_members.json") if m["id"] == user_id)


# ---- users ---------------------------------------------------------------------------------------------------------
def test_to_user_maps_a_recorded_user():
    assert to_user(recorded_user(3)) == {
        "id": "3", "name": "Margaret Hamilton", "first_name": "Margaret", "last_name": "Hamilton", "username": "t1.hamilton",
        "emails": [{"email": "t1.hamilton@example.org", "type": "work", "is_primary": True}],
        "status": "active", "role": None, "locale": "en", "timezone": None, "job_title": None,
        "last_login_at": "2026-11-27T00:40:41Z", "created_at": None, "updated_at": None,
        "custom_fields": {"employeeid": "E1003", "institution": "MIT", "idnumber": "T-001", "auth": "manual"},
        "remote_data": None,
    }


def test_user_names_arrive_unescaped_and_stay_so():
    user = to_user(recorded_user(17))
    assert (user["name"], user["first_name"], user["custom_fields"]["institution"]) == ("Tom & Jerry Smith", "Tom & Jerry", "Acme & Co")


def test_suspended_and_unconfirmed_accounts_and_a_missing_suspended_field():
    assert to_user(recorded_user(11))["status"] == "suspended"
    assert to_user(recorded_user(39))["status"] == "invited"
    assert to_user({k: v for k, v in recorded_user(3).items() if k != "suspended"})["status"] == "unknown"


def test_the_guest_account_is_the_only_recorded_user_that_is_not_a_person():
    users = load("core_user_get_users__all.json")["users"]
    assert [u["id"] for u in users if is_guest(u)] == [1]
    assert not is_guest({**recorded_user(1), "auth": "mnet"})  # a person of another MNet site called guest


def test_remote_data_is_the_raw_payload_when_asked():
    raw = recorded_user(17)
    assert to_user(raw, keep_raw=True)["remote_data"] == raw


# ---- courses -------------------------------------------------------------------------------------------------------
def test_the_site_course_is_not_a_course():
    assert [c["id"] for c in load("core_course_get_courses__all.json") if is_site_course(c)] == [1]


def category_names() -> dict:
    return {str(c["id"]): plain_text(c["name"]) for c in load("core_course_get_categories__all.json")}


def test_to_course_gives_the_title_a_person_reads():
    url = f"{BASE}/course/view.php?id=3"
    assert to_course(recorded_course(3), url, category_names()) == {
        "id": "3", "title": "Data Structures & Algorithms", "description": "<p>Lists, trees, graphs.</p>", "code": "ENG201",
        "type": "course", "status": "published", "language": None, "duration_seconds": None,
        "urls": [{"url": url, "type": "web"}], "categories": [{"id": "2", "name": "Engineering"}], "tags": [],
        "created_at": "2026-12-08T00:40:41Z", "updated_at": "2026-12-08T00:40:41Z",
        "custom_fields": {"idnumber": "DSA-2025", "format": "topics", "startdate": "2026-08-10T00:40:41Z"},
        "remote_data": None,
    }


def test_category_names_are_unescaped_and_other_text_is_untouched():
    assert category_names() == {"1": "Category 1", "2": "Engineering", "3": "Humanities & Arts"}
    hidden = to_course(recorded_course(5), "u", category_names())
    assert (hidden["status"], hidden["categories"]) == ("draft", [{"id": "3", "name": "Humanities & Arts"}])
    assert to_course(recorded_course(6), "u", {})["title"] == "Französisch für Anfänger – Niveau A1"  # no entities for non-ASCII


@pytest.mark.parametrize(
    "formatted, text",
    [("Data Structures &amp; Algorithms", "Data Structures & Algorithms"), ("0&ndash;100", "0–100"),
     ("&lt;b&gt; &quot;x&quot; &#39;y&#39;", "<b> \"x\" 'y'"), ("Plain", "Plain"), ("", None), (None, None)],
)
def test_plain_text_reads_moodle_s_entities(formatted, text):
    assert plain_text(formatted) == text


# ---- enrollments ---------------------------------------------------------------------------------------------------
def test_only_rows_with_a_learner_role_are_learner_enrollments():
    rows = load("core_enrol_get_enrolled_users__all_members.json")
    assert [r["id"] for r in rows if not is_learner_row(r)] == [5, 8]  # editingteacher, teacher
    assert [r["id"] for r in rows if is_learner_row(r, frozenset({"teacher"}))] == [8]


def test_onlysuspended_is_every_member_that_onlyactive_leaves_out():
    """Why the connector reads only `onlyactive`: on the real site the two lists split the members in two."""
    everyone = {m["id"] for m in load("core_enrol_get_enrolled_users__all_members.json")}
    active = {m["id"] for m in load("core_enrol_get_enrolled_users__onlyactive.json")}
    suspended = {m["id"] for m in load("core_enrol_get_enrolled_users__onlysuspended.json")}
    assert suspended == everyone - active and not suspended & active
    assert suspended == {9, 15, 24, 28, 10, 13, 25}  # suspended enrolments, windows ended, a window not begun


@pytest.mark.parametrize(
    "active, completed, progress, last_access, expected",
    [
        (False, None, None, 0, "unknown"),  # suspended, ended, not begun, method disabled: Moodle does not say which
        (False, True, 100, 1711000000, "unknown"),  # whatever else is known
        (True, True, 100, 1711000000, "completed"),
        (True, False, 33.3, 0, "in_progress"),
        (True, False, 0, 1711000000, "in_progress"),  # visited, nothing completed yet
        (True, None, None, 1711000000, "in_progress"),  # completion off: access is all there is
        (True, False, 0, 0, "enrolled"),
        (True, None, None, 0, "enrolled"),
    ],
)
def test_status_rules_top_to_bottom(active, completed, progress, last_access, expected):
    assert enrollment_status(active, completed, progress, last_access) == expected


def test_to_course_enrollment_with_recorded_progress_completion_and_score():
    row = recorded_member(16)
    progress = next(c for c in load("core_enrol_get_users_courses__learner.json") if c["id"] == 3)
    completed_at = completion_time(load("core_completion_get_course_completion_status__completed.json")["completionstatus"])
    score = scores_by_user(load("gradereport_user_get_grade_items__all_users.json")["usergrades"])["16"]
    record = to_course_enrollment(row, {"id": "3", "title": plain_text(progress["fullname"])}, f"{BASE}/course/view.php?id=3",
                                  is_active=True, progress=progress, completed_at=completed_at, score=score)
    assert record["id"] == "16:3"
    assert record["user"] == {"id": "16", "name": "Siobhán O'Brien-Ærø", "emails": [{"email": "s08.obrienaero@example.org", "type": "work", "is_primary": True}]}
    assert record["course"] == {"id": "3", "title": "Data Structures & Algorithms"}
    assert (record["status"], record["progress_percent"], record["score"]) == ("completed", 100, 43.34)
    assert record["completed_at"] == "2026-12-08T00:40:43Z"  # the latest completed criterion
    assert record["enrolled_at"] is None and record["updated_at"] is None
    assert record["custom_fields"] == {"roles": ["student"], "enrolment_active": True}


def test_an_enrolment_that_is_not_active_keeps_what_is_known():
    record = to_course_enrollment(recorded_member(10), {"id": "6"}, "u", is_active=False, score=77.2)
    assert (record["status"], record["score"], record["progress_percent"], record["completed_at"]) == ("unknown", 77.2, None, None)
    assert record["custom_fields"]["enrolment_active"] is False


def test_grades_of_all_users_leave_out_inactive_learners_whose_own_answer_has_them():
    everyone = scores_by_user(load("gradereport_user_get_grade_items__all_users.json")["usergrades"])
    assert len(everyone) == 21 and everyone["13"] == 49.1 and everyone["17"] is None  # ungraded: present, null
    assert left_out(["12", "13", "18"], everyone) == ["12", "18"]  # a suspended and an ended enrolment
    assert scores_by_user(load("gradereport_user_get_grade_items__one_inactive_user.json")["usergrades"]) == {"18": 77.2}


def test_course_total_edges_and_completion_times():
    assert course_total_percent([{"itemtype": "mod", "graderaw": 5, "grademax": 10}]) is None
    assert course_total_percent([{"itemtype": "course", "graderaw": 5, "grademin": 0, "grademax": 0}]) is None
    assert completion_time(load("core_completion_get_course_completion_status__not_completed.json")["completionstatus"]) is None
    assert completion_time(None) is None


def test_progress_is_clamped():
    record = to_course_enrollment(recorded_member(16), {"id": "3"}, "u", is_active=True, progress={"progress": 100.0000001})
    assert record["progress_percent"] == 100


# ---- errors ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, failure, words",
    [
        ("core_webservice_get_site_info__error_invalid_token.json", FailureType.config_error, ["rejected provider.token", "invalidtoken"]),
        ("core_enrol_get_enrolled_users__error_not_in_service.json", FailureType.config_error, ["does not hold core_enrol_get_enrolled_users", "External services"]),
        ("core_enrol_get_enrolled_users__error_invalid_parameter.json", FailureType.system_error, ["invalidparameter"]),
        ("error__nopermissions.json", FailureType.config_error, ["lacks a capability", "nopermissions"]),
        ("error__nocriteriaset.json", FailureType.system_error, ["nocriteriaset"]),
    ],
)
def test_exception_bodies_are_classified_on_errorcode(name, failure, words):
    error = moodle_error("core_enrol_get_enrolled_users", load(name))
    assert error.failure_type == failure
    for word in words:
        assert word in error.message


def test_a_translated_message_is_still_a_token_error():
    error = moodle_error("core_user_get_users", {"exception": "moodle_exception", "errorcode": "invalidtoken", "message": "Token non valido - il token non è stato trovato"})
    assert error.failure_type == FailureType.config_error and "provider.token" in error.message


def test_per_learner_calls_read_no_data_for_an_ended_enrolment_or_an_unconfirmed_account():
    ended = load("core_completion_get_course_completion_status__enrolment_ended.json")["errorcode"]
    assert ended == "usernotenroled" and ended in MoodleCompletionStatus.empty_on
    assert "usernotconfirmed" in MoodleCompletionStatus.empty_on and "usernotconfirmed" in MoodleGradeItems.empty_on


def test_the_endpoint_name_is_the_function_never_the_url_with_its_token():
    stream = MoodleUsers(Moodle(config()))
    url = f"{BASE}/webservice/rest/server.php?wstoken={TOKEN}&wsfunction=core_user_get_users&moodlewsrestformat=json"
    assert stream.endpoint_name(url) == "core_user_get_users"
    assert stream.endpoint_name(None) == "core_user_get_users"


def test_learner_roles_must_be_a_list_of_names():
    with pytest.raises(Exception, match="learner_roles"):
        Moodle(config(learner_roles="student"))


# ---- streams over requests-mock, answering with the recordings --------------------------------------------------------
def recorded_site(functions_left_out: tuple[str, ...] = ()):
    """The recorded site: HUM150 (course 6) has members; the other courses answer no members."""
    info = load("core_webservice_get_site_info__default.json")
    info["functions"] = [f for f in info["functions"] if f["name"] not in functions_left_out]

    def answer(request, context):
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        function = query["wsfunction"]
        if function == "core_webservice_get_site_info":
            return info
        if function == "core_enrol_get_enrolled_users":
            options = {v for k, v in query.items() if k.endswith("[name]")}
            if query["courseid"] != "6":
                return []
            return load("core_enrol_get_enrolled_users__onlyactive.json" if "onlyactive" in options else "core_enrol_get_enrolled_users__all_members.json")
        if function == "gradereport_user_get_grade_items":
            return {"usergrades": [], "warnings": []}  # HUM150 has no grade items on the recorded site
        return load({"core_user_get_users": "core_user_get_users__all.json", "core_course_get_courses": "core_course_get_courses__all.json",
                     "core_course_get_categories": "core_course_get_categories__all.json"}[function])
    return answer


def test_a_read_of_the_recorded_site():
    with rm.Mocker() as m:
        m.get(SERVER, json=recorded_site())
        output = run_read(config(), mode=SyncMode.full_refresh)
        assert not output.errors
        records = records_by_stream(output)
        sent = [{k: v[0] for k, v in parse_qs(urlsplit(r.url).query).items()} for r in m.request_history]
    assert all(q["wstoken"] == TOKEN and q["moodlewsrestformat"] == "json" for q in sent)
    users = {u["id"]: u for u in records["users"]}
    assert len(users) == 560 and "1" not in users and "guest" not in {u["username"] for u in users.values()}
    courses = {c["id"]: c for c in records["courses"]}
    assert sorted(courses, key=int) == ["2", "3", "4", "5", "6", "7", "8"]
    assert courses["3"]["title"] == "Data Structures & Algorithms" and courses["6"]["categories"] == [{"id": "3", "name": "Humanities & Arts"}]
    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    assert {e["course"]["title"] for e in enrollments.values()} == {"Französisch für Anfänger – Niveau A1"}
    inactive = {"9:6", "10:6", "13:6", "15:6", "24:6", "25:6", "28:6"}
    assert len(enrollments) == 21 and {i for i, e in enrollments.items() if e["status"] == "unknown"} == inactive
    assert all(e["custom_fields"]["enrolment_active"] is (i not in inactive) for i, e in enrollments.items())
    assert {e["status"] for i, e in enrollments.items() if i not in inactive} == {"in_progress", "enrolled"}  # completion off
    assert not any(q.get(f"options[{i}][name]") == "onlysuspended" for q in sent for i in range(5))
    # Each learner that the course-wide grade answer leaves out is read on their own: here all 7 inactive ones.
    own = sorted(int(q["userid"]) for q in sent if q["wsfunction"] == "gradereport_user_get_grade_items" and q["userid"] != "0")
    assert own == [9, 10, 13, 15, 24, 25, 28]


def test_a_service_without_the_optional_functions_calls_none_of_them():
    withheld = ("core_course_get_categories", "core_completion_get_course_completion_status", "gradereport_user_get_grade_items", "core_enrol_get_users_courses")
    with rm.Mocker() as m:
        m.get(SERVER, json=recorded_site(withheld))
        output = run_read(config(), mode=SyncMode.full_refresh)
        assert not output.errors
        records = records_by_stream(output)
        functions = [parse_qs(urlsplit(r.url).query)["wsfunction"][0] for r in m.request_history]
    assert not set(withheld) & set(functions)
    assert all(c["categories"][0]["name"] is None for c in records["courses"])
    assert all(e.get("score") is None for e in records["course_enrollments"]) and len(records["course_enrollments"]) == 21


def test_an_exception_body_with_status_200_ends_the_read_with_no_records():
    with rm.Mocker() as m:
        m.get(SERVER, json=load("core_webservice_get_site_info__error_invalid_token.json"))
        output = run_read(config(), streams=["users"], expecting_exception=True)
    assert not output.records
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "core_user_get_users" in error.message and "provider.token" in error.message
    assert TOKEN not in json.dumps([m.log.message for m in output.logs]) + error.message


def test_a_site_without_a_required_function_fails_the_enrollment_read_naming_it():
    with rm.Mocker() as m:
        m.get(SERVER, json=recorded_site(("core_enrol_get_enrolled_users",)))
        output = run_read(config(), streams=["course_enrollments"], expecting_exception=True)
        calls = len(m.request_history)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "core_enrol_get_enrolled_users" in error.message
    assert calls == 1  # failed before any course was read


def test_an_html_page_instead_of_json_names_the_function():
    with rm.Mocker() as m:
        m.get(SERVER, text="<html><body>Moodle login</body></html>", headers={"Content-Type": "text/html"})
        output = run_read(config(), streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "core_user_get_users" in error.message and "not valid JSON" in error.message
