"""Canvas LMS through the real entrypoint against the fake Canvas: values, paging, throttling, the account."""

from __future__ import annotations

import time

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.canvas import STUDENT_TOKEN
from integration_tests.harness import catalog, final_states, iso, records_by_stream, run_cli, run_read


@pytest.fixture
def fake():
    server = start_fake("canvas", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


def expected_status(app, e):
    """The neutral state as the fake renders it in Canvas, read back through Canvas's meaning."""
    if e.state == "assigned":
        return "assigned"
    if e.state == "withdrawn":
        return "withdrawn"
    if e.state in ("completed", "passed", "failed"):
        # Canvas has no pass/fail per course; without module requirements nothing says "finished"
        return "completed" if app.has_requirements(e.course_id) else "in_progress"
    if e.state == "expired":
        return "expired"  # concluded, its end date past
    return "in_progress" if e.last_activity else "enrolled"


def test_values_match_the_site_data(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    app, data = fake.app, fake.app.data

    users = {u["id"]: u for u in records["users"]}
    person = data.people[3]
    user = users["3"]
    assert user["name"] == f"{person.first_name} {person.last_name}" and user["username"] == person.login
    assert user["emails"] == [{"email": person.email, "type": "work", "is_primary": True}]
    assert (user["created_at"], user["last_login_at"]) == (iso(person.created), iso(person.last_login))
    assert user["locale"] == person.language and user["timezone"] == (person.timezone or "America/Denver")
    assert user.get("updated_at") is None and user.get("status") is None  # Canvas has neither
    assert users["17"]["emails"] == []  # no e-mail address on the site
    assert "18" not in users and "9" in users  # deleted users are not listed; others are

    courses = {c["id"]: c for c in records["courses"]}
    for course in data.courses.values():
        record = courses[str(course.id)]
        assert record["title"] == course.name and record["code"] == course.code
        assert record["status"] == {"active": "published", "inactive": "archived"}[course.status]
        assert record["created_at"] == iso(course.created) and record.get("updated_at") is None
        assert record["categories"] == [{"id": str(app.course_account(course)), "name": None}]
        assert record.get("description") == (course.description or None)

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    learner_rows = [e for e in app.listed_enrollments() if e.role == "learner"]
    assert len(enrollments) == len(learner_rows)
    for row in learner_rows:
        record = enrollments[str(row.id)]
        person = data.people[row.user_id]
        assert record["user"] == {"id": str(row.user_id), "name": f"{person.first_name} {person.last_name}",
                                  "emails": [{"email": person.email, "type": "work", "is_primary": True}] if person.email else []}
        assert record["course"] == {"id": str(row.course_id), "title": data.courses[row.course_id].name}
        assert record["status"] == expected_status(app, row), row
        assert (record["enrolled_at"], record["created_at"]) == (iso(row.enrolled), iso(row.enrolled))
        assert record.get("last_activity_at") == iso(row.last_activity)
        assert record["time_spent_seconds"] == row.time_spent and record.get("score") == row.score
        requirements = app.has_requirements(row.course_id)
        assert record.get("progress_percent") == ((row.progress * 5 // 100) * 20 if requirements else None)
        finished = requirements and row.state in ("completed", "passed", "failed")
        assert record.get("completed_at") == (iso(row.completed) if finished else None)
        assert record["updated_at"] == max(t for t in (iso(row.updated), iso(row.last_activity), record.get("completed_at")) if t)


def test_only_student_enrollments_are_emitted_and_other_roles_stay_in_users():
    with start_fake("canvas", users=30, courses=10, enrollments=60) as fake:
        records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    app = fake.app
    teaching = {str(e.id) for e in app.listed_enrollments() if e.role == "instructor"}
    observers = {str(row["id"]) for c in app.data.courses.values() for row in app.observer_rows(c)}
    assert teaching and observers, "the fake must hold teacher and observer rows for this test to mean anything"
    assert not (teaching | observers) & {r["id"] for r in records["course_enrollments"]}
    # The rows are not asked for at all: the type filter is on the server.
    enrollment_calls = [q for _, p, q in fake.requests if p.endswith("/enrollments")]
    assert enrollment_calls and all(q["type[]"] == ["StudentEnrollment"] for q in enrollment_calls)

    roles = {u["id"]: u.get("role") for u in records["users"]}
    assert roles == expected_roles(app)
    assert {"admin", "instructor", "learner"} <= set(roles.values())


def expected_roles(app, admins_listed=True):
    """user id -> role: an admin of the root account (when /admins may be read), else the highest course role held."""
    held = app.base_types_of(app.root_account_id)
    roles = {}
    for person in app.listed_people():
        types = held.get(person.id, set())
        roles[str(person.id)] = ("admin" if person.role == "admin" and admins_listed
                                 else "instructor" if types & {"TeacherEnrollment", "TaEnrollment", "DesignerEnrollment"}
                                 else "learner" if "StudentEnrollment" in types
                                 else "other" if "ObserverEnrollment" in types
                                 else None)
    return roles


@pytest.mark.parametrize("status", [401, 403])
def test_a_token_that_may_not_list_the_admins_reads_the_users_without_the_admin_role_and_warns_once(status):
    with start_fake("canvas", users=30, courses=10, enrollments=60, admins_status=status) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        admins_calls = server.paths().count("/api/v1/accounts/10/admins")
    app = server.app
    assert not output.errors, output.errors
    records = records_by_stream(output)
    assert {stream: {r["id"] for r in rows} for stream, rows in records.items()} == app.expected_ids()
    admins = [p for p in app.listed_people() if p.role == "admin"]
    assert admins, "the fake must hold admins for this test to mean anything"
    roles = {u["id"]: u.get("role") for u in records["users"]}
    assert roles == expected_roles(app, admins_listed=False) and "admin" not in roles.values()
    assert admins_calls == 1  # refused is refused: not retried
    warnings = [m.log.message for m in output.logs if m.log.level.value == "WARN" and "/admins" in m.log.message]
    assert len(warnings) == 1, warnings
    assert f"GET /api/v1/accounts/10/admins answered HTTP {status}" in warnings[0] and "without the admin role" in warnings[0]
    assert all(app.access_token not in m.log.message for m in output.logs)


def test_paging_follows_the_link_header_across_several_pages_when_canvas_clamps_per_page():
    with start_fake("canvas", users=40, courses=3, enrollments=60, max_per_page=7) as server:
        records = records_by_stream(run_read(server.config(), mode=SyncMode.full_refresh))
        assert {k: {r["id"] for r in v} for k, v in records.items()} == server.app.expected_ids()
        user_pages = [q for _, p, q in server.requests if p == "/api/v1/accounts/10/users" and "enrollment_type" not in q]
        assert len(user_pages) >= 2 * 6  # 38 users in pages of 7, read twice (users stream, enrollment join)
        # First pages ask for 100; later pages are the links Canvas gave, with its clamped size
        assert {q["per_page"][0] for q in user_pages if "page" not in q} == {"100"}
        assert {q["per_page"][0] for q in user_pages if "page" in q} == {"7"}
        bookmarks = [q["page"][0] for _, p, q in server.requests if p.endswith("/enrollments") and "page" in q]
        assert bookmarks and all(b.startswith("bookmark:") for b in bookmarks)  # opaque pages, followed as given


@pytest.mark.parametrize("status", [403, 429])
def test_a_throttled_answer_403_or_429_is_waited_out_by_the_bucket_and_retried(status):
    # Canvas throttled with 403 until October 2025 and with 429 since: both are paced alike. The throttled answer says
    # the bucket is 30 units over its mark; it leaks 10 a second, so the wait is at least 3 s, plus jitter and the
    # CDK's second (a plain 429 backoff would wait under 2 s).
    with start_fake("canvas", users=30, courses=6, enrollments=60, throttle_status=status, throttle_overdraw=30) as server:
        server.add_fault("rate_limit", count=1, match="/api/v1/accounts/10/courses")
        started = time.monotonic()
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["courses"])
        elapsed = time.monotonic() - started
        assert not output.errors
        assert len(records_by_stream(output)["courses"]) == len(server.app.data.courses)
        assert server.paths().count("/api/v1/accounts/10/courses") == 2
    assert elapsed >= 3 + 0.5 + 1
    # The retry line (the CDK's, worded by http_policy.CdkLogWording) says which status it backed off from, and for how long.
    waits = [float(m.log.message.rsplit("Retrying in ", 1)[1].split(" ")[0]) for m in output.logs
             if f"answered HTTP {status}" in m.log.message and "Retrying in " in m.log.message]
    assert len(waits) == 1 and waits[0] >= 3 + 0.5 + 1, waits


def test_the_quota_headers_are_honoured_so_canvas_never_throttles():
    # A small bucket: without pacing, the 7th quick request would be refused with 403.
    with start_fake("canvas", users=12, courses=3, enrollments=20, hwm=60, request_cost=10, outflow=50) as server:
        # One request at a time: the pacer keeps room for one request's up-front cost (50 units).
        output = run_read(server.config(max_concurrency=1), mode=SyncMode.full_refresh, streams=["users", "courses"])
        assert not output.errors
        assert server.app.throttled == 0
        assert len(server.requests) > 6
        assert {u["id"] for u in records_by_stream(output)["users"]} == server.app.expected_ids()["users"]
        assert any("request quota is low" in m.log.message for m in output.logs)


def test_a_403_that_is_not_the_throttle_stays_a_config_error(fake):
    fake.add_fault("error", count=1, match="/api/v1/accounts/10/courses", status=403)
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "HTTP 403" in error.message and "provider.access_token" in error.message
    assert fake.paths().count("/api/v1/accounts/10/courses") == 1  # not retried


def test_without_account_id_the_root_account_is_read_and_resolved_once(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh)
    paths = fake.paths()
    assert paths.count("/api/v1/accounts/self") == 1
    assert not [p for p in paths if p.startswith("/api/v1/accounts/") and p != "/api/v1/accounts/self" and not p.startswith("/api/v1/accounts/10/")]


def test_a_sub_account_reads_only_its_courses_and_their_people(fake):
    config = fake.config()
    config["provider"]["account_id"] = "11"
    records = records_by_stream(run_read(config, mode=SyncMode.full_refresh))
    app = fake.app
    sub_courses = {str(c.id) for c in app.courses_of(11)}
    assert sub_courses and {c["id"] for c in records["courses"]} == sub_courses
    assert {e["course"]["id"] for e in records["course_enrollments"]} <= sub_courses
    assert {u["id"] for u in records["users"]} == {str(p.id) for p in app.people_of(11)}
    assert "/api/v1/accounts/self" not in fake.paths()


def test_check_names_the_field_for_a_missing_account_or_a_non_admin_token(fake, tmp_path):
    config = fake.config()
    config["provider"]["account_id"] = "999"
    status = run_cli(["check"], tmp_path, config=config).connection_status()
    assert status["status"] == "FAILED" and "provider.account_id" in status["message"]

    config = fake.config()
    config["provider"]["access_token"] = STUDENT_TOKEN
    result = run_cli(["check"], tmp_path, config=config)
    status = result.connection_status()
    assert status["status"] == "FAILED"
    assert "user not authorized to perform that action" in status["message"] and "admin" in status["message"]
    assert STUDENT_TOKEN not in result.stdout


def test_wrong_token_during_read_is_a_config_error_and_the_token_never_leaks(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["courses"]))
    assert result.returncode != 0
    errors = result.errors()
    assert errors and errors[0]["failure_type"] == "config_error"
    assert "Invalid access token." in errors[0]["message"] and "provider.access_token" in errors[0]["message"]
    token = bad["provider"]["access_token"]
    assert token not in result.stdout and token not in result.stderr


def test_a_course_deleted_mid_sync_is_skipped_with_a_warning(fake):
    fake.add_fault("not_found", count=1, match="/api/v1/courses/4/bulk_user_progress")
    fake.add_fault("not_found", count=1, match="/api/v1/courses/4/enrollments")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    courses = {r["course"]["id"] for r in records_by_stream(output)["course_enrollments"]}
    assert courses and "4" not in courses
    assert any("/api/v1/courses/4/enrollments" in m.log.message and "404" in m.log.message for m in output.logs)


def test_a_run_killed_mid_stream_resumes_from_its_last_state_without_loss(fake):
    fake.add_fault("malformed", count=1, match="/api/v1/courses/5/enrollments")
    first = run_read(fake.config(), expecting_exception=True)
    assert first.errors and "/api/v1/courses/5/enrollments" in first.errors[0].trace.error.message
    emitted = records_by_stream(first)
    second = run_read(fake.config(), state=final_states(first))
    assert not second.errors
    both = {stream: {r["id"] for r in emitted.get(stream, [])} | {r["id"] for r in records_by_stream(second)[stream]}
            for stream in ("users", "courses", "course_enrollments")}
    assert both == fake.app.expected_ids()


def test_soft_deleted_courses_and_enrollments_are_left_out_and_reported_as_tombstones(fake):
    """Canvas keeps a deleted course or enrollment and lists it when asked for by state; the connector asks for the
    states it emits (never `deleted`), so a deletion shows as the row gone: a tombstone, never a live `deleted` row."""
    import requests

    config = fake.config(deletion_sweep_days=0)
    first = run_read(config)
    assert not first.errors
    deleted = fake.app.delete_sample()
    soft = fake.app.data.deleted["enrollments"]
    enrollment_id = next(i for i in sorted(deleted["course_enrollments"]) if soft[int(i)][0].course_id in fake.app.data.courses)
    gone, when = soft[int(enrollment_id)]  # an enrollment deleted in a course that is still there
    base, headers = config["provider"]["base_url"], {"Authorization": f"Bearer {config['provider']['access_token']}"}
    asked = requests.get(f"{base}/api/v1/courses/{gone.course_id}/enrollments", params={"state[]": ["deleted"], "per_page": 100}, headers=headers, timeout=10).json()
    row = next(r for r in asked if str(r["id"]) == enrollment_id)  # the fake lists it as Canvas does when asked
    assert row["enrollment_state"] == "deleted" and row["updated_at"] == iso(when)
    courses = requests.get(f"{base}/api/v1/accounts/self/courses", params={"state[]": ["all"], "per_page": 100}, headers=headers, timeout=10).json()
    assert {str(c["id"]) for c in courses if c["workflow_state"] == "deleted"} == deleted["courses"]
    fake.clear()

    second = run_read(config, state=final_states(first))
    assert not second.errors
    records = records_by_stream(second)
    for stream in ("users", "courses", "course_enrollments"):
        assert {r["id"] for r in records.get(stream, []) if r.get("_ab_cdc_deleted_at")} == deleted[stream], stream
        assert not [r for r in records.get(stream, []) if r["id"] in deleted[stream] and not r.get("_ab_cdc_deleted_at")], stream
    for _, path, query in fake.requests:
        assert "deleted" not in query.get("state[]", []) and "all" not in query.get("state[]", []), (path, query)
