"""StackOne through the real entrypoint against the fake StackOne: values, ids and joins (courses and content,
collections left out), the assignment + completion join, requests per sync, filter[updated_after] with the no-loss
rule, deletions by sweep, the documented rate limit and both credentials."""

from __future__ import annotations

import time

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.stackone import stackone_id
from integration_tests.harness import catalog, final_states, iso, queries, records_by_stream, run_cli, run_read

USERS, ENROLLMENTS = "/unified/lms/users", "/unified/lms/assignments"
LISTS = ["/unified/lms/assignments", "/unified/lms/completions"]
DIRECTORIES = ["/unified/lms/users", "/unified/lms/courses", "/unified/lms/content"]
META = ["/accounts/46132201201510402136/meta"]  # once per sync: the LMS behind StackOne


@pytest.fixture
def fake():
    server = start_fake("stackone", users=30, courses=8, enrollments=60)
    yield server
    server.stop()


EXPECTED_STATUS = {"passed": "passed", "failed": "failed", "completed": "completed", "in_progress": "in_progress",
                   "expired": "unknown", "not_started": "assigned", "assigned": "assigned"}


def test_values_ids_and_joins(fake):
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    data = fake.app.data

    users = {u["id"]: u for u in records["users"]}
    person = data.people[5]
    user = users[stackone_id("usr", 5)]  # StackOne's id, not the LMS's "5"
    assert user["name"] == f"{person.first_name} {person.last_name}" and user["status"] == "active"
    assert user["emails"] == [{"email": person.email, "type": None, "is_primary": True}]
    assert user["updated_at"] == iso(person.updated)
    assert user["custom_fields"] == {"department": person.custom["department"], "stackone_provider": "docebo"}
    assert users[stackone_id("usr", 9)]["status"] == "inactive"
    assert users[stackone_id("usr", 12)]["status"] == "active"  # `active` as the string "true"

    courses = {c["id"]: c for c in records["courses"]}
    assert courses[stackone_id("crs", 1)]["type"] == "course" and courses[stackone_id("crs", 1)]["title"] == data.courses[1].name
    assert courses[stackone_id("cnt", 3)]["type"] == "other"  # a content item: assignable on its own
    assert courses[stackone_id("crs", 7)]["status"] == "disabled"  # inactive
    assert stackone_id("col", 6) not in courses  # a collection: no list in StackOne's LMS API

    enrollments = {e["id"]: e for e in records["course_enrollments"]}
    for row in fake.app.listed_enrollments():
        record = enrollments[fake.app.enrollment_record_id(row)]
        assert record["user"]["id"] in users and record["course"]["id"] in courses
        assert record["user"]["name"] == f"{data.people[row.user_id].first_name} {data.people[row.user_id].last_name}"
        assert record["course"]["title"] == data.courses[row.course_id].name
        assert record["status"] == EXPECTED_STATUS[row.state], row
        done = row.state in ("completed", "passed", "failed")
        assert record.get("completed_at") == (iso(row.completed) if done else None)
        assert record.get("score") == (row.score if done else None)
        assert record.get("assigned_at") == (iso(row.enrolled) if fake.app.has_assignment(row) else None)
        assert record["updated_at"] == max(t for t in (iso(row.updated) if fake.app.has_assignment(row) else None,
                                                       iso(row.completed) if done else None) if t)
    collection_rows = [e for e in data.enrollments.values() if e.course_id == 6 and e.role == "learner"]
    assert collection_rows and not any(e["course"]["id"] == stackone_id("col", 6) for e in enrollments.values())
    assert any(not fake.app.has_assignment(row) for row in fake.app.listed_enrollments())  # completions alone are read


def test_a_full_sync_costs_one_walk_of_each_list(fake):
    run_read(fake.config(), mode=SyncMode.full_refresh)
    # users, courses, content (the streams); assignments and completions, then users, courses, content (the joins)
    assert sorted(fake.paths()) == sorted([*META, *DIRECTORIES, *LISTS, *DIRECTORIES])
    assert all(q["page_size"] == ["100"] and "filter[updated_after]" not in q and "raw" not in q
               for _, path, q in fake.requests if path not in META)


