"""What the CDK's own per-record path costs: one stream yielding N ready-made unified records through `launch(read)`.

    python -m bench.cdk_path N > /dev/null       (prints CPU seconds to stderr)

The difference between N records and 0 records, divided by N, is the CDK's share of each record (building the
AirbyteMessage, counting, serializing, printing), with no HTTP and no mapping of ours. bench/run.py runs it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from airbyte_cdk.entrypoint import launch
from airbyte_cdk.models import ConnectorSpecification
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "source_lms_enrollments" / "schemas" / "course_enrollments.json").read_text())
# A course_enrollments record as the TalentLMS mapper makes it (the shape, not its values, is what costs).
RECORD: dict[str, Any] = {
    "id": "1:7", "user": {"id": "1", "name": "Zoë Müller", "emails": [{"email": "user1@example.org", "type": "work", "is_primary": True}]},
    "course": {"id": "7", "title": "Safety 7"}, "status": "in_progress", "assigned_at": None, "due_at": None,
    "enrolled_at": "2024-03-02T10:00:00Z", "started_at": None, "last_activity_at": None, "completed_at": None,
    "progress_percent": 42, "time_spent_seconds": 3600, "score": None, "is_mandatory": None, "assigned_by": None,
    "attempt_number": None, "attempts_count": None, "urls": [{"url": "https://acme.talentlms.com/unit/view/id:7", "type": "launch"}],
    "created_at": "2024-03-02T10:00:00Z", "updated_at": None, "custom_fields": {}, "remote_data": None,
}


class Records(Stream):
    name = "course_enrollments"
    primary_key = "id"

    def __init__(self, count: int) -> None:
        self.count = count

    def get_json_schema(self) -> Mapping[str, Any]:
        return SCHEMA

    def read_records(self, *args: Any, **kwargs: Any) -> Iterable[Mapping[str, Any]]:
        record = RECORD
        for number in range(self.count):
            yield {**record, "id": str(number)}  # one copy, as a mapper makes one dict per record


class Source(AbstractSource):
    def __init__(self, count: int) -> None:
        self.count = count

    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        return ConnectorSpecification(connectionSpecification={"type": "object"})

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, Any]:
        return True, None

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        return [Records(self.count)]


def main() -> None:
    count, config, catalog = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    start = time.process_time()
    launch(Source(count), ["read", "--config", config, "--catalog", catalog])
    sys.stderr.write(f"{time.process_time() - start:.3f}\n")


if __name__ == "__main__":
    main()
