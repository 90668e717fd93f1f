"""The connector's real entrypoint (`source_lms_enrollments.run`), with `listed_ids`' encode and decode timed.

`python -m bench.timed_connector read --config … --catalog … [--state …]` runs exactly what
`python -m source_lms_enrollments.run` runs, except that `ListedIds.commit` (the end of a complete listing: the ids
merged, sorted and encoded once for the state) and `ListedIds.from_state` (what the state setter calls: the ids
decoded) are wrapped with a clock. At exit it writes one line to stderr, `BENCH-LISTED-IDS [{what, seconds, count}]`,
which bench/state_size.py reads. The wrappers cost two `perf_counter` calls a stream; nothing else changes.
"""

from __future__ import annotations

import atexit
import json
import sys
import time
from typing import Any

from source_lms_enrollments import deletions
from source_lms_enrollments.run import run

MARKER = "BENCH-LISTED-IDS "
_timings: list[dict[str, Any]] = []
_commit = deletions.ListedIds.commit
_from_state = deletions.ListedIds.from_state.__func__  # type: ignore[attr-defined]


def _timed_commit(self: deletions.ListedIds, complete: bool, tombstoned: Any = ()) -> None:
    start = time.perf_counter()
    _commit(self, complete, tombstoned)
    _timings.append({"what": "commit", "seconds": time.perf_counter() - start, "count": len(self.known) if self.known is not None else None})


def _timed_from_state(cls: type, value: Any) -> deletions.ListedIds:
    start = time.perf_counter()
    listed = _from_state(cls, value)
    _timings.append({"what": "decode", "seconds": time.perf_counter() - start, "count": len(listed.known) if listed.known is not None else None})
    return listed


deletions.ListedIds.commit = _timed_commit  # type: ignore[method-assign]
deletions.ListedIds.from_state = classmethod(_timed_from_state)  # type: ignore[method-assign, assignment]
atexit.register(lambda: sys.stderr.write(MARKER + json.dumps(_timings) + "\n"))

if __name__ == "__main__":
    run()
