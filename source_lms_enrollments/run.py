"""The connector's command line: the CDK's entrypoint, with a cheaper path for each record message.

`airbyte_cdk.entrypoint.launch` prints every message with `print(f"{message}\\n", end="")` (two writes into the
CDK's PrintBuffer, each taking its lock) and counts each record under a new `HashableStreamDescriptor`. Per record
that is ~1.5 µs of the CDK's ~10 µs (bench/cdk_path.py, `make bench`), on the hot path of every sync. `run` does
the same work with one write per message and one descriptor per stream; everything else is the CDK's own
(argument parsing, spec/check/discover/read, the PrintBuffer that keeps lines from several threads whole, the
uncaught-exception handler, secret filtering, state counts).

What a person gets wrong is one clear line, never a traceback: no command is one line on stderr; a config file that
is missing or not JSON, or a config that does not fit the spec (`validate_config`, by field name, never by value),
is one TRACE message of type config_error without a stack trace (for `check`, its FAILED connection status).
"""

import sys
from typing import Any, DefaultDict, List, Optional

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import AirbyteMessage, ConnectorSpecification, FailureType, Type
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .base import config_error
from .http_policy import install_cdk_log_wording
from .source import SourceLmsEnrollments

COMMANDS = ("spec", "check", "discover", "read")


class LmsEntrypoint(AirbyteEntrypoint):
    _descriptors: dict[tuple[str, Optional[str]], HashableStreamDescriptor] = {}

    @staticmethod
    def handle_record_counts(message: AirbyteMessage, stream_message_count: DefaultDict[HashableStreamDescriptor, float]) -> AirbyteMessage:
        if message.type is Type.RECORD and message.record is not None:
            key = (message.record.stream, message.record.namespace)
            descriptor = LmsEntrypoint._descriptors.get(key)
            if descriptor is None:
                descriptor = LmsEntrypoint._descriptors[key] = HashableStreamDescriptor(name=key[0], namespace=key[1])
            stream_message_count[descriptor] += 1.0
            return message
        return AirbyteEntrypoint.handle_record_counts(message, stream_message_count)

    def validate_connection(self, source_spec: ConnectorSpecification, config: Any) -> None:  # type: ignore[override]
        # `check` always runs the CDK's validation, whose message would print a misspelt secret: ours runs first.
        validated = getattr(self.source, "validated", None)
        if validated is not None:
            validated(config, self.logger)
        try:
            AirbyteEntrypoint.validate_connection(source_spec, config)
        except AirbyteTracedException:
            raise config_error("The config does not match the connector's spec (see `spec`).") from None


def launch(source: Any, args: List[str]) -> None:
    entrypoint = LmsEntrypoint(source)
    install_cdk_log_wording()  # again, now that the CDK's console handler certainly exists
    parsed_args = entrypoint.parse_args(args)
    if not getattr(parsed_args, "command", None):
        print(f"source-lms-enrollments: a command is required: one of {', '.join(COMMANDS)} (--help for each).",
              file=sys.stderr)
        sys.exit(2)
    with PRINT_BUFFER:
        write = sys.stdout.write  # the PrintBuffer while it is entered (or pytest's capture): one call keeps a line whole
        try:
            for message in entrypoint.run(parsed_args):
                write(message + "\n")
        except AirbyteTracedException as error:
            if error.failure_type != FailureType.config_error:
                raise  # the CDK's handler: its trace message, with the stack trace for a fault of ours
            # The user's mistake: the trace message alone (masked like every message), no stack trace.
            message = error.as_sanitized_airbyte_message()
            message.trace.error.stack_trace = None
            write(entrypoint.airbyte_message_to_string(message) + "\n")
            exit_code = 1
        else:
            exit_code = 0
    if exit_code:
        sys.exit(exit_code)


def run() -> None:
    launch(SourceLmsEnrollments(), sys.argv[1:])


if __name__ == "__main__":
    run()
