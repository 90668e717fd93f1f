"""Running the connector's real entrypoint against a fake LMS: in-process (the CDK's entrypoint_wrapper) or as
the installed `source-lms-enrollments` command in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder, ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.state_builder import StateBuilder

from source_lms_enrollments import SourceLmsEnrollments

STREAMS = ("users", "courses", "course_enrollments")


def catalog(mode: SyncMode = SyncMode.incremental, streams: Iterable[str] = STREAMS):
    builder = CatalogBuilder()
    for name in streams:
        stream = ConfiguredAirbyteStreamBuilder().with_name(name).with_sync_mode(mode).with_primary_key([["id"]])
        builder = builder.with_stream(stream)
    built = builder.build()
    if mode == SyncMode.incremental:  # the builder has no cursor setter; the cursor is source-defined anyway
        for configured in built.streams:
            configured.cursor_field = ["updated_at"]
    return built


def state_of(stream_states: Mapping[str, Mapping[str, Any]]):
    builder = StateBuilder()
    for name, value in stream_states.items():
        builder = builder.with_stream_state(name, dict(value))
    return builder.build()


def run_read(config: Mapping[str, Any], mode: SyncMode = SyncMode.incremental, state: Mapping[str, Mapping[str, Any]] | None = None,
             streams: Iterable[str] = STREAMS, expecting_exception: bool = False) -> EntrypointOutput:
    return read(SourceLmsEnrollments(), dict(config), catalog(mode, streams), state_of(state) if state else None,
                expecting_exception=expecting_exception)


def records_by_stream(output: EntrypointOutput) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in output.records:
        grouped[message.record.stream].append(message.record.data)
    return grouped


def final_states(output: EntrypointOutput) -> dict[str, dict[str, Any]]:
    """The last state of each stream, as the next sync would get it."""
    states: dict[str, dict[str, Any]] = {}
    for message in output.state_messages:
        stream_state = message.state.stream
        states[stream_state.stream_descriptor.name] = dict(stream_state.stream_state.__dict__ if hasattr(stream_state.stream_state, "__dict__") else stream_state.stream_state)
    return states


def messages_in_order(output: EntrypointOutput) -> list[tuple[str, str, Any]]:
    """(kind, stream, payload) for RECORD and STATE messages in emission order."""
    ordered = []
    for message in output._messages:  # noqa: SLF001 - the wrapper keeps emission order only here
        if message.type.name == "RECORD":
            ordered.append(("record", message.record.stream, message.record.data))
        elif message.type.name == "STATE":
            stream_state = message.state.stream
            value = stream_state.stream_state
            value = value.__dict__ if hasattr(value, "__dict__") else dict(value)
            ordered.append(("state", stream_state.stream_descriptor.name, value))
    return ordered


def assert_state_never_ahead(output: EntrypointOutput) -> int:
    """design.md §5: after a state with cursor c, no record of that stream with updated_at < c may still come."""
    cursors: dict[str, str] = {}
    checked = 0
    for kind, stream, payload in messages_in_order(output):
        if kind == "state":
            if payload.get("updated_at"):
                cursors[stream] = payload["updated_at"]
        else:
            cursor, updated_at = cursors.get(stream), payload.get("updated_at")
            if cursor and updated_at is not None:
                assert updated_at >= cursor, f"{stream}: record {payload['id']} ({updated_at}) emitted after state {cursor}"
                checked += 1
    return checked


@dataclass
class CliResult:
    returncode: int
    messages: list[dict[str, Any]]
    stderr: str
    stdout: str = field(repr=False, default="")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.of_type("RECORD") if stream is None or m["record"]["stream"] == stream]

    def connection_status(self) -> dict[str, Any]:
        return self.of_type("CONNECTION_STATUS")[-1]["connectionStatus"]

    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"]["type"] == "ERROR"]

    @classmethod
    def of_process(cls, done: subprocess.CompletedProcess) -> "CliResult":
        """The Airbyte messages a finished connector process printed (one JSON object a line)."""
        messages = [json.loads(line) for line in map(str.strip, done.stdout.splitlines()) if line.startswith("{")]
        return cls(done.returncode, messages, done.stderr, done.stdout)


def connector_command() -> list[str]:
    """The installed console script of this environment (the real entrypoint a user runs)."""
    script = Path(sys.executable).with_name("source-lms-enrollments")
    return [str(script)] if script.exists() else [shutil.which("source-lms-enrollments") or "source-lms-enrollments"]


def run_cli(args: list[str], tmp_path: Path, config: Mapping[str, Any] | None = None, catalog_obj: Any = None,
            state: Any = None, timeout: float = 120) -> CliResult:
    argv = connector_command() + args
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
        argv += ["--config", str(tmp_path / "config.json")]
    if catalog_obj is not None:
        from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer

        (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog_obj)))
        argv += ["--catalog", str(tmp_path / "catalog.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        argv += ["--state", str(tmp_path / "state.json")]
    return CliResult.of_process(subprocess.run(argv, capture_output=True, text=True, timeout=timeout))


def iso(epoch):
    """A fake's Unix seconds as the connector writes timestamps (None for unset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def queries(server, path):
    """The query of every request a fake server got for `path`."""
    return [query for _, p, query in server.requests if p == path]
