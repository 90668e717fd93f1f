"""Moodle through the real entrypoint against the fake Moodle web services: values, roles, withheld functions,
old sites, paging, faults, the token in the query string never reaching any output line, and what a real
Moodle 4.5.6 showed (escaped titles, the guest account, inactive enrolments, their grades and completion)."""

from __future__ import annotations


import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.moodle import ACTIVE_STATES, NoData
from integration_tests.harness import catalog, final_states, iso, records_by_stream, run_cli, run_read
from source_lms_enrollments.providers import moodle as provider

OPTIONAL = "core_enrol_get_users_courses,core_completion_get_course_completion_status,gradereport_user_get_grade_items,core_course_get_categories"


@pytest.fixture
def fake():
    server = start_fake("moodle", users=30, courses=8, enrollments=70)
    yield server
    server.stop()


def calls(server, function=None):
    names = [query["wsfunction"][0] for _, _, query in server.requests]
    return names if function is None else names.count(function)


def active(e):
    return e.state in ACTIVE_STATES  # withdrawn (suspended) and expired (window ended) are not


def confirmed(app, user_id):
    return app.user(app.data.people[user_id])["confirmed"]


def expected_status(app, e):
    """What the Moodle rules give for a dataset enrollment rendered by the fake."""
    if not active(e):
        return "unknown"  # Moodle says "not active", not why
    tracked = app.completion_enabled(app.data.courses[e.course_id])
    if tracked and e.state in ("completed", "passed", "failed"):
        return "completed"
    return "in_progress" if (tracked and e.progress > 0) or e.last_activity else "enrolled"


