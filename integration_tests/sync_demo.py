"""The demo LMS behind `make sync` without CONFIG: the fake TalentLMS, in-process, over seeded data.

It is a local simulation of a TalentLMS account, not a real one. The seeded data is the same on every run, so to
show what an incremental sync picks up, a run that follows an earlier sync first changes a few records in the
simulated LMS (renames two users, retitles a course, changes two enrollments' status and progress) and deletes a
few (a learner with their enrollments, a course with its enrollments, one more enrollment), as a person would in
the real one. The lines say what changed and what was deleted, a completed enrollment reopened included.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator

from integration_tests.fake_lms import start_fake
from integration_tests.fake_lms.server import FakeProviderApp
from source_lms_enrollments import sync

PROVIDER = "talentlms"
USERS, COURSES = 200, 20


def change_and_delete(app: FakeProviderApp) -> tuple[dict[str, set[str]], list[str], dict[str, set[str]]]:
    """Change a few records of the simulated LMS, then delete a learner, a course and one more enrollment, none of
    them among the changed ones (each deleted user or course takes its enrollments with it).

    Returns the changed record ids per stream, the enrollments' moves ("passed 100% -> in_progress 55%"), and the
    deleted record ids per stream (what the next incremental sync must mark deleted).
    """
    enrollments = app.data.enrollments
    before = {key: (e.state, e.progress) for key, e in enrollments.items()}
    changed = app.touch_sample()
    moves = [f"{before[key][0]} {before[key][1]}% -> {e.state} {e.progress}%"
             for key, e in enrollments.items() if (e.state, e.progress) != before[key]]

    listed = app.expected_ids()
    learners = [e for e in app.listed_enrollments() if e.role == "learner"]
    touched = {e.id for e in learners if app.enrollment_record_id(e) in changed["course_enrollments"]}
    people = {p.id: p for p in app.listed_people()}
    user = next(people[e.user_id] for e in learners
                if e.user_id != 1 and people[e.user_id].status == "active"
                and app.user_record_id(people[e.user_id]) not in changed["users"]
                and not any(t.user_id == e.user_id for t in learners if t.id in touched))
    course = next(c for c in reversed(app.listed_courses())
                  if app.course_record_id(c) not in changed["courses"]
                  and not any(e.course_id == c.id and (e.id in touched or e.user_id == user.id) for e in learners))
    enrollment = next(e for e in learners if e.id not in touched and e.user_id != user.id and e.course_id != course.id)
    app.data.delete(users=[user.id], courses=[course.id], enrollments=[enrollment.id])
    after = app.expected_ids()
    return changed, moves, {stream: listed[stream] - after[stream] for stream in listed}


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
            changed, moves, deleted = change_and_delete(server.app)
            lines.append(
                "A previous demo sync exists, so this one is incremental. To show a change, the simulated LMS has "
                f"just renamed {len(changed['users'])} users, retitled {len(changed['courses'])} course and changed "
                f"{len(moves)} enrollments ({'; '.join(moves)}) (ids: "
                + "; ".join(f"{stream} {', '.join(sorted(ids))}" for stream, ids in changed.items())
                + ")."
            )
            (user,), (course,) = deleted["users"], deleted["courses"]
            theirs = sorted(i for i in deleted["course_enrollments"] if i.partition(":")[0] == user)
            its = sorted(i for i in deleted["course_enrollments"] if i.partition(":")[2] == course)
            more = sorted(deleted["course_enrollments"] - set(theirs) - set(its))
            lines.append(
                f"To show a deletion, it has also just deleted user {user} (with their {len(theirs)} enrollments), "
                f"course {course} (with its {len(its)} enrollments) and {len(more)} more enrollment "
                f"({', '.join(more)}): {len(deleted['users'])} user, {len(deleted['courses'])} course and "
                f"{len(deleted['course_enrollments'])} enrollments gone. Their rows stay in the tables, marked deleted "
                "(remote_deleted_at set, the other fields null but the ids); the summary counts them. The simulation starts "
                "from the same seed on every run, so every later run changes and deletes these same records."
            )
        yield server.config(), lines
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """`make sync` without CONFIG: the sync CLI with --demo, this simulated LMS handed to it."""
    return sync.main(["--demo", *(sys.argv[1:] if argv is None else argv)], demo_lms=demo_lms)


if __name__ == "__main__":
    raise SystemExit(main())
