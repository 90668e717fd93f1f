"""Reliability and security under faults, bad input and interruption, for every provider (design.md §5–6).

Every scenario runs against each provider's fake; `conftest.py` turns the outcomes into the README's
"Reliability" table. Each read must end with exactly the ids the fake holds, and no secret in any output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import _run_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_tests.fake_lms import APPS, FakeLmsServer, FakeProviderApp, FakeResponse, start_fake
from integration_tests.harness import (
    STREAMS,
    catalog,
    connector_command,
    final_states,
    records_by_stream,
    run_cli,
    run_read,
)
from source_lms_enrollments import SourceLmsEnrollments
from source_lms_enrollments.providers import PROVIDERS

SECRET_FIELDS = {"api_key", "client_secret", "password", "token", "access_token", "api_token", "connector_token"}
SMALL = dict(users=12, courses=3, enrollments=20)


@pytest.fixture(params=sorted(APPS))
def provider(request):
    return request.param


@pytest.fixture
def fake(provider):
    server = start_fake(provider, **SMALL)
    yield server
    server.stop()


def secrets_of(server: FakeLmsServer) -> list[str]:
    values = [str(v) for k, v in server.config()["provider"].items() if k in SECRET_FIELDS and v]
    values += [str(v) for k, v in server.bad_config()["provider"].items() if k in SECRET_FIELDS and v]
    return [v for v in values if len(v) >= 6]


def assert_no_secret(server: FakeLmsServer, *texts: str) -> None:
    for secret in secrets_of(server):
        for text in texts:
            assert secret not in text, "a secret reached the output"


def output_text(output) -> str:
    return "\n".join(json.dumps(m.__dict__, default=str) if not isinstance(m, str) else m for m in output._messages)  # noqa: SLF001


def assert_complete_read(server: FakeLmsServer, **config_extra) -> None:
    output = run_read(server.config(**config_extra), mode=SyncMode.full_refresh)
    assert not output.errors, [e.trace.error.message for e in output.errors]
    got = {stream: {r["id"] for r in records} for stream, records in records_by_stream(output).items()}
    expected = server.app.expected_ids()
    for stream in STREAMS:
        assert got.get(stream, set()) == expected[stream], stream
    assert_no_secret(server, output_text(output))


# ---- transient faults: the read completes with exact counts --------------------------------------------------------
def test_429_storm_with_retry_after(fake):
    fake.add_fault("rate_limit", count=4, every=3, retry_after=1)
    assert_complete_read(fake)


def test_429_storm_without_retry_after(fake):
    fake.add_fault("rate_limit", count=4, every=3)
    assert_complete_read(fake)


def test_5xx_burst(fake):
    fake.add_fault("error", count=3, status=503)
    assert_complete_read(fake)


def test_slow_answer_beyond_the_read_timeout(fake):
    fake.add_fault("slow", count=1, every=2, seconds=2.5)
    assert_complete_read(fake, request_timeout_seconds=1)


def test_connection_dropped_mid_body(fake):
    fake.add_fault("truncate", count=2, every=2)
    assert_complete_read(fake)


def test_connection_dropped_before_the_answer(fake):
    fake.add_fault("drop", count=2, every=3)
    assert_complete_read(fake)


def test_request_rate_cap_is_honoured(fake):
    assert_complete_read(fake, requests_per_minute=6000)
    assert fake.requests  # the cap slows, never stops, a sync that fits in it


# ---- bad credentials, bad hosts, malformed payloads ----------------------------------------------------------------
def test_wrong_credentials_in_read_is_a_config_error(fake, tmp_path):
    result = run_cli(["read"], tmp_path, config=fake.bad_config(), catalog_obj=catalog(SyncMode.full_refresh))
    assert result.returncode != 0
    assert {e["failure_type"] for e in result.errors()} == {"config_error"}
    assert_no_secret(fake, result.stdout, result.stderr)


class NotAnLms(FakeProviderApp):
    """A web server that is not an LMS: an HTML page for every path."""

    name = "not_an_lms"

    def handle(self, request):
        return FakeResponse(200, "<!doctype html><html><body>Welcome to nginx!</body></html>", content_type="text/html")


def test_a_host_that_is_not_an_lms_fails_check_with_a_message(provider, tmp_path):
    with start_fake(provider, **SMALL) as real, FakeLmsServer(NotAnLms(real.app.data)) as other:
        config = real.config()
        config["provider"]["base_url"] = other.url
        result = run_cli(["check"], tmp_path, config=config)
    status = result.connection_status()
    assert result.returncode == 0 and status["status"] == "FAILED"
    assert status["message"] and "Traceback" not in status["message"]
    assert_no_secret(real, result.stdout, result.stderr)


@pytest.mark.parametrize("stream", STREAMS)
def test_malformed_payload_is_a_clear_error_not_a_silent_drop(fake, stream, tmp_path):
    endpoint = fake.app.stream_paths.get(stream, "")
    fake.add_fault("malformed", count=1, match=endpoint)
    result = run_cli(["read"], tmp_path, config=fake.config(), catalog_obj=catalog(SyncMode.full_refresh, [stream]))
    assert result.returncode != 0
    errors = result.errors()
    assert errors and errors[0]["failure_type"] == "system_error"
    named = fake.app.endpoint_names.get(stream, " /")
    assert PROVIDERS[fake.app.name].title in errors[0]["message"] and named in errors[0]["message"], errors[0]["message"]
    assert_no_secret(fake, result.stdout, result.stderr)


# ---- interruption ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kill_at", ["first_state", "mid_stream", "late"])
def test_sigkill_then_resume_loses_nothing(provider, kill_at, tmp_path):
    with start_fake(provider, latency_ms=15, **SMALL) as server:
        expected = server.app.expected_ids()
        total = sum(len(ids) for ids in expected.values())
        (tmp_path / "config.json").write_text(json.dumps(server.config()))
        from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer

        (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog())))
        process = subprocess.Popen(connector_command() + ["read", "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json")],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        seen: dict[str, set[str]] = {s: set() for s in STREAMS}
        states: dict[str, dict] = {}
        records = 0
        threshold = {"first_state": None, "mid_stream": total // 2, "late": int(total * 0.9)}[kill_at]
        for line in process.stdout:
            message = json.loads(line)
            if message["type"] == "RECORD":
                seen[message["record"]["stream"]].add(message["record"]["data"]["id"])
                records += 1
                if threshold is not None and records >= threshold:
                    break
            elif message["type"] == "STATE":
                states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]["stream"]["stream_state"]
                if threshold is None:
                    break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

        resumed = run_read(server.config(), state=states or None)
        assert not resumed.errors
        for stream, found in records_by_stream(resumed).items():
            seen[stream] |= {r["id"] for r in found}
    for stream in STREAMS:
        assert seen[stream] == expected[stream], f"{stream}: lost {expected[stream] - seen[stream]}"


# ---- deletions (design.md §5a) ----------------------------------------------------------------------------------------
# Every sync sweeps (deletion_sweep_days 0), so that a provider whose API filters on the server (Docebo) compares too;
# the default cadence is each provider's own test.
SWEEP_EVERY_SYNC = {"deletion_sweep_days": 0}


def tombstones_of(output) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {s: set() for s in STREAMS}
    for stream, records in records_by_stream(output).items():
        for record in records:
            if record.get("_ab_cdc_deleted_at"):
                assert record["remote_deleted_at"] == record["updated_at"] == record["_ab_cdc_deleted_at"], record
                found[stream].add(record["id"])
            else:
                assert record.get("remote_deleted_at") is None or record.get("status") == "deleted", record  # live: never marked
    return found


def test_deletions_between_syncs_come_back_as_tombstones(fake):
    config = fake.config(**SWEEP_EVERY_SYNC)
    first = run_read(config)
    assert not first.errors and not any(tombstones_of(first).values())
    deleted = fake.app.delete_sample()
    assert all(deleted.values()), deleted  # the sample deletes something in every stream

    second = run_read(config, state=final_states(first))
    assert not second.errors, second.errors
    assert tombstones_of(second) == deleted
    if type(fake.app).enrollment_record_id is FakeProviderApp.enrollment_record_id:  # ids "{user}:{course}"
        for record in records_by_stream(second)["course_enrollments"]:
            if record.get("_ab_cdc_deleted_at"):  # a tombstone still names its learner and course
                assert [record["user"]["id"], record["course"]["id"]] == record["id"].split(":")
    third = run_read(config, state=final_states(second))
    assert not third.errors and not any(tombstones_of(third).values())  # reported once, then forgotten


def test_a_fault_mid_sync_marks_no_false_deletion_and_the_next_sync_reports_all(fake):
    from source_lms_enrollments.http_policy import MAX_RETRIES

    config = fake.config(**SWEEP_EVERY_SYNC, max_concurrency=1)  # one course at a time: the burst hits one course
    first = run_read(config)
    assert not first.errors
    deleted = fake.app.delete_sample()
    # The enrollment listing fails past its retries (Retry-After 0 keeps the test short): that stream is cut short.
    fake.add_fault("error", count=MAX_RETRIES + 1, status=500, retry_after=0, match=fake.app.stream_paths.get("course_enrollments", ""))
    failed = run_read(config, state=final_states(first), expecting_exception=True)
    assert failed.errors
    partial = tombstones_of(failed)
    assert not partial["course_enrollments"]
    for stream in STREAMS:
        assert partial[stream] <= deleted[stream], f"{stream}: false deletions {partial[stream] - deleted[stream]}"

    states = {**final_states(first), **final_states(failed)}
    resumed = run_read(config, state=states)
    assert not resumed.errors, resumed.errors
    reported = tombstones_of(resumed)
    for stream in STREAMS:
        assert partial[stream] | reported[stream] == deleted[stream], stream


def test_a_parent_gone_mid_sync_marks_nothing(fake):
    # One course's enrollment call answers "not found" (deleted between the course list and the call): that listing is
    # incomplete, so none of the enrollments it would have shown are reported deleted.
    config = fake.config(**SWEEP_EVERY_SYNC, max_concurrency=1)
    first = run_read(config)
    assert not first.errors
    fake.add_fault("not_found", count=1, match=fake.app.stream_paths.get("course_enrollments", ""))
    second = run_read(config, state=final_states(first), expecting_exception=True)
    assert not tombstones_of(second)["course_enrollments"]
    third = run_read(config, state={**final_states(first), **final_states(second)})
    assert not third.errors and not any(tombstones_of(third).values())  # nothing was deleted: nothing is, later either


def test_sigkill_among_the_tombstones_then_resume_reports_every_deletion(provider, tmp_path):
    with start_fake(provider, **SMALL) as server:
        config = server.config(**SWEEP_EVERY_SYNC)
        first = run_read(config)
        states = final_states(first)
        deleted = server.app.delete_sample()
        (tmp_path / "config.json").write_text(json.dumps(config))
        (tmp_path / "state.json").write_text(json.dumps([
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": value}} for name, value in states.items()
        ]))
        from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer

        (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog())))
        process = subprocess.Popen(connector_command() + ["read", "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json"),
                                                          "--state", str(tmp_path / "state.json")],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        seen: dict[str, set[str]] = {s: set() for s in STREAMS}
        for line in process.stdout:
            message = json.loads(line)
            if message["type"] == "RECORD" and message["record"]["data"].get("_ab_cdc_deleted_at"):
                seen[message["record"]["stream"]].add(message["record"]["data"]["id"])
                break  # killed right after the first tombstone, before its stream's state
            if message["type"] == "STATE":
                states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]["stream"]["stream_state"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert any(seen.values()), "the sync was killed before any tombstone"

        resumed = run_read(config, state=states)
        assert not resumed.errors
        for stream, found in tombstones_of(resumed).items():
            seen[stream] |= found
    assert seen == deleted


# ---- state given by the user -----------------------------------------------------------------------------------------
def test_state_of_an_unknown_stream_is_ignored(fake):
    output = run_read(fake.config(), state={"no_such_stream": {"updated_at": "2024-01-01T00:00:00Z"}})
    assert not output.errors


@pytest.mark.parametrize("bad", [{"updated_at": "not a date"}, {"updated_at": 12345}])
def test_unparseable_cursor_is_a_config_error_naming_the_stream(fake, bad):
    output = run_read(fake.config(), state={"users": bad}, streams=["users"], expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "'users'" in error.message


def test_cursor_in_the_future_reads_as_a_first_sync(fake):
    output = run_read(fake.config(), state={s: {"updated_at": "2999-01-01T00:00:00Z"} for s in STREAMS})
    assert not output.errors
    got = {stream: {r["id"] for r in records} for stream, records in records_by_stream(output).items()}
    assert got == fake.app.expected_ids()


def test_state_file_of_the_wrong_shape_is_reported(fake, tmp_path):
    result = run_cli(["read"], tmp_path, config=fake.config(), catalog_obj=catalog(), state={"users": "garbage"})
    assert result.returncode != 0
    assert result.errors() or "state" in result.stderr.lower()
    assert "Traceback (most recent call last)" not in result.stderr


# ---- config fuzzing --------------------------------------------------------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12), st.lists(st.integers(), max_size=2))
BASE_URLS = st.one_of(SCALARS, st.sampled_from(["http://lms.example.com", "ftp://127.0.0.1", "https://", "not a url",
                                                "https://user:pw@127.0.0.1", "http://127.0.0.1:1/"]))
PROVIDER_OBJECTS = st.fixed_dictionaries(
    {"provider_type": st.one_of(st.sampled_from(sorted(PROVIDERS)), SCALARS)},
    optional={"base_url": BASE_URLS, **{field: SCALARS for field in sorted(SECRET_FIELDS | {"client_id", "username", "account_id", "integrated_account_id"})}},
)
CONFIGS = st.one_of(
    st.fixed_dictionaries({}, optional={"provider": st.one_of(PROVIDER_OBJECTS, SCALARS), "start_date": SCALARS,
                                        "include_remote_data": SCALARS, "requests_per_minute": SCALARS,
                                        "request_timeout_seconds": SCALARS}),
    st.lists(SCALARS, max_size=2),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config=CONFIGS)
def test_check_with_fuzzed_configs_fails_cleanly(config, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "config.json"
    path.write_text(json.dumps(config))
    output = _run_command(SourceLmsEnrollments(), ["check", "--config", str(path)], expecting_exception=True)
    statuses = output.connection_status_messages
    if statuses:
        status = statuses[-1].connectionStatus
        assert status.status.value == "FAILED" and status.message
    else:  # a config that is not even an object: the entrypoint reports it as a traced config error
        assert output.errors and output.errors[-1].trace.error.failure_type.value == "config_error"