def test_every_list_walks_several_pages_with_identical_parameters(fake, monkeypatch):
    from source_lms_enrollments.providers import stackone

    monkeypatch.setattr(stackone.StackOneStream, "page_size", 7)
    records = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh))
    for stream, ids in fake.app.expected_ids().items():
        assert {r["id"] for r in records[stream]} == ids, stream
    calls = queries(fake, ENROLLMENTS)
    assignments = [e for e in fake.app._learning_rows() if fake.app.has_assignment(e)]  # collections' included
    assert len(calls) == -(-len(assignments) // 7) > 1
    assert "next" not in calls[0] and all("next" in q for q in calls[1:])
    assert all({k: v for k, v in q.items() if k != "next"} == calls[0] for q in calls)


def test_an_incremental_sync_filters_on_the_server_and_rebuilds_a_learner_whose_completion_alone_changed(fake):
    first = run_read(fake.config())
    state = final_states(first)
    # A completion rewritten (e.g. its score corrected) while its assignment is untouched: only /completions shows it.
    row = next(e for e in fake.app.listed_enrollments() if e.state in ("completed", "passed", "failed") and fake.app.has_assignment(e))
    row.completed = int(time.time())
    row.score = 99.5
    fake.clear()
    second = run_read(fake.config(), state=state)
    assert not second.errors
    emitted = records_by_stream(second)["course_enrollments"]
    changed = [r for r in emitted if r["id"] == fake.app.enrollment_record_id(row)]
    assert len(changed) == 1
    # Whole: the assignment's fields are there, not only the completion's.
    assert changed[0]["score"] == 99.5 and changed[0]["assigned_at"] == iso(row.enrolled)
    assert changed[0]["status"] == EXPECTED_STATUS[row.state] and changed[0]["progress_percent"] == 100
    assert all(r["updated_at"] == state["course_enrollments"]["updated_at"] for r in emitted if r not in changed)
    for path in [USERS, "/unified/lms/courses", "/unified/lms/content", *LISTS]:
        assert queries(fake, path)[0]["filter[updated_after]"][0].endswith(".000Z"), path
    # 3 filtered streams, 2 filtered lists, 2 lists per learner rebuilt (this one, and the one whose record sits at
    # the cursor: its second is asked for again), then the 3 directories for names and titles.
    learners = {r["user"]["id"] for r in emitted}
    assert stackone_id("usr", row.user_id) in learners and len(learners) <= 2
    per_learner = [f"{USERS}/{learner}/{kind}" for learner in learners for kind in ("assignments", "completions")]
    assert sorted(fake.paths()) == sorted([*META, *DIRECTORIES, *LISTS, *per_learner, *DIRECTORIES])


def test_an_incremental_sync_without_changes(fake):
    state = final_states(run_read(fake.config()))
    fake.clear()
    second = run_read(fake.config(), state=state)
    assert not second.errors
    # Nothing changed, but the cursor's own second is asked for again (>= is inclusive): its learner is rebuilt and
    # the record at the cursor re-emitted, with its name and title (the three directory lists).
    at_cursor = {r["user"]["id"] for r in records_by_stream(second)["course_enrollments"]}
    assert len(at_cursor) == 1
    per_learner = [f"{USERS}/{learner}/{kind}" for learner in at_cursor for kind in ("assignments", "completions")]
    assert sorted(fake.paths()) == sorted([*META, *DIRECTORIES, *LISTS, *per_learner, *DIRECTORIES])


def test_beyond_the_learner_limit_both_lists_are_read_whole(fake, monkeypatch):
    from source_lms_enrollments.providers import stackone

    state = final_states(run_read(fake.config()))
    rows = [e for e in fake.app.listed_enrollments()][:3]
    fake.app.data.touch(enrollments=[e.id for e in rows])
    monkeypatch.setattr(stackone, "PER_LEARNER_LIMIT", 1)
    fake.clear()
    emitted = records_by_stream(run_read(fake.config(), state=state, streams=["course_enrollments"]))["course_enrollments"]
    assert {fake.app.enrollment_record_id(e) for e in rows} <= {r["id"] for r in emitted}
    assert not [p for p in fake.paths() if p.startswith(f"{USERS}/")]
    assert [("filter[updated_after]" in q) for q in queries(fake, ENROLLMENTS)] == [True, False]  # changed, then whole


def test_deletions_show_in_a_sweep_only(fake):
    state = final_states(run_read(fake.config()))
    deleted = fake.app.delete_sample()
    quiet = run_read(fake.config(), state=state)  # default: a sweep every 7 days; the first sync swept
    assert not quiet.errors and not any(r.get("_ab_cdc_deleted_at") for rs in records_by_stream(quiet).values() for r in rs)
    swept = run_read(fake.config(deletion_sweep_days=0), state=final_states(quiet))
    tombstones = {s: {r["id"] for r in rs if r.get("_ab_cdc_deleted_at")} for s, rs in records_by_stream(swept).items()}
    assert {s: tombstones.get(s, set()) for s in deleted} == deleted


def test_the_documented_rate_limit_is_waited_out_per_retry_after(monkeypatch):
    from source_lms_enrollments.providers import stackone

    monkeypatch.setattr(stackone.StackOneStream, "page_size", 10)  # 3 pages of users against 2 requests a second
    with start_fake("stackone", users=30, courses=6, enrollments=60, limit=2, window=1.0) as server:
        output = run_read(server.config(), mode=SyncMode.full_refresh, streams=["users"])
        assert not output.errors
        assert len(records_by_stream(output)["users"]) == len(server.app.listed_people())
        assert any("429" in m.log.message for m in output.logs)


def test_an_unknown_account_fails_check_naming_the_field_without_its_value(fake, tmp_path):
    config = fake.config()
    config["provider"]["account_id"] = "99999999999999999999"
    result = run_cli(["check"], tmp_path, config=config)
    status = result.connection_status()
    assert status["status"] == "FAILED" and "HTTP 404" in status["message"] and "provider.account_id" in status["message"]
    assert "99999999999999999999" not in result.stdout


def test_a_wrong_api_key_during_read_is_a_config_error_and_no_secret_is_printed(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["read"], tmp_path, config=bad, catalog_obj=catalog(SyncMode.full_refresh, ["courses"]))
    errors = result.errors()
    assert result.returncode != 0 and errors[0]["failure_type"] == "config_error" and "HTTP 401" in errors[0]["message"]
    assert "StackOne said: Unauthorized" in errors[0]["message"] and "provider.api_key" in errors[0]["message"]
    assert bad["provider"]["api_key"] not in result.stdout and bad["provider"]["api_key"] not in result.stderr


def test_a_502_names_the_lms_behind_stackone(fake):
    fake.add_fault("error", count=6, status=502, retry_after=0, match=USERS)
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "transient_error" and USERS in error.message
    assert "the LMS behind StackOne answered HTTP 503: Service temporarily unavailable" in error.message
    assert "docebosaas" not in error.message  # the LMS's URL stays out


def test_malformed_page_ends_with_a_system_error_naming_the_endpoint(fake):
    fake.add_fault("malformed", count=1, match="/unified/lms/completions")
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["course_enrollments"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "system_error" and "/unified/lms/completions" in error.message
