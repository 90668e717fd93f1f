"""Northpass through the real entrypoint against the fake Northpass v2: values, paging, the 10/s limit, faults,
secrets, and the requests Airbyte's own source-northpass-lms makes (docs/providers/northpass.md)."""

from __future__ import annotations

import time

import pytest
import requests
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.northpass import uuid_of
from integration_tests.harness import catalog, iso, records_by_stream, run_cli, run_read


@pytest.fixture
def fake():
    server = start_fake("northpass", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


def expected_status(progress):
    return "completed" if progress >= 100 else "in_progress" if progress > 0 else "enrolled"


def test_values_match_the_school_data(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    data = fake.app.data

    users = {u["id"]: u for u in records["users"]}
    for person in fake.app.listed_people():
        user = users[uuid_of("person", person.id)]
        assert user["name"] == f"{person.first_name} {person.last_name}" and user["role"] == "learner"
        assert user["emails"] == ([{"email": person.email, "type": "work", "is_primary": True}] if person.email else [])
        assert user["created_at"] == iso(person.created) and user["updated_at"] == iso(person.updated)
        status = "inactive" if person.status == "inactive" else "invited" if person.last_login is None else "active"
        assert user["status"] == status, person
    assert {"inactive", "invited", "active"} <= {u["status"] for u in users.values()}
    assert uuid_of("person", 18) not in users  # deleted: Northpass does not list them

    courses = {c["id"]: c for c in records["courses"]}
    for course in data.courses.values():
        record = courses[uuid_of("course", course.id)]
        assert record["title"] == course.name and record["type"] == "course"
        assert record["status"] == ("published" if course.status == "active" else "archived")
        assert (record["created_at"], record["updated_at"]) == (iso(course.created), iso(course.updated))

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    rows = fake.app.listed_enrollments()
    assert len(enrollments) == len(rows)
    for row in rows:
        record = enrollments[fake.app.enrollment_record_id(row)]
        person = data.people[row.user_id]
        assert record["user"]["name"] == f"{person.first_name} {person.last_name}"
        assert record["course"]["title"] == data.courses[row.course_id].name
        assert record["status"] == expected_status(row.progress) and record["progress_percent"] == row.progress
        assert record["enrolled_at"] == iso(row.enrolled) and record.get("updated_at") is None


def test_instructors_and_withdrawn_rows_are_not_enrollments(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"]))
    ids = {r["id"] for r in records["course_enrollments"]}
    left_out = [e for e in fake.app.data.enrollments.values() if e.role == "instructor" or e.state == "withdrawn"]
    assert left_out, "the dataset must hold such rows for this test to mean anything"
    assert not ids & {fake.app.enrollment_record_id(e) for e in left_out}


@pytest.mark.parametrize("links_keep_limit", [False, True])
def test_every_list_is_read_across_several_pages(links_keep_limit):
    # 230 people and 3 x 100-per-page; 120 enrollments of one course: 2 pages. Links with and without `limit`.
    with start_fake("northpass", users=230, courses=2, enrollments=240, links_keep_limit=links_keep_limit) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh)
        assert not output.errors
        records = records_by_stream(output)
        expected = server.app.expected_ids()
        for stream in ("users", "courses", "course_enrollments"):
            ids = [r["id"] for r in records[stream]]
            assert len(ids) == len(set(ids)) and set(ids) == expected[stream], stream
        people_pages = [q for _, path, q in server.requests if path == "/v2/people"]
        assert people_pages[:3] == [{"limit": ["100"]}, {"page": ["2"], "limit": ["100"]}, {"page": ["3"], "limit": ["100"]}]
        course = uuid_of("course", 1)
        enrollment_pages = [q for _, path, q in server.requests if path == f"/v2/courses/{course}/enrollments"]
        assert enrollment_pages == [{"limit": ["100"]}, {"page": ["2"], "limit": ["100"]}]


def test_the_fake_answers_429_above_ten_requests_a_second(fake):
    # The fake's own limiter, checked directly: a burst of 15 calls gets some 429s with a JSON:API body.
    headers = {"X-Api-Key": fake.app.api_key}
    answers = [requests.get(f"{fake.url}/v2/courses", headers=headers, timeout=5) for _ in range(15)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and len(answers) - len(limited) <= 10
    assert limited[0].json()["errors"][0]["status"] == "429" and "Retry-After" not in limited[0].headers


def test_a_sync_stays_under_ten_requests_a_second(tmp_path):
    # The connector runs as its own process (the installed command), so that the fake's clock is not skewed by the
    # connector's work under the same interpreter lock.
    with start_fake("northpass", users=40, courses=30, enrollments=120) as server:
        started = time.monotonic()
        result = run_cli(["read"], tmp_path, config=server.config(), catalog_obj=catalog(SyncMode.full_refresh))
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.errors()
        assert {r["id"] for r in result.records("course_enrollments")} == server.app.expected_ids()["course_enrollments"]
        calls = len(server.requests)
        assert calls >= 34  # 2 x people, 2 x courses, 30 enrollment lists
        assert server.app.rate_limited_count == 0  # never answered 429
        assert elapsed >= (calls - 10) / 10  # paced, not bursting


def test_a_429_without_retry_after_is_backed_off_and_retried(fake):
    fake.add_fault("rate_limit", count=2, match="/v2/courses")
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors
    assert len(records_by_stream(output)["courses"]) == len(fake.app.data.courses)
    assert fake.paths().count("/v2/courses") == 3
    assert time.monotonic() - started >= 2.0  # two waits of at least 1 s each (no header to say otherwise)


def test_a_course_deleted_mid_sync_is_skipped_with_a_warning(fake):
    gone = uuid_of("course", 4)
    fake.add_fault("not_found", count=1, match=f"/v2/courses/{gone}/enrollments")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"])
    assert not output.errors
    ids = {r["id"] for r in records_by_stream(output)["course_enrollments"]}
    assert ids and not any(i.endswith(f":{gone}") for i in ids)
    assert any(gone in m.log.message and "404" in m.log.message for m in output.logs)


def test_malformed_json_ends_the_stream_with_a_system_error_naming_the_endpoint(fake):
    fake.add_fault("malformed", count=1, match="/v2/people")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/v2/people" in error.message and "not valid JSON" in error.message


def test_wrong_key_is_a_config_error_and_no_secret_leaks(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["users"]))
    assert result.returncode != 0
    error = result.errors()[0]
    assert error["failure_type"] == "config_error"
    assert "HTTP 401" in error["message"] and "Unauthorized" in error["message"] and "provider.api_key" in error["message"]
    assert bad["provider"]["api_key"] not in result.stdout + result.stderr


def test_remote_data_never_holds_the_invite_token(fake):
    output = run_read(fake.config(include_remote_data=True), mode=SyncMode.full_refresh, streams=["users"])
    invited = [u for u in records_by_stream(output)["users"] if u["status"] == "invited"]
    assert invited and all("invite_token" not in u["remote_data"]["attributes"] for u in invited)
    assert "INVITE" not in str(records_by_stream(output))


def test_the_base_url_defaults_to_the_northpass_host():
    from source_lms_enrollments.providers.northpass import Northpass

    assert Northpass({"provider": {"provider_type": "northpass", "api_key": "k"}}).api_base == "https://api.northpass.com/v2/"


# ---- what Airbyte's source-northpass-lms asks for, replayed against the fake (docs/providers/northpass.md) ---------
def _airbyte_get(url, key):
    # Its requests: GET, X-Api-Key only (no Accept), python-requests' User-Agent.
    return requests.get(url, headers={"X-Api-Key": key}, timeout=5)


def _follow_links_next(fake, path):
    """Its current manifest: CursorPagination on links.next, the whole URL requested as the next path."""
    items, url = [], f"{fake.url}/v2/{path}"
    while url:
        answer = _airbyte_get(url, fake.app.api_key)
        assert answer.status_code == 200, (url, answer.text)
        body = answer.json()
        items += body["data"]
        url = body.get("links", {}).get("next")
    return items


def test_airbyte_connector_requests_following_links_next_are_served():
    with start_fake("northpass", users=60, courses=3, enrollments=70, rate_limit_per_second=None) as server:
        people = _follow_links_next(server, "people")  # no limit sent: the default page size, 3 pages
        assert {p["id"] for p in people} == server.app.expected_ids()["users"] and len(people) == len(set(p["id"] for p in people))
        assert [q for _, path, q in server.requests] == [{}, {"page": ["2"]}, {"page": ["3"]}]
        courses = _follow_links_next(server, "courses")
        enrollments = [e for c in courses for e in _follow_links_next(server, f"courses/{c['id']}/enrollments")]
        pairs = {f"{e['attributes']['person_id']}:{e['attributes']['course_id']}" for e in enrollments}
        assert pairs == server.app.expected_ids()["course_enrollments"]


def test_airbyte_connector_requests_with_record_count_pages_are_served():
    # Its earlier manifest (OffsetIncrement into `page`): page=0, then page=<records so far>, until a page is empty.
    with start_fake("northpass", users=60, courses=3, enrollments=70, rate_limit_per_second=None) as server:
        first = _airbyte_get(f"{server.url}/v2/people?page=0", server.app.api_key).json()
        assert len(first["data"]) == 25 and "next" in first["links"]  # page 0 is read as page 1
        second = _airbyte_get(f"{server.url}/v2/people?page=25", server.app.api_key).json()
        assert second["data"] == [] and "next" not in second["links"]  # page 25 is past the end: it stops there


def test_airbyte_check_requests_are_served_and_a_wrong_key_is_401(fake):
    for path in ("people", "courses"):
        assert _airbyte_get(f"{fake.url}/v2/{path}", fake.app.api_key).status_code == 200
        wrong = _airbyte_get(f"{fake.url}/v2/{path}", "nope")
        assert wrong.status_code == 401 and wrong.json()["errors"][0]["title"] == "Unauthorized"
