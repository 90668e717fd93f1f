"""iSpring Learn through the real entrypoint against the fake iSpring Learn v3: values in JSON and XML, paging,
token expiry mid-sync, incremental, secrets and faults."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.ispring_learn import uid
from integration_tests.harness import STREAMS, catalog, final_states, iso, records_by_stream, run_cli, run_read

SIZES = dict(users=30, courses=6, enrollments=60)


def expected_status(app, e) -> str:
    """The documented rules (providers doc §4.2) applied to the dataset row the fake rendered."""
    now = time.time()
    if e.state in ("completed", "passed", "failed"):
        return e.state
    if e.expires and e.expires < now:
        return "expired"
    if e.due and e.due < now:
        return "overdue"
    if e.state in ("in_progress", "expired"):
        return "in_progress" if e.progress else ("assigned" if app.group(e) == 0 else "enrolled")
    return "assigned" if app.group(e) == 0 else "enrolled"


def ok_pages(app, path: str) -> Counter:
    return Counter(token for p, token, status in app.calls if p == path and status == 200)


@pytest.mark.parametrize("xml", [False, True], ids=["json", "xml"])
def test_full_read_values_and_exact_counts(xml):
    with start_fake("ispring_learn", max_page_size=7, xml=xml, **SIZES) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        app, data = server.app, server.app.data
    assert not output.errors, output.errors
    records = records_by_stream(output)
    assert {s: len(records[s]) for s in STREAMS} == {s: len(ids) for s, ids in app.expected_ids().items()}
    for stream in STREAMS:
        assert {r["id"] for r in records[stream]} == app.expected_ids()[stream]
    assert all("application/json" in accept for accept in app.accepts)  # JSON asked for, whatever came back

    users = {u["id"]: u for u in records["users"]}
    assert len(users) == len(data.people)  # inactive and terminated users are listed too
    for person in data.people.values():
        user = users[uid("user", person.id)]
        assert user["name"] == f"{person.first_name} {person.last_name}" and user["username"] == person.login
        assert user["emails"] == ([{"email": person.email, "type": "work", "is_primary": True}] if person.email else [])
        assert user["status"] == person.status  # 1 active, 3 inactive, 5 (employment ended) deleted
        assert user["role"] == {"admin": "admin", "manager": "admin", "instructor": "instructor", "learner": "learner"}[person.role]
        assert user["created_at"] == iso(person.created) and user.get("last_login_at") == iso(person.last_login)
        assert user.get("updated_at") is None
        assert user["custom_fields"] == {"department": person.custom["department"] or None}

    courses = {c["id"]: c for c in records["courses"]}
    for course in data.courses.values():
        record = courses[uid("content", course.id)]
        assert record["title"] == course.name and record["type"] == course.kind
        assert record["created_at"] == iso(course.created) and record["status"] == "unknown"
        assert record.get("description") == (course.description or None)

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    rows = app.listed_enrollments()
    assert rows and any(not app.result_has_enrollment_id(e) for e in rows)  # joined on the pair then
    for e in rows:
        record = enrollments[uid("enrollment", e.id)]
        person = data.people[e.user_id]
        assert record["user"]["id"] == uid("user", e.user_id) and record["user"]["name"] == f"{person.first_name} {person.last_name}"
        assert record["course"] == {"id": uid("content", e.course_id), "title": data.courses[e.course_id].name}
        assert record["status"] == expected_status(app, e), (e.state, e.progress)
        by_admin = app.group(e) == 0
        assert record["is_mandatory"] is by_admin
        assert record.get("assigned_at") == (iso(e.enrolled) if by_admin else None)
        assert record["enrolled_at"] == iso(e.enrolled) and record.get("due_at") == iso(e.due)
        assert record.get("completed_at") == (iso(e.completed) if e.state in ("completed", "passed", "failed") else None)
        assert record["progress_percent"] == e.progress and record["time_spent_seconds"] == e.time_spent
        assert record.get("score") == e.score
        assert record.get("updated_at") is None
        certificate = record["custom_fields"].get("issuedCertificateId")
        assert certificate == (uid("certificate", e.id) if e.state in ("completed", "passed") else None)
    statuses = Counter(r["status"] for r in records["course_enrollments"])
    assert {"assigned", "enrolled", "in_progress", "completed", "passed", "failed", "expired", "overdue"} <= set(statuses), statuses


def test_every_page_is_read_once_by_token():
    with start_fake("ispring_learn", max_page_size=4, **SIZES) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["users"])
        pages = ok_pages(server.app, "/users/v2")
    assert not output.errors
    assert len(pages) == -(-SIZES["users"] // 4) and set(pages.values()) == {1}
    assert len(records_by_stream(output)["users"]) == SIZES["users"]


def test_a_sync_outliving_its_token_renews_it_ahead_of_expiry():
    # Tokens live 1.5 s and say so: the connector renews them before they expire, so no call is ever refused.
    with start_fake("ispring_learn", max_page_size=5, latency_ms=120, token_ttl=1.5, **SIZES) as server:
        started = time.monotonic()
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        elapsed = time.monotonic() - started
        app = server.app
    assert not output.errors, output.errors
    assert elapsed > 3 and app.tokens_issued >= 3
    assert not [c for c in app.calls if c[2] == 401]
    records = records_by_stream(output)
    assert {s: {r["id"] for r in records[s]} for s in STREAMS} == app.expected_ids()
    assert all(len(records[s]) == len(app.expected_ids()[s]) for s in STREAMS)


def test_a_token_dying_before_its_announced_expiry_is_renewed_and_no_page_is_lost_or_repeated():
    # The token says 30 minutes but dies after 3 s (revoked, clock skew): the 401 renews it and retries that page
    # (after the CDK's backoff of at most 2 s, well within the new token's life).
    with start_fake("ispring_learn", max_page_size=2, latency_ms=250, token_ttl=3, advertised_ttl=1800, **SIZES) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["users"])
        app = server.app
        refused = [c for c in app.calls if c[2] == 401]
        pages = ok_pages(app, "/users/v2")
    assert not output.errors, output.errors
    assert refused and app.tokens_issued == 1 + len(refused)
    assert len(pages) == SIZES["users"] // 2 and set(pages.values()) == {1}  # each page answered once
    assert all(token in pages for _, token, _ in refused)  # each refused page was read after all
    ids = [r["id"] for r in records_by_stream(output)["users"]]
    assert len(ids) == len(set(ids)) == SIZES["users"]


@pytest.mark.parametrize("xml", [False, True], ids=["json", "xml"])
def test_incremental_sync_after_changes_emits_everything_with_the_changes(xml):
    with start_fake("ispring_learn", xml=xml, **SIZES) as server:
        first = run_read(server.config())
        assert not first.errors
        state = final_states(first)
        changed = server.app.touch_sample()
        second = run_read(server.config(), state=state)
        app = server.app
    assert not second.errors
    emitted = records_by_stream(second)
    # No iSpring record has a modification time (updated_at null): every sync emits all of them, new values included.
    for stream in STREAMS:
        assert {r["id"] for r in emitted[stream]} == app.expected_ids()[stream]
        assert changed[stream]
    users = {u["id"]: u for u in emitted["users"]}
    assert all(users[i]["last_name"].endswith(" Jr") for i in changed["users"])
    courses = {c["id"]: c for c in emitted["courses"]}
    assert all(courses[i]["title"].endswith(" (v2)") for i in changed["courses"])
    enrollments = {e["id"]: e for e in emitted["course_enrollments"]}
    for e in app.listed_enrollments():
        if uid("enrollment", e.id) in changed["course_enrollments"]:
            record = enrollments[uid("enrollment", e.id)]
            assert record["progress_percent"] == e.progress and record["time_spent_seconds"] == e.time_spent
    assert all("updated_at" not in value for value in final_states(second).values())  # no cursor: nothing to filter on


def test_check_with_a_wrong_secret_names_the_fields_and_keeps_the_secret(tmp_path):
    with start_fake("ispring_learn", **SIZES) as server:
        bad = server.bad_config()
        result = run_cli(["check"], tmp_path, config=bad)
        good = run_cli(["check"], tmp_path, config=server.config())
    status = result.connection_status()
    assert status["status"] == "FAILED"
    assert "POST /api/v3/token answered HTTP 401: Invalid client credentials" in status["message"]
    assert "provider.client_id" in status["message"] and "provider.client_secret" in status["message"]
    assert bad["provider"]["client_secret"] not in result.stdout + result.stderr
    assert good.connection_status()["status"] == "SUCCEEDED"


def test_check_against_an_xml_host_succeeds(tmp_path):
    with start_fake("ispring_learn", xml=True, **SIZES) as server:
        result = run_cli(["check"], tmp_path, config=server.config())
    assert result.connection_status()["status"] == "SUCCEEDED"


def test_read_with_a_wrong_secret_is_a_config_error(tmp_path):
    with start_fake("ispring_learn", **SIZES) as server:
        bad = server.bad_config()
        result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["users"]))
    errors = result.errors()
    assert result.returncode != 0 and errors[0]["failure_type"] == "config_error"
    assert "provider.client_secret" in errors[0]["message"]
    assert bad["provider"]["client_secret"] not in result.stdout + result.stderr


def test_rate_limit_and_server_errors_are_waited_out():
    with start_fake("ispring_learn", **SIZES) as server:
        server.add_fault("rate_limit", count=1, match="/learners/results", retry_after=1)
        server.add_fault("error", count=2, match="/enrollments", status=503)
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
        expected = server.app.expected_ids()["course_enrollments"]
    assert not output.errors
    assert {r["id"] for r in records_by_stream(output)["course_enrollments"]} == expected


def test_malformed_xml_ends_the_stream_with_a_system_error_naming_the_endpoint():
    with start_fake("ispring_learn", xml=True, **SIZES) as server:
        server.add_fault("malformed", count=1, match="/contents")
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["courses"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error"
    assert "/contents" in error.message and "not valid XML" in error.message


def test_a_user_whose_employment_ended_is_not_a_deletion():
    """Status 5 ("Employment Ended") maps to `deleted` but iSpring keeps the account and its results: the user is
    still listed, never marked deleted (no remote_deleted_at, no tombstone), in any sync."""
    with start_fake("ispring_learn", **SIZES) as server:
        people = server.app.data.people
        already = next(p for p in people.values() if p.status == "deleted")
        leaver = next(p for p in people.values() if p.status == "active" and p.id != 1)
        first = run_read(server.config())
        leaver.status = "deleted"  # employment ended between the syncs
        second = run_read(server.config(), state=final_states(first))
        third = run_read(server.config(), state=final_states(second))
        full = run_read(server.config(), mode=SyncMode.full_refresh)
    for output in (first, second, third, full):
        assert not output.errors
        users = {u["id"]: u for u in records_by_stream(output)["users"]}
        assert users[uid("user", already.id)]["status"] == "deleted"
        assert all(u.get("remote_deleted_at") is None and not u.get("_ab_cdc_deleted_at") for u in users.values())
    assert {u["id"]: u for u in records_by_stream(second)["users"]}[uid("user", leaver.id)]["status"] == "deleted"
