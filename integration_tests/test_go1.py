"""Go1 through the real entrypoint against the fake Go1 API: values, paging in offset windows and scrolls,
update_time_gte / updated_time[min] on incremental syncs, token renewal, check and secrets."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.harness import STREAMS, catalog, final_states, records_by_stream, run_cli, run_read

SIZES = dict(users=40, courses=8, enrollments=150)


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def expected_status(e) -> str:
    """The documented rules applied to the row the fake rendered (not-started/in-progress/completed with pass)."""
    if e.state in ("completed", "passed"):
        return "passed"  # completed with pass: true
    if e.state == "failed":
        return "completed"  # completed, pass: false: the API does not say it was failed rather than unscored
    status = "in_progress" if e.state in ("in_progress", "expired") else ("assigned" if e.assigned else "enrolled")
    return "overdue" if e.due and e.due < time.time() else status


def enrollment_queries(server):
    return [query for _, path, query in server.requests if path == "/enrollments"]


def test_full_read_through_the_entrypoint_values_and_exact_counts(tmp_path):
    with start_fake("go1", **SIZES) as server:
        result = run_cli(["read"], tmp_path, config=server.config(), catalog_obj=catalog(SyncMode.full_refresh))
        app, data = server.app, server.app.data
    assert result.returncode == 0, result.errors()
    records = {stream: result.records(stream) for stream in STREAMS}
    for stream, ids in app.expected_ids().items():
        assert sorted(r["id"] for r in records[stream]) == sorted(ids), stream

    users = {u["id"]: u for u in records["users"]}
    for person in app.listed_people():
        user = users[str(person.id)]
        assert user["name"] == f"{person.first_name} {person.last_name}" and user["username"] == person.login
        assert user.get("emails", []) == ([{"email": person.email, "type": "work", "is_primary": True}] if person.email else [])
        assert user["status"] == ("active" if person.status == "active" else "inactive")
        assert user["role"] == person.role and user["updated_at"] == iso(max(person.updated, person.created))
        assert user.get("locale") == person.language

    courses = {c["id"]: c for c in records["courses"]}
    for course in data.courses.values():
        record = courses[str(course.id)]
        assert record["title"] == course.name and record["type"] == course.kind
        assert record["status"] == ("archived" if course.status == "inactive" else "published")
        assert record["updated_at"] == iso(course.updated) and record["categories"] == [{"id": course.category[0], "name": course.category[1]}]
    assert not any(c["id"].startswith("1000") for c in records["courses"])  # modules are not enrollable on their own

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    for e in app.listed_enrollments():
        record = enrollments[app.enrollment_record_id(e)]
        assert record["user"]["id"] == str(e.user_id) and record["course"]["id"] == str(e.course_id)
        assert record["status"] == expected_status(e), e.state
        assert record["updated_at"] == iso(e.updated) and record.get("due_at") == iso(e.due)
        assert record.get("completed_at") == (iso(e.completed) if e.state in ("completed", "passed", "failed") else None)
        assert record.get("assigned_by") == ({"id": "1", "name": None} if e.assigned else None)


def test_past_the_offset_ceiling_the_walk_moves_to_a_new_window(monkeypatch):
    from source_lms_enrollments.providers import go1

    # A ceiling of 100 results (10,000 documented) on both sides makes the enrollments span two offset windows.
    monkeypatch.setattr(go1.Go1CourseEnrollments, "offset_results_limit", 100)
    with start_fake("go1", offset_results_limit=100, **SIZES) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
        expected = server.app.expected_ids()["course_enrollments"]
        queries = enrollment_queries(server)
    assert not output.errors, output.errors
    ids = [r["id"] for r in records_by_stream(output)["course_enrollments"]]
    assert len(expected) > 100 and len(ids) == len(set(ids)) and set(ids) == expected
    assert all(int(q["offset"][0]) + int(q["limit"][0]) <= 100 for q in queries)
    windows = [q for q in queries if q["offset"] == ["0"]]
    assert len(windows) == 2 and "update_time_gte" not in windows[0] and windows[1]["update_time_gte"]
    assert all(q["sort"] == ["updated_time"] and q["order"] == ["asc"] and q["limit"] == ["50"] for q in queries)


def test_incremental_sends_update_time_gte_and_updated_time_min_after_a_sweep():
    with start_fake("go1", **SIZES) as server:
        first = run_read(server.config())
        assert not first.errors
        state = final_states(first)
        changed = server.app.touch_sample()
        server.requests.clear()
        second = run_read(server.config(), state=state)
        enrollment_calls = enrollment_queries(server)
        lo_calls = [query for _, path, query in server.requests if path == "/learning-objects"]
    assert not second.errors
    emitted = records_by_stream(second)
    for stream in ("courses", "course_enrollments"):
        ids = {r["id"] for r in emitted[stream]}
        assert changed[stream] <= ids
        # besides what changed, only what changed in the cursor's own second (>= is inclusive)
        assert all(r["updated_at"] == state[stream]["updated_at"] for r in emitted[stream] if r["id"] not in changed[stream])
    assert enrollment_calls == [{"limit": ["50"], "offset": ["0"], "sort": ["updated_time"], "order": ["asc"],
                                 "update_time_gte": [state["course_enrollments"]["updated_at"]]}]
    assert len(lo_calls) == 3 and all(q["updated_time[min]"] == [state["courses"]["updated_at"]] for q in lo_calls)


def test_learning_objects_scroll_with_the_documented_limit_per_state():
    with start_fake("go1", **SIZES) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["courses"])
        calls = [query for _, path, query in server.requests if path == "/learning-objects"]
    assert not output.errors
    assert [q["state[]"] for q in calls] == [["draft", "published"], ["retired"], ["removed"]]
    assert all(q["use_scroll"] == ["true"] and q["limit"] == ["5000"] and q["collection"] == ["subscribe"] for q in calls)


def test_a_token_that_expires_mid_sync_is_renewed():
    # Tokens of 2 s (12 h documented): the connector renews them ahead of expiry; the fake answers 401 to an old one.
    with start_fake("go1", token_ttl=2, latency_ms=300, **SIZES) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        issued = server.app.tokens_issued
    assert not output.errors, output.errors
    assert issued >= 2
    assert {s: len(r) for s, r in records_by_stream(output).items()} == {s: len(ids) for s, ids in server.app.expected_ids().items()}


def test_check_and_a_wrong_secret_never_shows_the_secret(tmp_path):
    with start_fake("go1", **SIZES) as server:
        good = run_cli(["check"], tmp_path, config=server.config())
        bad = run_cli(["check"], tmp_path, config=server.bad_config())
        secret = server.bad_config()["provider"]["client_secret"]
    assert good.connection_status()["status"] == "SUCCEEDED"
    status = bad.connection_status()
    assert status["status"] == "FAILED" and "provider.client_id" in status["message"] and "invalid_client" in status["message"]
    assert secret not in bad.stdout and secret not in bad.stderr


def test_the_api_version_header_is_sent_on_every_call():
    with start_fake("go1", **SIZES) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        calls = server.app.calls
    # The fake answers 400 to a call without the documented Api-Version, so a complete read proves every call had it.
    assert not output.errors and {path for path, _ in calls} == {"/user-accounts", "/learning-objects", "/enrollments"}


def test_requests_per_sync_first_and_incremental():
    with start_fake("go1", users=200, courses=20, enrollments=600) as server:
        first = run_read(server.config())
        first_calls = [path for _, path, _ in server.requests]
        server.requests.clear()
        server.app.touch_sample()
        second = run_read(server.config(), state=final_states(first))
        second_calls = [path for _, path, _ in server.requests]
        listed = len(server.app.listed_enrollments())
        people = len(server.app.listed_people())
    assert not first.errors and not second.errors
    pages, user_pages = -(-listed // 50), -(-people // 50)
    # First sync: token, ⌈users/50⌉ account pages, 3 learning-object scrolls, ⌈enrollments/50⌉ enrollment pages.
    assert first_calls.count("/oauth/token") == 1 and first_calls.count("/user-accounts") == user_pages
    assert first_calls.count("/learning-objects") == 3 and first_calls.count("/enrollments") == pages
    # Incremental: users again in full (no filter), 3 filtered scrolls, one page of changed enrollments.
    assert second_calls.count("/user-accounts") == user_pages and second_calls.count("/learning-objects") == 3
    assert second_calls.count("/enrollments") == 1
