"""The connector's command line: the CDK's entrypoint, with a cheaper path for each record message.

`airbyte_cdk.entrypoint.launch` prints every message with `print(f"{message}\\n", end="")` (two writes into the
CDK's PrintBuffer, each taking its lock) and counts each record under a new `HashableStreamDescriptor`. Per record
that is ~1.5 µs of the CDK's ~10 µs (bench/cdk_path.py, `make bench`), on the hot path of every sync. `run` does
the same work with one write per message and one descriptor per stream; everything else is the CDK's own
(argument parsing, spec/check/discover/read, the PrintBuffer that keeps lines from several threads whole, the
uncaught-exception handler, secret filtering, state counts).
"""

import sys
from typing import Any, DefaultDict, List, Optional

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import AirbyteMessage, Type
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor

from .source import SourceLmsEnrollments


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


def launch(source: Any, args: List[str]) -> None:
    entrypoint = LmsEntrypoint(source)
    parsed_args = entrypoint.parse_args(args)
    with PRINT_BUFFER:
        write = sys.stdout.write  # the PrintBuffer while it is entered (or pytest's capture): one call keeps a line whole
        for message in entrypoint.run(parsed_args):
            write(message + "\n")


def run() -> None:
    launch(SourceLmsEnrollments(), sys.argv[1:])


if __name__ == "__main__":
    run()
