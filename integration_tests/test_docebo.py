"""Docebo through the real entrypoint against the fake Docebo: values, paging, server-side incremental, both
grants, token renewal, rate limits, secrets."""

from __future__ import annotations

import time

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.docebo import CLIENT_SECRET, PASSWORD
from integration_tests.harness import STREAMS, catalog, final_states, iso, records_by_stream, run_cli, run_read
from source_lms_enrollments.providers import docebo


@pytest.fixture
def fake():
    # 450 users and 900 enrollments: three and five pages of 200, so paging is exercised.
    server = start_fake("docebo", users=450, courses=12, enrollments=900)
    yield server
    server.stop()


EXPECTED_STATUS = {"not_started": "enrolled", "in_progress": "in_progress", "completed": "completed", "passed": "completed",
                   "failed": "completed", "expired": "expired", "withdrawn": "withdrawn", "assigned": "assigned"}


def queries_of(server, path):
    return [query for _, p, query in server.requests if p == path]


def test_values_match_the_platform_data(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    data = fake.app.data

    users = {u["id"]: u for u in records["users"]}
    assert len(records["users"]) == len(users) == len(fake.app.listed_people())  # three pages, no repeats
    person = data.people[2]
    assert users["2"]["name"] == f"{person.first_name} {person.last_name}" and users["2"]["username"] == "user2"
    assert users["2"]["updated_at"] == iso(person.updated) and users["2"]["created_at"] == iso(person.created)
    assert users["1"]["role"] == "admin" and users["13"]["role"] == "manager" and users["2"]["role"] == "learner"
    assert users["9"]["status"] == "suspended" and users["27"]["status"] == "suspended"
    assert users["6"].get("last_login_at") is None  # 0000-00-00 on the platform
    assert "18" not in users  # deleted users are gone
    assert users["17"]["emails"] == [] and users["2"]["custom_fields"] == {"field_12": person.custom["department"]}

    courses = {c["id"]: c for c in records["courses"]}
    assert set(courses) == {str(c.id) for c in fake.app.listed_courses()}  # learning plans are not courses
    for course in fake.app.listed_courses():
        record = courses[str(course.id)]
        assert record["title"] == course.name and record["updated_at"] == iso(course.updated)
        assert record.get("duration_seconds") == course.duration_seconds

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    learner_rows = [e for e in fake.app.listed_enrollments() if e.role == "learner"]
    assert len(records["course_enrollments"]) == len(enrollments) == len(learner_rows)
    for row in learner_rows:
        record = enrollments[f"{row.user_id}:{row.course_id}"]
        person = data.people[row.user_id]
        assert record["user"]["name"] == f"{person.first_name} {person.last_name}", row
        assert record["course"]["title"] == data.courses[row.course_id].name
        assert record["status"] == EXPECTED_STATUS[row.state], row
        assert record["updated_at"] == iso(row.updated) and record["time_spent_seconds"] == row.time_spent
    assert fake.paths().count("/learn/v1/enrollments") == 5


def test_every_list_is_sorted_on_a_unique_key_and_paged_by_200(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh)
    users = queries_of(fake, "/manage/v1/user")
    assert [q["page"] for q in users[:3]] == [["1"], ["2"], ["3"]]
    assert all(q["page_size"] == ["200"] and q["sort_attr"] == ["username"] and q["sort_dir"] == ["asc"] for q in users)
    assert all(q["sort_by"] == ["id_course"] and q["sort_by_direction"] == ["asc"] for q in queries_of(fake, "/learn/v1/courses"))
    enrollments = queries_of(fake, "/learn/v1/enrollments")
    assert "cursor" not in enrollments[0] and all(q["cursor"] == enrollments[1]["cursor"] for q in enrollments[1:])


def test_without_the_sort_pages_repeat_and_skip_users(fake, monkeypatch):
    # Proves the fake imitates the unstable order Docebo users report, so the test above means something.
    monkeypatch.setattr(docebo.DoceboUsers, "sort_params", {})
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"]))["users"]
    assert len({r["id"] for r in records}) < len(fake.app.listed_people())


def test_an_incremental_sync_asks_only_for_changed_records(fake):
    first = run_read(fake.config())
    assert not first.errors
    state = final_states(first)
    changed = fake.app.touch_sample()
    fake.clear()
    fake.app.served.clear()

    second = run_read(fake.config(), state=state)
    assert not second.errors
    emitted = records_by_stream(second)
    for stream in STREAMS:
        assert changed[stream] <= {r["id"] for r in emitted[stream]}, stream

    for path, stream, rows in (("/learn/v1/courses", "courses", fake.app.listed_courses()),
                               ("/learn/v1/enrollments", "course_enrollments", fake.app.listed_enrollments())):
        since = state[stream]["updated_at"]
        assert queries_of(fake, path)[0]["updated_from"] == [since.replace("T", " ").rstrip("Z")]
        # What the platform served: the changed rows and those changed in the cursor's own second, nothing else.
        expected = [r for r in rows if iso(r.updated) >= since]
        assert fake.app.served[path] == len(expected) <= len(changed[stream]) + 3, path
    assert len(queries_of(fake, "/learn/v1/enrollments")) == 1
    # Users have no server-side filter: read in full, filtered here; only the changed ones are emitted.
    assert {r["id"] for r in emitted["users"]} - changed["users"] <= {r["id"] for r in emitted["users"] if r["updated_at"] == state["users"]["updated_at"]}


@pytest.mark.parametrize("grant", ["client_credentials", "password"])
def test_both_grants_read_everything(grant, tmp_path):
    with start_fake("docebo", users=30, courses=6, enrollments=60, grant=grant) as server:
        result = run_cli(["check"], tmp_path, config=server.config())
        assert result.connection_status()["status"] == "SUCCEEDED"
        records = records_by_stream(run_read(server.config(), mode=SyncMode.full_refresh))
        assert {stream: {r["id"] for r in records[stream]} for stream in STREAMS} == server.app.expected_ids()
        assert set(server.app.grants) == {grant}


def test_a_wrong_password_names_username_and_password(tmp_path):
    with start_fake("docebo", users=5, courses=2, enrollments=5, grant="password") as server:
        config = server.config()
        config["provider"]["password"] = "not-" + PASSWORD
        result = run_cli(["check"], tmp_path, config=config)
    status = result.connection_status()
    assert status["status"] == "FAILED" and "invalid_grant" in status["message"]
    assert "provider.username and provider.password" in status["message"]
    assert PASSWORD not in result.stdout and config["provider"]["password"] not in result.stdout


def test_a_wrong_secret_during_read_is_a_config_error_and_no_secret_or_token_leaks(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["users"]))
    assert result.returncode != 0
    error = result.errors()[0]
    assert error["failure_type"] == "config_error"
    assert "invalid_client" in error["message"] and "provider.client_secret" in error["message"]
    good = run_cli(["read", "--debug"], tmp_path, config=fake.config(), catalog_obj=catalog(SyncMode.full_refresh, ["users"]))
    assert good.returncode == 0
    for secret in (bad["provider"]["client_secret"], CLIENT_SECRET, *fake.app.tokens):
        assert secret not in result.stdout + result.stderr and secret not in good.stdout + good.stderr


