"""The demo LMS behind `make sync` without CONFIG: the fake TalentLMS, in-process, over seeded data.

It is a local simulation of a TalentLMS account, not a real one. The seeded data is the same on every run, so to
show what an incremental sync picks up, a run that follows an earlier sync first changes a few records in the
simulated LMS (renames two users, retitles a course, changes two enrollments' status and progress), as a person
would in the real one. The lines say what changed as it is, a completed enrollment reopened included.
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
        unlisted = USERS - len(server.app.listed_people())
        lines = [
            f"Demo: syncing a LOCAL SIMULATION of a TalentLMS account (the bundled fake LMS server on {server.url}, "
            f"seeded data: {USERS} users, {COURSES} courses), not a real LMS. "
            "Use CONFIG=path/to/config.json (make sync) or --config to sync a real one.",
            f"{unlisted} of the {USERS} users are deleted, and TalentLMS's API does not list deleted users: "
            f"{USERS - unlisted} users are synced.",
        ]
        if change_some:
            enrollments = server.app.data.enrollments
            before = {key: (e.state, e.progress) for key, e in enrollments.items()}
            changed = server.app.touch_sample()
            moves = [f"{before[key][0]} {before[key][1]}% -> {e.state} {e.progress}%"
                     for key, e in enrollments.items() if (e.state, e.progress) != before[key]]
            lines.append(
                "A previous demo sync exists, so this one is incremental. To show a change, the simulated LMS has "
                f"just renamed {len(changed['users'])} users, retitled {len(changed['courses'])} course and changed "
                f"{len(moves)} enrollments ({'; '.join(moves)}) (ids: "
                + "; ".join(f"{stream} {', '.join(sorted(ids))}" for stream, ids in changed.items())
                + ")."
            )
        yield server.config(), lines
    finally:
        server.stop()