def test_values_match_the_site_data(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    app, data = fake.app, fake.app.data

    users = {u["id"]: u for u in records["users"]}
    person = data.people[2]
    assert users["2"]["name"] == f"{person.first_name} {person.last_name}" and users["2"]["username"] == "user2"
    assert users["2"]["emails"] == [{"email": person.email, "type": "work", "is_primary": True}]
    assert users["2"]["last_login_at"] == iso(person.last_login) and users["2"].get("updated_at") is None
    assert users["9"]["status"] == "suspended" and users["23"]["status"] == "invited" and users["2"]["status"] == "active"
    assert "18" not in users and "17" not in users  # deleted; no e-mail (Moodle's email=% search drops it)
    assert users["4"].get("timezone") is None  # "99": the site default

    courses = {c["id"]: c for c in records["courses"]}
    assert "1" not in courses  # the site course
    for course in data.courses.values():
        record = courses[str(course.id + 1)]
        assert record["title"] == course.name and record["code"] == course.code
        assert record["updated_at"] == iso(course.updated) and record["created_at"] == iso(course.created)
        assert record["status"] == ("draft" if course.status == "inactive" else "published")
        assert record["categories"] == [{"id": course.category[0], "name": course.category[1]}]
        assert record["urls"] == [{"url": f"{fake.url}/course/view.php?id={course.id + 1}", "type": "web"}]

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    learners = [e for e in app.listed_enrollments() if e.role == "learner"]
    assert len(enrollments) == len(learners)
    statuses = set()
    for e in learners:
        record = enrollments[f"{e.user_id}:{e.course_id + 1}"]
        tracked = app.completion_enabled(data.courses[e.course_id])
        done = tracked and active(e) and e.state in ("completed", "passed", "failed") and confirmed(app, e.user_id)
        assert record["status"] == expected_status(app, e), (e, record)
        statuses.add(record["status"])
        assert record["custom_fields"]["enrolment_active"] is active(e)
        assert record.get("last_activity_at") == iso(e.last_activity)
        assert record.get("progress_percent") == (e.progress if tracked and active(e) else None)
        assert record.get("completed_at") == (iso(e.completed) if done else None)  # the latest criterion time
        assert record.get("score") == (round(e.score, 2) if e.score is not None else None)
        assert record["course"]["title"] == data.courses[e.course_id].name
        assert record.get("updated_at") is None
    assert statuses == {"unknown", "completed", "in_progress", "enrolled"}


def test_only_learner_roles_are_enrollments(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"]))
    emitted = {r["id"]: r for r in records["course_enrollments"]}
    teachers = {f"{e.user_id}:{e.course_id + 1}" for e in fake.app.data.enrollments.values() if e.role == "instructor"}
    managers = {f"1:{c.id + 1}" for c in fake.app.data.courses.values() if c.id % 3 == 0}
    assert teachers and managers and not (teachers | managers) & set(emitted)
    dual = [r for r in emitted.values() if r["custom_fields"]["roles"] == ["student", "teacher"]]
    assert dual, "a learner who also holds a teacher role is still a learner enrollment"


def test_learner_roles_option_picks_other_roles(fake):
    config = fake.config()
    config["provider"]["learner_roles"] = ["teacher"]
    records = records_by_stream(run_read(config, mode=SyncMode.full_refresh, streams=["course_enrollments"]))
    assert records["course_enrollments"]
    assert all("teacher" in r["custom_fields"]["roles"] for r in records["course_enrollments"])


def test_call_count_per_sync_is_the_documented_one(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh)
    app = fake.app
    courses = len(app.data.courses)
    learners = [e for e in app.listed_enrollments() if e.role == "learner"]
    active_tracked_users = {e.user_id for e in learners if active(e) and app.completion_enabled(app.data.courses[e.course_id])}
    completed = [e for e in learners if e.state in ("completed", "passed", "failed") and app.completion_enabled(app.data.courses[e.course_id])]
    inactive = [e for e in learners if not active(e)]
    assert inactive and completed and active_tracked_users
    assert calls(fake, "core_webservice_get_site_info") == 1
    assert calls(fake, "core_enrol_get_enrolled_users") == 2 * courses  # every course has learners here, < 500 members
    assert calls(fake, "gradereport_user_get_grade_items") == courses + len(inactive)
    assert calls(fake, "core_enrol_get_users_courses") == len(active_tracked_users)
    assert calls(fake, "core_completion_get_course_completion_status") == len(completed)
    assert len(calls(fake)) == 5 + 3 * courses + len(active_tracked_users) + len(completed) + len(inactive)


def test_enrolled_users_are_paged_with_limitfrom(fake, monkeypatch):
    monkeypatch.setattr(provider.MoodleEnrolledUsers, "page_size", 3)
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    assert {r["id"] for r in records_by_stream(output)["course_enrollments"]} == fake.app.expected_ids()["course_enrollments"]
    offsets = {q.get("options[0][value]", ["?"])[0] for _, _, q in fake.requests if q["wsfunction"] == ["core_enrol_get_enrolled_users"]}
    assert {"0", "3", "6"} <= offsets


def test_optional_functions_withheld_leave_their_fields_null(tmp_path):
    with start_fake("moodle", users=30, courses=6, enrollments=50, withhold=OPTIONAL) as server:
        check = run_cli(["check"], tmp_path, config=server.config())
        assert check.connection_status()["status"] == "SUCCEEDED"
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        assert not output.errors
        records = records_by_stream(output)
        assert {r["id"] for r in records["course_enrollments"]} == server.app.expected_ids()["course_enrollments"]
        assert all(r.get("score") is None and r.get("progress_percent") is None and r.get("completed_at") is None for r in records["course_enrollments"])
        assert all(c["categories"][0].get("name") is None for c in records["courses"])
        for function in OPTIONAL.split(","):
            assert calls(server, function) == 0
            assert any(function in m.log.message and "does not hold" in m.log.message for m in output.logs)


def test_a_required_function_withheld_fails_check_and_read_naming_it(tmp_path):
    with start_fake("moodle", users=10, courses=2, withhold="core_enrol_get_enrolled_users") as server:
        status = run_cli(["check"], tmp_path, config=server.config()).connection_status()
        assert status["status"] == "FAILED"
        assert "core_enrol_get_enrolled_users" in status["message"] and "External services" in status["message"]
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"], expecting_exception=True)
        error = output.errors[0].trace.error
        assert error.failure_type.value == "config_error" and "core_enrol_get_enrolled_users" in error.message


def test_an_exception_body_with_status_200_is_an_error_not_records(fake, monkeypatch):
    def reject(params):
        raise KeyError("criteria")  # the fake answers invalid_parameter_exception, with HTTP 200

    monkeypatch.setattr(fake.app, "core_user_get_users", reject)
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert not output.records
    assert error.failure_type.value == "system_error"
    assert "core_user_get_users" in error.message and "invalidparameter" in error.message


@pytest.mark.parametrize("version", ["2020110900", "2024100706"])  # 3.10, before `onlysuspended` existed; 4.5.6
def test_an_enrolment_that_is_not_active_is_unknown_on_every_version(version):
    with start_fake("moodle", users=30, courses=6, enrollments=50, version=version) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
        assert not output.errors
        sent = [q for _, _, q in server.requests if q["wsfunction"] == ["core_enrol_get_enrolled_users"]]
        assert sent and not any("onlysuspended" in str(q) for q in sent)  # the complement of onlyactive: not read
        records = {r["id"]: r for r in records_by_stream(output)["course_enrollments"]}
        inactive = [e for e in server.app.listed_enrollments() if e.role == "learner" and not active(e)]
        assert {e.state for e in inactive} == {"withdrawn", "expired"}
        for e in inactive:
            record = records[f"{e.user_id}:{e.course_id + 1}"]
            assert (record["status"], record["custom_fields"]["enrolment_active"]) == ("unknown", False)


def test_a_course_deleted_mid_sync_is_skipped_with_a_warning(fake):
    fake.add_fault("not_found", count=1, match="courseid=4&")  # listed by core_course_get_courses, gone when read
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    ids = {r["id"] for r in records_by_stream(output)["course_enrollments"]}
    assert ids and not any(i.endswith(":4") for i in ids)
    assert any("course 4 no longer exists" in m.log.message for m in output.logs)


def test_a_course_skipped_mid_sync_marks_none_of_its_enrollments_deleted(fake):
    config = fake.config(deletion_sweep_days=0)
    first = run_read(config, streams=["course_enrollments"])
    assert not first.errors
    assert any(r["id"].endswith(":4") for r in records_by_stream(first)["course_enrollments"])
    fake.add_fault("not_found", count=1, match="courseid=4&")  # skipped this sync, still there on the site
    second = run_read(config, streams=["course_enrollments"], state=final_states(first))
    assert not second.errors
    assert not [r["id"] for r in records_by_stream(second)["course_enrollments"] if r.get("_ab_cdc_deleted_at")]
    assert any("deletions not checked this sync: course 4 answered invalidrecord" in m.log.message for m in second.logs)
    third = run_read(config, streams=["course_enrollments"], state=final_states(second))  # still compared with the first
    assert not [r["id"] for r in records_by_stream(third)["course_enrollments"] if r.get("_ab_cdc_deleted_at")]


def test_server_errors_and_dropped_connections_are_retried(fake):
    fake.add_fault("error", count=2, match="wsfunction=core_enrol_get_enrolled_users", status=503)
    fake.add_fault("drop", count=1, match="wsfunction=core_course_get_courses")
    output = run_read(fake.config(), mode=SyncMode.full_refresh)
    assert not output.errors
    assert {r["id"] for r in records_by_stream(output)["course_enrollments"]} == fake.app.expected_ids()["course_enrollments"]


def test_malformed_json_names_the_function_not_the_url(fake):
    fake.add_fault("malformed", count=1, match="wsfunction=gradereport_user_get_grade_items")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "gradereport_user_get_grade_items" in error.message and "not valid JSON" in error.message
    assert "wstoken" not in error.message and "server.php" not in error.message


def test_web_services_disabled_403_fails_check_with_the_setting_to_fix(fake, tmp_path):
    fake.add_fault("error", count=5, status=403)
    status = run_cli(["check"], tmp_path, config=fake.config()).connection_status()
    assert status["status"] == "FAILED"
    assert "403" in status["message"] and "web services" in status["message"] and "core_webservice_get_site_info" in status["message"]


def test_on_a_403_only_the_cdk_s_own_lines_quote_the_url_and_with_the_token_masked(fake, tmp_path):
    """What the provider page says: the connector's messages name the function; the CDK's line for a request that
    failed for good quotes the URL, the token masked as ****."""
    fake.add_fault("error", count=5, status=403)
    output = run_cli(["read"], tmp_path, config=fake.config(), catalog_obj=catalog(SyncMode.full_refresh, ["users"]))
    error = output.errors()[0]
    assert error["failure_type"] == "config_error" and "core_user_get_users" in error["message"] and "server.php" not in error["message"]
    lines = output.stdout.splitlines() + output.stderr.splitlines()
    quoting = [line for line in lines if "server.php" in line]
    assert quoting and all("wstoken=****" in line for line in quoting)
    assert not any(fake.app.token in line for line in lines)


# ---- what a real Moodle 4.5.6 showed (../shared/recordings/moodle-4.5.6/) ---------------------------------------------
def test_escaped_course_and_category_names_are_emitted_as_a_person_reads_them(fake):
    data = fake.app.data
    course = data.courses[2]
    course.name, course.code = "Data Structures & Algorithms", "DS&A-201"
    category = course.category
    for other in data.courses.values():
        if other.category == category:
            other.category = (category[0], "Humanities & Arts")
    learner = data.people[next(e.user_id for e in data.enrollments_of_course(2) if e.role == "learner" and data.people[e.user_id].email)]
    learner.first_name = "Tom & Jerry"
    answered = {c["id"]: c for c in fake.app.core_course_get_courses({})}
    assert answered[3]["fullname"] == "Data Structures &amp; Algorithms"  # the fake escapes as Moodle does

    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    courses = {c["id"]: c for c in records["courses"]}
    assert (courses["3"]["title"], courses["3"]["code"]) == ("Data Structures & Algorithms", "DS&A-201")
    assert [c["categories"][0]["name"] for c in courses.values() if c["categories"][0]["id"] == category[0]] == ["Humanities & Arts"] * sum(
        c.category == (category[0], "Humanities & Arts") for c in data.courses.values())
    enrollments = [e for e in records["course_enrollments"] if e["course"]["id"] == "3"]
    assert enrollments and {e["course"]["title"] for e in enrollments} == {"Data Structures & Algorithms"}
    users = {u["id"]: u for u in records["users"]}
    assert users[str(learner.id)]["first_name"] == "Tom & Jerry"  # user names are not escaped: left as they come


def test_the_guest_account_is_listed_but_is_not_a_user(fake):
    listed = fake.app.core_user_get_users({"criteria[0][key]": "email", "criteria[0][value]": "%"})["users"]
    assert [u["username"] for u in listed].count("guest") == 1
    users = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"]))["users"]
    assert "guest" not in {u["username"] for u in users}
    assert {u["id"] for u in users} == fake.app.expected_ids()["users"]


def test_onlysuspended_of_the_fake_is_every_member_not_active(fake):
    course = fake.app.data.courses[3]
    answered = fake.app.core_enrol_get_enrolled_users({"courseid": "4", "options[0][name]": "onlysuspended", "options[0][value]": "1"})
    inactive = {p.id for p, e, _ in fake.app.members(course) if e and not active(e)}
    assert {e.state for e in fake.app.data.enrollments_of_course(3) if e.user_id in inactive} == {"withdrawn", "expired"}
    assert {row["id"] for row in answered} == inactive


def inactive_learners(app):
    return [e for e in app.listed_enrollments() if e.role == "learner" and not active(e) and app.data.people[e.user_id].email]


def grade_calls_of_one_user(server):
    return [(q["courseid"][0], q["userid"][0]) for _, _, q in server.requests if q["wsfunction"] == ["gradereport_user_get_grade_items"] and q["userid"] != ["0"]]


def test_an_inactive_learner_s_score_is_read_with_their_own_userid(fake):
    app = fake.app
    inactive = inactive_learners(app)
    for e in inactive:
        e.score = 77.2  # graded before the enrolment was suspended or ended
    unconfirmed = inactive[0].user_id
    confirmed_of = app.user
    app.user = lambda person: {**confirmed_of(person), "confirmed": person.id != unconfirmed}  # require_active_user refuses them

    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    records = {r["id"]: r for r in records_by_stream(output)["course_enrollments"]}
    for e in inactive:
        assert records[f"{e.user_id}:{e.course_id + 1}"].get("score") == (None if e.user_id == unconfirmed else 77.2), e
    assert sorted(grade_calls_of_one_user(fake)) == sorted((str(e.course_id + 1), str(e.user_id)) for e in inactive)


def test_a_site_that_grades_inactive_learners_in_the_course_answer_costs_no_extra_call():
    with start_fake("moodle", users=30, courses=8, enrollments=70, showonlyactiveenrol=False) as server:
        for e in inactive_learners(server.app):
            e.score = 64.5
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
        records = {r["id"]: r for r in records_by_stream(output)["course_enrollments"]}
        assert all(records[f"{e.user_id}:{e.course_id + 1}"].get("score") == 64.5 for e in inactive_learners(server.app))
        assert grade_calls_of_one_user(server) == []


def test_completion_is_asked_only_of_active_learners_and_usernotenroled_is_no_failure(fake, monkeypatch):
    app = fake.app
    asked = {(q["courseid"][0], q["userid"][0]) for _, _, q in fake.requests if q["wsfunction"] == ["core_completion_get_course_completion_status"]}
    assert not asked
    run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    asked = {(q["courseid"][0], q["userid"][0]) for _, _, q in fake.requests if q["wsfunction"] == ["core_completion_get_course_completion_status"]}
    assert asked and not asked & {(str(e.course_id + 1), str(e.user_id)) for e in inactive_learners(app)}

    def ended(params):  # the enrolment ended between the member list and this call: as the real site answers
        raise NoData("usernotenroled")

    monkeypatch.setattr(app, "core_completion_get_course_completion_status", ended)
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    records = records_by_stream(output)["course_enrollments"]
    assert any(r["status"] == "completed" for r in records) and all(r.get("completed_at") is None for r in records)


def test_a_url_that_is_not_a_moodle_site_fails_check(fake, tmp_path):
    config = fake.config()
    config["provider"]["base_url"] = fake.url + "/not-moodle"
    status = run_cli(["check"], tmp_path, config=config).connection_status()
    assert status["status"] == "FAILED" and "provider.base_url" in status["message"]


def test_the_token_never_appears_in_any_output_line_even_on_errors(fake, tmp_path):
    token = fake.app.token
    outputs = []
    # A wrong token (the bad one must not leak either), during check and read.
    bad = fake.bad_config()
    outputs.append(run_cli(["check"], tmp_path, config=bad))
    outputs.append(run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["users"])))
    # Retried and exhausted server errors during check, a dropped connection, a refused function, malformed JSON.
    fake.add_fault("error", count=4, match="core_webservice_get_site_info", status=503)
    outputs.append(run_cli(["check"], tmp_path, config=fake.config()))
    fake.add_fault("drop", count=1, match="core_user_get_users")
    fake.add_fault("error", count=1, match="core_course_get_courses", status=500)
    fake.add_fault("malformed", count=1, match="core_enrol_get_users_courses")
    outputs.append(run_cli(["read"], tmp_path, config=fake.config(), catalog_obj=catalog(SyncMode.full_refresh)))
    fake.app.withheld.add("core_user_get_users")
    outputs.append(run_cli(["read"], tmp_path, config=fake.config(), catalog_obj=catalog(SyncMode.full_refresh, ["users"])))

    assert outputs[0].connection_status()["status"] == "FAILED" and "rejected provider.token" in outputs[0].connection_status()["message"]
    assert outputs[1].errors()[0]["failure_type"] == "config_error"
    assert outputs[2].connection_status()["status"] == "FAILED"
    assert outputs[3].errors() and outputs[4].errors()[0]["failure_type"] == "config_error"
    assert "core_user_get_users" in outputs[4].errors()[0]["message"]
    for output in outputs:
        lines = output.stdout.splitlines() + output.stderr.splitlines()
        assert lines
        for line in lines:
            assert token not in line and bad["provider"]["token"] not in line, line[:300]