def test_a_token_revoked_mid_sync_is_renewed_on_401(tmp_path):
    with start_fake("docebo", users=450, courses=6, enrollments=60, revoke_after=2) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        assert not output.errors, output.errors
        records = records_by_stream(output)
        assert {stream: {r["id"] for r in records[stream]} for stream in STREAMS} == server.app.expected_ids()
        assert len(server.app.grants) >= 2


def test_a_token_that_expires_during_the_sync_is_renewed(tmp_path):
    # A 4-second token over nine pages of 0.5 s: it runs out mid-stream, yet outlives one retry's backoff.
    with start_fake("docebo", users=1700, courses=6, enrollments=60, token_ttl=4, latency_ms=500) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["users"])
        assert not output.errors, output.errors
        assert len(records_by_stream(output)["users"]) == len(server.app.listed_people())
        assert len(server.app.grants) >= 2


@pytest.mark.parametrize("kind, options", [("rate_limit", {"retry_after": 1}), ("error", {"status": 503, "retry_after": 1})])
def test_429_and_503_are_waited_out(fake, kind, options):
    fake.add_fault(kind, count=1, match="/learn/v1/courses", **options)
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors
    assert len(records_by_stream(output)["courses"]) == len(fake.app.listed_courses())
    assert fake.paths().count("/learn/v1/courses") == 2
    assert time.monotonic() - started >= 1.0


