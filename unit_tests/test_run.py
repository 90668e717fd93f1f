"""The command line's own launch loop (run.py): the same messages as the CDK's `launch`, one line each."""

from __future__ import annotations

import json

import requests_mock as rm
from airbyte_cdk.entrypoint import launch as cdk_launch

from source_lms_enrollments import SourceLmsEnrollments
from source_lms_enrollments.run import launch
from unit_tests.providers.test_talentlms import config, mock_portal


def messages(capsys, launcher, tmp_path, streams=("users", "courses", "course_enrollments")) -> list[dict]:
    config_path, catalog_path = tmp_path / "config.json", tmp_path / "catalog.json"
    config_path.write_text(json.dumps(config()))
    catalog_path.write_text(json.dumps({"streams": [
        {"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
         "sync_mode": "incremental", "destination_sync_mode": "append", "cursor_field": ["updated_at"]}
        for name in streams
    ]}))
    capsys.readouterr()
    with rm.Mocker() as m:
        mock_portal(m)
        launcher(SourceLmsEnrollments(), ["read", "--config", str(config_path), "--catalog", str(catalog_path)])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def without_times(message: dict) -> dict:
    """The message less what differs between two runs: emission times and the runtime summary."""
    message = json.loads(json.dumps(message))
    for part in ("record", "trace"):
        message.get(part, {}).pop("emitted_at", None)
    if message.get("type") == "LOG" and "runtimes" in message["log"]["message"]:
        message["log"]["message"] = "runtimes"
    return message


def test_launch_prints_what_the_cdk_launch_prints_one_json_message_a_line(capsys, tmp_path):
    ours = messages(capsys, launch, tmp_path)
    theirs = messages(capsys, cdk_launch, tmp_path)
    assert [without_times(m) for m in ours] == [without_times(m) for m in theirs]
    records = [m for m in ours if m["type"] == "RECORD"]
    assert {m["record"]["stream"] for m in records} == {"users", "courses", "course_enrollments"}


def test_each_state_message_counts_the_records_of_its_own_stream(capsys, tmp_path):
    ours = messages(capsys, launch, tmp_path)
    for stream in ("users", "courses", "course_enrollments"):
        emitted = sum(1 for m in ours if m["type"] == "RECORD" and m["record"]["stream"] == stream)
        states = [m["state"] for m in ours if m["type"] == "STATE" and m["state"]["stream"]["stream_descriptor"]["name"] == stream]
        assert emitted > 0 and states[-1]["sourceStats"]["recordCount"] == emitted
