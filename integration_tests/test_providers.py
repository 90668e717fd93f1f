"""The contract of design.md, checked on every provider through the real entrypoint against its fake server.

Provider-specific behaviour (field values, paging, auth quirks) is tested in `test_<provider>.py` beside this.
"""

from __future__ import annotations

import json

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import APPS, start_fake
from integration_tests.harness import (
    STREAMS,
    assert_state_never_ahead,
    catalog,
    final_states,
    records_by_stream,
    run_cli,
    run_read,
)

PROVIDERS = sorted(APPS)


@pytest.fixture(params=PROVIDERS)
def fake(request):
    server = start_fake(request.param, users=40, courses=8, enrollments=90)
    yield server
    server.stop()


def test_spec_lists_every_provider(tmp_path):
    result = run_cli(["spec"], tmp_path)
    assert result.returncode == 0
    spec = result.of_type("SPEC")[0]["spec"]["connectionSpecification"]
    entries = spec["properties"]["provider"]["oneOf"]
    assert [e["properties"]["provider_type"]["const"] for e in entries] == list(APPS) or \
        {e["properties"]["provider_type"]["const"] for e in entries} >= set(APPS)
    for entry in entries:
        for name, prop in entry["properties"].items():
            if name in {"api_key", "client_secret", "password", "token", "access_token", "api_token", "connector_token"}:
                assert prop.get("airbyte_secret") is True, f"{entry['title']}.{name} must be airbyte_secret"


def test_check_succeeds_with_good_secret(fake, tmp_path):
    result = run_cli(["check"], tmp_path, config=fake.config())
    assert result.returncode == 0
    assert result.connection_status()["status"] == "SUCCEEDED"


def test_check_fails_actionably_with_wrong_secret(fake, tmp_path):
    bad = fake.bad_config()
    result = run_cli(["check"], tmp_path, config=bad)
    assert result.returncode == 0
    status = result.connection_status()
    assert status["status"] == "FAILED"
    assert "401" in status["message"] or "403" in status["message"] or "rejected" in status["message"].lower()
    assert "Traceback" not in status["message"]
    for secret in _secrets_of(bad["provider"]) + _secrets_of(fake.config()["provider"]):
        assert secret not in result.stdout and secret not in result.stderr


def test_check_refuses_plain_http_to_a_remote_host(fake, tmp_path):
    config = fake.config()
    config["provider"]["base_url"] = "http://lms.example.com"
    result = run_cli(["check"], tmp_path, config=config)
    status = result.connection_status()
    assert status["status"] == "FAILED"
    assert "provider.base_url" in status["message"] and "https" in status["message"]
    assert not fake.requests


def test_discover_lists_three_incremental_streams(fake, tmp_path):
    result = run_cli(["discover"], tmp_path, config=fake.config())
    assert result.returncode == 0
    streams = {s["name"]: s for s in result.of_type("CATALOG")[0]["catalog"]["streams"]}
    assert set(streams) == set(STREAMS)
    for stream in streams.values():
        assert stream["supported_sync_modes"] == ["full_refresh", "incremental"]
        assert stream["source_defined_cursor"] is True
        assert stream["default_cursor_field"] == ["updated_at"]
        assert stream["source_defined_primary_key"] == [["id"]]
        assert stream["json_schema"]["required"] == ["id"]


def test_full_refresh_emits_exactly_what_the_lms_holds(fake, tmp_path):
    result = run_cli(["read"], tmp_path, config=fake.config(), catalog_obj=catalog(SyncMode.full_refresh))
    assert result.returncode == 0, result.errors()
    expected = fake.app.expected_ids()
    for stream in STREAMS:
        ids = [r["id"] for r in result.records(stream)]
        assert len(ids) == len(set(ids)), f"{stream}: duplicate ids"
        assert set(ids) == expected[stream], stream
    _assert_joins(result.records("users"), result.records("courses"), result.records("course_enrollments"))


def test_incremental_second_sync_emits_changed_records_only(fake):
    first = run_read(fake.config())
    assert not first.errors, first.errors
    state = final_states(first)
    assert set(state) == set(STREAMS)
    changed = fake.app.touch_sample()

    second = run_read(fake.config(), state=state)
    assert not second.errors, second.errors
    emitted = records_by_stream(second)
    for stream in STREAMS:
        ids = {r["id"] for r in emitted[stream]}
        assert changed[stream] <= ids, f"{stream}: changed records missing: {changed[stream] - ids}"
        unchanged = [r for r in emitted[stream] if r["id"] not in changed[stream]]
        # An unchanged record may come again only when no timestamp can show its changes (updated_at null), or
        # when it was changed in the very second of the cursor (>= is inclusive, design.md §5).
        cursor = state[stream].get("updated_at")
        assert all(r.get("updated_at") in (None, cursor) for r in unchanged), f"{stream}: unchanged records re-emitted"
    assert assert_state_never_ahead(second) >= 0


def test_state_is_never_ahead_of_an_unemitted_record(fake):
    output = run_read(fake.config())
    assert not output.errors
    assert assert_state_never_ahead(output) >= 0
    states = final_states(output)
    for stream, records in records_by_stream(output).items():
        stamps = [r["updated_at"] for r in records if r.get("updated_at")]
        if stamps:
            assert states[stream]["updated_at"] == max(stamps)


def test_start_date_skips_older_records_on_first_sync(fake):
    config = fake.config(start_date="2030-01-01T00:00:00Z")
    output = run_read(config)
    assert not output.errors
    for stream, records in records_by_stream(output).items():
        assert all(r.get("updated_at") is None or r["updated_at"] >= "2030-01-01T00:00:00Z" for r in records), stream


def test_records_match_the_declared_schemas(fake, tmp_path):
    import jsonschema

    from source_lms_enrollments import SourceLmsEnrollments

    source = SourceLmsEnrollments()
    schemas = {s.name: s.get_json_schema() for s in source.streams(fake.config())}
    output = run_read(fake.config(), mode=SyncMode.full_refresh)
    for stream, records in records_by_stream(output).items():
        validator = jsonschema.Draft7Validator(schemas[stream])
        for record in records:
            errors = list(validator.iter_errors(record))
            assert not errors, f"{stream} {record['id']}: {errors[0].message}"


def test_include_remote_data_carries_the_raw_payload(fake):
    without = records_by_stream(run_read(fake.config(), mode=SyncMode.full_refresh, streams=["users"]))["users"]
    assert all(r.get("remote_data") is None for r in without)
    with_raw = records_by_stream(run_read(fake.config(include_remote_data=True), mode=SyncMode.full_refresh, streams=["users"]))["users"]
    assert all(isinstance(r["remote_data"], dict) and r["remote_data"] for r in with_raw)


def _assert_joins(users, courses, enrollments):
    user_ids, course_ids = {u["id"] for u in users}, {c["id"] for c in courses}
    for enrollment in enrollments:
        assert enrollment["user"]["id"] in user_ids, enrollment["id"]
        assert enrollment["course"]["id"] in course_ids, enrollment["id"]


def _secrets_of(provider: dict) -> list[str]:
    names = {"api_key", "client_secret", "password", "token", "access_token", "api_token", "connector_token"}
    return [str(v) for k, v in provider.items() if k in names and v]


def test_harness_sees_all_registered_providers():
    # Guards the parametrization itself: a provider registered in the connector must have a fake.
    from source_lms_enrollments.providers import PROVIDERS as CONNECTOR_PROVIDERS

    assert set(CONNECTOR_PROVIDERS) == set(APPS), json.dumps(sorted(set(CONNECTOR_PROVIDERS) ^ set(APPS)))
