"""Thinkific through the real entrypoint against the fake Admin API v1: values, paging, `query[updated_after]`,
pacing under the rate limit, 429 with RateLimit-Reset, deletions and the requests a sync costs
(docs/providers/thinkific.md)."""

from __future__ import annotations

import calendar
import time

import pytest
import requests
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.thinkific import PREFIX
from integration_tests.harness import final_states, records_by_stream, run_read
from source_lms_enrollments.providers.thinkific import Thinkific

USERS, COURSES, ENROLLMENTS = f"{PREFIX}users", f"{PREFIX}courses", f"{PREFIX}enrollments"


@pytest.fixture
def fake():
    server = start_fake("thinkific", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def queries(server, path):
    return [q for _, p, q in server.requests if p == path]


def test_values_match_the_site_data(fake):
    output = run_read(fake.config(), mode=SyncMode.full_refresh)
    assert not output.errors
    records = records_by_stream(output)
    data = fake.app.data

    users = {u["id"]: u for u in records["users"]}
    assert set(users) == {str(p.id) for p in fake.app.listed_people()}
    roles = {"admin": "admin", "instructor": "instructor", "manager": "manager", "learner": "learner"}
    for person in fake.app.listed_people():
        user = users[str(person.id)]
        assert user["name"] == f"{person.first_name} {person.last_name}" and user["role"] == roles[person.role]
        assert user["emails"] == ([{"email": person.email, "type": "work", "is_primary": True}] if person.email else [])
        assert user["created_at"] == iso(person.created) and user.get("updated_at") is None and user["status"] == "active"
    assert not any(str(p.id) in users for p in data.people.values() if p.status == "deleted")

    courses = {c["id"]: c for c in records["courses"]}
    for course in data.courses.values():
        record = courses[str(course.id)]
        assert record["title"] == course.name and record["code"] == course.code.lower() and record["type"] == "course"
        assert record.get("updated_at") is None

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    rows = fake.app.listed_enrollments()
    assert len(enrollments) == len(rows)
    statuses = set()
    for row in rows:
        record = enrollments[str(row.id)]
        person = data.people[row.user_id]
        assert record["user"] == {"id": str(row.user_id), "name": f"{person.first_name} {person.last_name}",
                                  "emails": [{"email": person.email, "type": "work", "is_primary": True}] if person.email else []}
        assert record["course"] == {"id": str(row.course_id), "title": data.courses[row.course_id].name}
        assert record["updated_at"] == iso(row.updated) and record.get("started_at") == iso(row.started)
        done = row.state in ("completed", "passed") or row.progress >= 100
        assert record["progress_percent"] == (100 if done else row.progress)
        if done:
            assert record["status"] == "completed"
        elif row.state == "expired":
            assert record["status"] == "expired" and record.get("remote_deleted_at") is None  # expired is not deleted
        elif row.state == "assigned":  # a free trial: no activation
            assert record["status"] == "enrolled" and record.get("enrolled_at") is None
            assert record["custom_fields"]["is_free_trial"] is True
        else:
            assert record["status"] == ("in_progress" if row.progress else "enrolled")
            assert record["enrolled_at"] == iso(row.enrolled)
        statuses.add(record["status"])
    assert {"completed", "expired", "in_progress", "enrolled"} <= statuses


def test_instructors_and_withdrawn_rows_are_not_enrollments(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"]))
    ids = {r["id"] for r in records["course_enrollments"]}
    left_out = [e for e in fake.app.data.enrollments.values() if e.role == "instructor" or e.state == "withdrawn"]
    assert left_out, "the dataset must hold such rows for this test to mean anything"
    assert not ids & {str(e.id) for e in left_out}


def test_every_list_is_read_across_several_pages():
    # The fake caps `limit` at 7 (Thinkific documents no maximum): every list takes several pages.
    with start_fake("thinkific", users=30, courses=10, enrollments=60, max_limit=7) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        assert not output.errors
        records = records_by_stream(output)
        expected = server.app.expected_ids()
        for stream in ("users", "courses", "course_enrollments"):
            ids = [r["id"] for r in records[stream]]
            assert len(ids) == len(set(ids)) and set(ids) == expected[stream], stream
        people = len(server.app.listed_people())
        assert [q["page"] for q in queries(server, USERS)] == [[str(n)] for n in range(1, -(-people // 7) + 1)]
        assert all(q["limit"] == ["100"] for q in queries(server, USERS))
        assert len(queries(server, COURSES)) == 2


def test_incremental_enrollments_are_filtered_on_the_server(fake):
    config = fake.config(deletion_sweep_days=7)
    first = run_read(config)
    assert not first.errors
    state = final_states(first)
    cursor = state["course_enrollments"]["updated_at"]
    assert "query[updated_after]" not in queries(fake, ENROLLMENTS)[0]  # the first read is a sweep: everything
    touched = fake.app.touch_sample()
    fake.clear()
    second = run_read(config, state=state)
    assert not second.errors
    sent = queries(fake, ENROLLMENTS)
    assert len(sent) == 1 and sent[0]["query[updated_after]"] == [iso(calendar.timegm(time.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ")) - 1)]
    got = {r["id"] for r in records_by_stream(second)["course_enrollments"]}
    at_cursor = {str(e.id) for e in fake.app.listed_enrollments() if iso(e.updated) == cursor}  # `>=`: they come again
    assert got == touched["course_enrollments"] | at_cursor  # the server sent only what changed
    # Users and courses have no filter and no modification time: read in full, every record emitted.
    assert "query[updated_after]" not in queries(fake, USERS)[0]
    assert len(records_by_stream(second)["users"]) == len(fake.app.listed_people())


def test_a_record_changed_in_the_cursors_own_second_still_comes(fake):
    config = fake.config(deletion_sweep_days=7)
    first = run_read(config)
    state = final_states(first)
    cursor = state["course_enrollments"]["updated_at"]
    row = next(e for e in fake.app.listed_enrollments() if e.updated < int(time.time()) - 10)
    row.updated = calendar.timegm(time.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ"))  # same second
    second = run_read(config, state=state)
    assert str(row.id) in {r["id"] for r in records_by_stream(second)["course_enrollments"]}


def test_deletions_show_in_a_sweep_not_in_a_filtered_read(fake):
    first = run_read(fake.config(deletion_sweep_days=0))
    deleted = fake.app.delete_sample()
    assert deleted["course_enrollments"]
    filtered = run_read(fake.config(deletion_sweep_days=7), state=final_states(first))
    gone = {r["id"] for r in records_by_stream(filtered)["course_enrollments"] if r.get("_ab_cdc_deleted_at")}
    assert not gone  # a filtered listing is partial: nothing inferred from it
    people_gone = {r["id"] for r in records_by_stream(filtered)["users"] if r.get("_ab_cdc_deleted_at")}
    assert people_gone == deleted["users"]  # users are listed in full every sync
    swept = run_read(fake.config(deletion_sweep_days=0), state={**final_states(first), **final_states(filtered)})
    tombstones = [r for r in records_by_stream(swept)["course_enrollments"] if r.get("_ab_cdc_deleted_at")]
    assert {r["id"] for r in tombstones} == deleted["course_enrollments"]
    assert all(r["remote_deleted_at"] == r["updated_at"] == r["_ab_cdc_deleted_at"] for r in tombstones)


def test_the_fake_answers_429_with_ratelimit_reset_above_its_limit():
    # The fake's own limiter, checked directly: 120 a minute, then 429 with the reset as epoch seconds.
    with start_fake("thinkific", users=5, courses=2, enrollments=5, rate_limit=5, rate_window_seconds=30) as server:
        headers = {"X-Auth-API-Key": server.app.api_key, "X-Auth-Subdomain": server.app.subdomain}
        answers = [requests.get(f"{server.url}{COURSES}", headers=headers, timeout=5) for _ in range(8)]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
        reset = int(answers[-1].headers["RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 31 and answers[-1].json() == {"error": "Rate limit exceeded"}
        assert "Retry-After" not in answers[-1].headers
        wrong = requests.get(f"{server.url}{COURSES}", headers={**headers, "X-Auth-Subdomain": "other"}, timeout=5)
        assert wrong.status_code == 401 and wrong.json() == {"error": "Authentication Error"}


@pytest.fixture
def short_window(monkeypatch):
    """Thinkific's minute scaled down to 2 s for the test: the connector keeps 4 per window, the fake allows 8."""
    monkeypatch.setattr(Thinkific, "rate_limit_requests", 4)
    monkeypatch.setattr(Thinkific, "rate_limit_window_seconds", 2.0)


def _paced_fake():
    return start_fake("thinkific", users=20, courses=4, enrollments=30, max_limit=5, rate_limit=8, rate_window_seconds=2)


def test_a_sync_is_paced_under_the_limit_not_429ed(short_window):
    with _paced_fake() as server:
        started = time.monotonic()
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        elapsed = time.monotonic() - started
        assert not output.errors
        assert {r["id"] for r in records_by_stream(output)["course_enrollments"]} == server.app.expected_ids()["course_enrollments"]
        calls = len(server.requests)
        assert calls >= 10
        assert server.app.rate_limited_count == 0  # never answered 429
        assert elapsed >= 2.0 * (calls // 4 - 1)  # 4 per 2 s window, not a burst
        assert server.app.max_in_flight == 1  # one request at a time, under the 10 allowed


def test_without_pacing_the_fake_429s_and_ratelimit_reset_is_waited_out(monkeypatch):
    # The control for the test above: with pacing far above the fake's limit, the fake answers 429 and the sync
    # still completes by waiting until RateLimit-Reset.
    monkeypatch.setattr(Thinkific, "rate_limit_requests", 1000)
    with _paced_fake() as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        assert not output.errors
        assert server.app.rate_limited_count > 0
        assert {r["id"] for r in records_by_stream(output)["course_enrollments"]} == server.app.expected_ids()["course_enrollments"]


def test_an_injected_429_waits_until_ratelimit_reset(fake):
    # 4 s ahead: longer than the exponential backoff's first wait (at most 1 s + the CDK's 1 s), so only reading
    # the header passes.
    fake.add_fault("rate_limit", count=1, retry_after=4, match=COURSES)
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors
    assert fake.paths().count(COURSES) == 2
    assert time.monotonic() - started >= 4.0  # the reset is 4–5 s ahead (whole epoch seconds), plus the CDK's 1 s


def test_a_wrong_subdomain_is_a_config_error_naming_both_fields(fake):
    config = fake.config()
    config["provider"]["subdomain"] = "someone-else"
    output = run_read(config, mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "provider.api_key" in error.message and "provider.subdomain" in error.message
    assert "Authentication Error" in error.message and fake.app.api_key not in error.message


@pytest.mark.parametrize("people,courses,enrollments", [(230, 120, 450)])
def test_requests_per_sync_first_and_incremental(people, courses, enrollments):
    # The figures on docs/providers/thinkific.md: first sync ⌈users/100⌉ + ⌈courses/100⌉ + ⌈enrollments/100⌉,
    # incremental the same for users and courses and one page of changed enrollments.
    with start_fake("thinkific", users=people, courses=courses, enrollments=enrollments) as server:
        config = server.config(deletion_sweep_days=7)
        first = run_read(config)
        assert not first.errors
        listed = {stream: len(ids) for stream, ids in server.app.expected_ids().items()}
        pages = lambda n: max(1, -(-n // 100))  # noqa: E731
        assert len(queries(server, USERS)) == pages(listed["users"])
        assert len(queries(server, COURSES)) == pages(listed["courses"])
        assert len(queries(server, ENROLLMENTS)) == pages(listed["course_enrollments"])
        first_total = len(server.requests)
        server.app.touch_sample()
        server.clear()
        second = run_read(config, state=final_states(first))
        assert not second.errors
        assert len(queries(server, ENROLLMENTS)) == 1
        assert len(server.requests) == pages(listed["users"]) + pages(listed["courses"]) + 1
        print(f"thinkific requests: first sync {first_total}, incremental {len(server.requests)}; listed {listed}")
