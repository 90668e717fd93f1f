"""Kombo through the real entrypoint against the fake Kombo: values, ids and joins (revisions, a null course),
paging, incremental on updated_after, deletions from Kombo's own signal without a sweep, request counts, errors
passed through from the LMS, the rate limit and both config fields."""

from __future__ import annotations

import time

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.kombo import kombo_id
from integration_tests.harness import catalog, final_states, iso, queries, records_by_stream, run_cli, run_read

PATHS = {"users": "/v1/lms/users", "courses": "/v1/lms/courses", "course_enrollments": "/v1/lms/course-progressions"}


@pytest.fixture
def fake():
    server = start_fake("kombo", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


def test_values_ids_joins_and_the_lms_behind_kombo(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    data = fake.app.data
    users = {u["id"]: u for u in records["users"]}
    person = data.people[5]
    user = users[kombo_id("user", 5)]
    assert user["name"] == f"{person.first_name} {person.last_name}" and user["updated_at"] == iso(person.updated)
    assert user["custom_fields"] == {"department": person.custom["department"], "kombo_tool": "successfactors"}
    assert users[kombo_id("user", 9)]["status"] == "inactive"
    assert kombo_id("user", 18) not in users  # deleted in the LMS: Kombo cannot fetch it, hides it

    courses = {c["id"]: c for c in records["courses"]}
    three = data.courses[3]  # two revisions: the older INACTIVE one and the current
    assert courses[kombo_id("course", 3)]["title"] == three.name and courses[kombo_id("course", 3)]["status"] == "published"
    assert courses[kombo_id("course", 7 if 7 in data.courses else 1)]["type"] == "course"

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    assert set(enrollments) == fake.app.expected_ids()["course_enrollments"]
    for row in fake.app.listed_enrollments():
        record = enrollments[kombo_id("progression", row.id)]
        # every seventh progression has course_revision.course null, some point to an older revision: same course
        assert record["course"]["id"] == kombo_id("course", row.course_id) and record["user"]["id"] == kombo_id("user", row.user_id)
    statuses = {e["status"] for e in enrollments.values()}
    assert statuses == {"enrolled", "in_progress", "completed", "withdrawn", "unknown"}


def test_one_request_per_stream_and_one_for_the_revision_join_at_the_documented_page_size(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh)
    counts = {path: len(queries(fake, path)) for path in PATHS.values()}
    # courses: once for its stream, once (deleted included) for progressions whose revision names no course
    assert counts == {"/v1/lms/users": 1, "/v1/lms/courses": 2, "/v1/lms/course-progressions": 1}
    assert all(q["page_size"] == ["250"] for _, _, q in fake.requests)


def test_every_list_walks_several_cursor_pages_with_identical_parameters(fake, monkeypatch):
    from source_lms_enrollments.providers import kombo

    monkeypatch.setattr(kombo.KomboStream, "page_size", 4)
    records = records_by_stream(run_read(fake.config()))
    for stream, path in PATHS.items():
        assert {r["id"] for r in records[stream]} == fake.app.expected_ids()[stream]
        first, *rest = queries(fake, path)
        walk = [first, *(q for q in rest[:next((i for i, q in enumerate(rest) if "cursor" not in q), len(rest))])]  # the stream's own listing
        pages = -(-len(fake.app.expected_ids()[stream]) // 4)
        assert len(walk) >= pages >= 2 and "cursor" not in first and all("cursor" in q for q in walk[1:])
        assert all({k: v for k, v in q.items() if k != "cursor"} == first for q in walk)


def test_incremental_sends_updated_after_and_emits_what_changed(fake):
    first = run_read(fake.config())
    assert all(q == {"page_size": ["250"], "include_deleted": ["true"]} for _, _, q in fake.requests)  # a first sync: a sweep
    state = final_states(first)
    changed = fake.app.touch_sample()
    fake.clear()
    second = records_by_stream(run_read(fake.config(), state=state))
    for stream, path in PATHS.items():
        assert queries(fake, path)[0]["updated_after"] == [state[stream]["updated_at"].replace("Z", ".000Z")]
        assert changed[stream] <= {r["id"] for r in second[stream]}, stream
        # besides them only a record changed in the very second of the cursor (>= is inclusive, design.md §5)
        assert all(r["updated_at"] == state[stream]["updated_at"] for r in second[stream] if r["id"] not in changed[stream]), stream
    assert len(fake.requests) == 3  # the changed progressions name their course: no revision join needed


def test_deletions_come_from_kombo_s_remote_deleted_at_without_a_sweep(fake):
    first = run_read(fake.config())  # default deletion_sweep_days (7): the next syncs filter on the server
    deleted = fake.app.delete_sample()
    when = iso(next(iter(fake.app.data.deleted["users"].values()))[1])
    fake.clear()
    second = run_read(fake.config(), state=final_states(first))
    assert all("updated_after" in queries(fake, path)[0] for path in PATHS.values())  # not a sweep: Kombo's signal alone
    got = records_by_stream(second)
    for stream in PATHS:
        tombstones = [r for r in got[stream] if r.get("_ab_cdc_deleted_at")]
        assert {r["id"] for r in tombstones} == deleted[stream], stream
        assert all(r["_ab_cdc_deleted_at"] == r["remote_deleted_at"] == r["updated_at"] == when for r in tombstones)  # Kombo's time
    enrollment = next(r for r in got["course_enrollments"] if r.get("_ab_cdc_deleted_at"))
    assert enrollment["user"]["id"] and enrollment["course"]["id"]
    third = run_read(fake.config(), state=final_states(second))
    assert not [r for rs in records_by_stream(third).values() for r in rs if r.get("_ab_cdc_deleted_at")]  # once, then forgotten


def test_an_lms_outage_names_kombo_and_the_lms_and_ends_as_a_transient_error(fake):
    from source_lms_enrollments.http_policy import MAX_RETRIES

    fake.add_fault("error", count=MAX_RETRIES + 1, status=503, retry_after=0, match="/v1/lms/users")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "transient_error"
    assert "Kombo GET /v1/lms/users" in error.message and "the LMS behind Kombo said: SAP SuccessFactors answered 503" in error.message
    assert "REMOTE.SERVICE_UNAVAILABLE" in error.message


def test_a_rate_limit_is_waited_out_per_retry_after(fake):
    fake.add_fault("rate_limit", count=2, retry_after=1, match="/v1/lms/courses")
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    assert not output.errors and len(records_by_stream(output)["courses"]) == 6
    assert time.monotonic() - started >= 2 and len(queries(fake, "/v1/lms/courses")) == 3


def test_a_wrong_integration_fails_check_naming_the_field_and_never_printing_it(fake, tmp_path):
    config = fake.config()
    config["provider"]["integration_id"] = "successfactors:NoSuchIntegration0000000"
    result = run_cli(["check"], tmp_path, config=config)
    status = result.connection_status()
    assert status["status"] == "FAILED" and "provider.integration_id" in status["message"] and "No integration" in status["message"]
    assert "NoSuchIntegration" not in result.stdout + result.stderr


def test_a_wrong_api_key_during_read_is_a_config_error_and_no_secret_is_printed(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["courses"]))
    errors = result.errors()
    assert result.returncode != 0 and errors[0]["failure_type"] == "config_error" and "provider.api_key" in errors[0]["message"]
    assert bad["provider"]["api_key"] not in result.stdout + result.stderr


def test_a_course_retitled_on_its_revision_comes_in_the_next_incremental_sync(fake):
    state = final_states(run_read(fake.config(), streams=["courses"]))
    oldest = min(fake.app.listed_courses(), key=lambda c: c.created)  # its own changed_at stays far behind the cursor
    fake.app.data.touch(courses=[oldest.id])  # a retitle: Kombo moves the revision's changed_at, not the course's
    second = records_by_stream(run_read(fake.config(), state=state, streams=["courses"]))["courses"]
    [course] = [c for c in second if c["id"] == kombo_id("course", oldest.id)]
    assert course["title"] == oldest.name and course["updated_at"] > state["courses"]["updated_at"]