def test_a_run_killed_mid_stream_resumes_from_its_last_state_without_loss(fake):
    fake.add_fault("malformed", count=1, match="/learn/v1/enrollments")
    first = run_read(fake.config(), expecting_exception=True)
    assert first.errors
    states = {m.state.stream.stream_descriptor.name: m.state.stream.stream_state.__dict__ for m in first.state_messages}
    emitted = records_by_stream(first)
    second = run_read(fake.config(), state=states)
    assert not second.errors
    both = {stream: {r["id"] for r in emitted.get(stream, [])} | {r["id"] for r in records_by_stream(second)[stream]}
            for stream in STREAMS}
    assert both == fake.app.expected_ids()


# ---- deletions at the default cadence (design.md §5a): courses and enrollments are filtered on the server, so their
# deletions show only in a sweep, every deletion_sweep_days (7 by default); users are read in full every sync.
def pages(rows: int) -> int:
    return max(1, -(-rows // docebo.PAGE_SIZE))


def list_calls(server) -> dict[str, int]:
    return {stream: len(queries_of(server, path)) for stream, path in server.app.stream_paths.items()}


def tombstone_ids(output) -> dict[str, set[str]]:
    records = records_by_stream(output)
    return {stream: {r["id"] for r in records.get(stream, []) if r.get("_ab_cdc_deleted_at")} for stream in STREAMS}


def days_ago(days: float) -> str:
    return iso(time.time() - days * 86400)


def test_the_default_cadence_sweeps_courses_and_enrollments_once_a_week(fake):
    config = fake.config()  # deletion_sweep_days left at its default
    first = run_read(config)
    assert not first.errors
    state = final_states(first)
    for stream in ("courses", "course_enrollments"):
        assert state[stream]["swept_at"] >= days_ago(0.01)  # a first sync lists everything: it is a sweep
    deleted = fake.app.delete_sample()
    assert all(deleted.values())
    fake.clear()

    # A moment later: no sweep due. Courses and enrollments send updated_from and see no deletion; users are read in
    # full, so the deleted user's tombstone is there.
    normal = run_read(config, state=state)
    assert not normal.errors
    assert tombstone_ids(normal) == {"users": deleted["users"], "courses": set(), "course_enrollments": set()}
    for stream, path in (("courses", "/learn/v1/courses"), ("course_enrollments", "/learn/v1/enrollments")):
        assert all(query.get("updated_from") for query in queries_of(fake, path)), stream
    normal_calls = list_calls(fake)
    state = {**state, **final_states(normal)}
    for stream in ("courses", "course_enrollments"):
        assert state[stream]["swept_at"] == final_states(first)[stream]["swept_at"]  # no sweep: its time stays

    # The last sweep 8 days ago: this sync lists everything (no updated_from) and reports what the last one missed.
    for stream in ("courses", "course_enrollments"):
        state[stream] = {**state[stream], "swept_at": days_ago(8)}
    fake.clear()
    sweep = run_read(config, state=state)
    assert not sweep.errors
    assert tombstone_ids(sweep) == {"users": set(), "courses": deleted["courses"], "course_enrollments": deleted["course_enrollments"]}
    for path in ("/learn/v1/courses", "/learn/v1/enrollments"):
        assert not any(query.get("updated_from") for query in queries_of(fake, path)), path
    sweep_calls = list_calls(fake)
    for stream in ("courses", "course_enrollments"):
        assert final_states(sweep)[stream]["swept_at"] >= days_ago(0.01)  # the next sweep is due in 7 days

    # What a sweep costs: every page of courses and enrollments instead of one page of changes each (no enrollment
    # changed here, so the normal sync read no user join).
    users = pages(len(fake.app.listed_people()))
    assert normal_calls == {"users": users, "courses": 1, "course_enrollments": 1}
    app = fake.app
    listed_people, parents = {p.id for p in app.listed_people()}, {c.id for c in app.listed_courses() + app.learning_plans()}
    enrollment_rows = [e for e in app.data.enrollments.values() if e.user_id in listed_people and e.course_id in parents]
    # In a sweep every enrollment comes, so the user join (/manage/v1/user) is read too: users twice.
    assert sweep_calls == {"users": 2 * users, "courses": pages(len(app.listed_courses())), "course_enrollments": pages(len(enrollment_rows))}
    assert sum(sweep_calls.values()) > sum(normal_calls.values())
    print(f"Docebo list calls: incremental {normal_calls}, weekly sweep {sweep_calls}")
