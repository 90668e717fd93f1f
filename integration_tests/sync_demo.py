"""The demo LMS behind `make sync` without CONFIG: the fake TalentLMS, in-process, over seeded data.

It is a local simulation of a TalentLMS account, not a real one. The seeded data is the same on every run, so to
show what an incremental sync picks up, a run that follows an earlier sync first changes a few records in the
simulated LMS (renames two users, retitles a course, moves two enrollments on), as a person would in the real one.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from integration_tests.fake_lms import start_fake

PROVIDER = "talentlms"
USERS, COURSES = 200, 20


@contextmanager
def demo_lms(change_some: bool) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """The connector config of a running simulated TalentLMS, and lines saying what it is and what changed."""
    server = start_fake(PROVIDER, users=USERS, courses=COURSES)
    try:
        lines = [
            f"Demo: syncing a LOCAL SIMULATION of a TalentLMS account (the bundled fake LMS server on {server.url}, "
            f"seeded data: {USERS} users, {COURSES} courses), not a real LMS. "
            "Use CONFIG=path/to/config.json (make sync) or --config to sync a real one.",
        ]
        if change_some:
            changed = server.app.touch_sample()
            lines.append(
                "A previous demo sync exists, so this one is incremental. To show a change, the simulated LMS has "
                f"just renamed {len(changed['users'])} users, retitled {len(changed['courses'])} course and moved "
                f"{len(changed['course_enrollments'])} enrollments on (ids: "
                + "; ".join(f"{stream} {', '.join(sorted(ids))}" for stream, ids in changed.items())
                + ")."
            )
        yield server.config(), lines
    finally:
        server.stop()
