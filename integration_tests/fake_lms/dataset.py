"""Deterministic, provider-neutral LMS data: people, courses and enrollments of any size.

Every fake provider renders this same data in its own API's shape, so tests can compute what the connector
must emit from here, whatever the provider. Generation is seeded; timestamps are Unix seconds in 2024 (fixed),
and `touch()` moves changed records to the real current time, so an incremental sync after it sees them.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

BASE_EPOCH = 1704067200  # 2024-01-01T00:00:00Z
YEAR = 366 * 86400

FIRST_NAMES = ["Zoë", "José", "Łukasz", "Søren", "Χρήστος", "Дмитрий", "Ana-María", "Siobhán", "Nguyễn", "Ayşe",
               "John", "Mary", "Amit", "Chloé", "Björn", "Fatima", "Kenji", "Ngozi", "Lucía", "Oğuz"]
LAST_NAMES = ["O'Brien", "Müller", "Smith", "García", "Kowalski", "Øvergaard", "Papadopoulos", "Иванов", "李",
              "Nakamura", "Dubois", "Okafor", "Rossi", "Jensen", "Silva", "Yılmaz", "Novák", "Brown", "Haddad", "Kim"]
TIMEZONES = ["Europe/Athens", "America/New_York", "Asia/Tokyo", "UTC", None]
LANGUAGES = ["en", "el", "de", "fr", "es"]
CATEGORIES = [("1", "Compliance"), ("2", "Onboarding"), ("3", "Sales"), ("4", "Engineering")]
TOPICS = ["Safety", "GDPR", "Onboarding", "Negotiation", "Python", "First aid", "Leadership", "Écriture", "Ethics"]

# Enrollment states, neutral: each fake maps them to its own vocabulary.
ENROLLMENT_STATES = ["not_started", "in_progress", "completed", "passed", "failed", "expired", "withdrawn", "assigned"]


@dataclass
class Person:
    id: int
    login: str
    first_name: str
    last_name: str
    email: str | None
    status: str  # active | inactive | deleted
    role: str  # learner | instructor | admin | manager
    language: str | None
    timezone: str | None
    job_title: str | None
    created: int
    updated: int
    last_login: int | None
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class Course:
    id: int
    code: str
    name: str
    description: str
    status: str  # active | inactive | draft
    kind: str  # course | path
    category: tuple[str, str]
    language: str | None
    duration_seconds: int | None
    created: int
    updated: int
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class Enrollment:
    id: int
    user_id: int
    course_id: int
    role: str  # learner | instructor
    state: str  # one of ENROLLMENT_STATES
    progress: int
    assigned: bool  # assigned by an administrator (vs chosen by the learner)
    enrolled: int
    started: int | None
    completed: int | None
    expires: int | None
    due: int | None
    last_activity: int | None
    time_spent: int
    score: float | None
    updated: int

    @property
    def key(self) -> str:
        return f"{self.user_id}:{self.course_id}"


class Dataset:
    def __init__(self, users: int = 50, courses: int = 10, enrollments: int | None = None, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.people: dict[int, Person] = {}
        self.courses: dict[int, Course] = {}
        self.enrollments: dict[int, Enrollment] = {}
        # What `delete()` removed, per kind: id -> (the record as it was, deletion time in Unix seconds).
        self.deleted: dict[str, dict[int, tuple[Any, int]]] = {}
        for number in range(1, users + 1):
            self.people[number] = self._person(rng, number)
        for number in range(1, courses + 1):
            self.courses[number] = self._course(rng, number)
        total = enrollments if enrollments is not None else min(users * 2, users * courses)
        per_course, extra = divmod(total, max(courses, 1))
        next_id = 1
        for index, course_id in enumerate(sorted(self.courses)):
            count = min(per_course + (1 if index < extra else 0), users)
            for position, user_id in enumerate(sorted(rng.sample(range(1, users + 1), count))):
                # The first row of every fifth course is its instructor: not a learner enrollment.
                role = "instructor" if position == 0 and course_id % 5 == 0 else "learner"
                self.enrollments[next_id] = self._enrollment(rng, next_id, user_id, course_id, role)
                next_id += 1

    # ---- generation ----------------------------------------------------------------------------------------
    @staticmethod
    def _person(rng: random.Random, number: int) -> Person:
        first = FIRST_NAMES[number % len(FIRST_NAMES)]
        last = LAST_NAMES[(number * 7) % len(LAST_NAMES)]
        created = BASE_EPOCH + rng.randrange(0, YEAR // 2)
        status = "active" if number % 9 else ("inactive" if number % 2 else "deleted")
        role = "admin" if number == 1 else "instructor" if number % 11 == 0 else "manager" if number % 13 == 0 else "learner"
        return Person(
            id=number,
            login=f"user{number}",
            first_name=first,
            last_name=last,
            email=None if number % 17 == 0 else f"user{number}@example.org",  # a few users have no e-mail
            status=status,
            role=role,
            language=LANGUAGES[number % len(LANGUAGES)],
            timezone=TIMEZONES[number % len(TIMEZONES)],
            job_title=None if number % 4 == 0 else ["Engineer", "Nurse", "Sales rep", "Analyst"][number % 4],
            created=created,
            updated=created + rng.randrange(0, YEAR // 2),
            last_login=None if number % 6 == 0 else created + rng.randrange(0, YEAR // 2),
            custom={"department": ["R&D", "Sales", "Ops", ""][number % 4]},
        )

    @staticmethod
    def _course(rng: random.Random, number: int) -> Course:
        created = BASE_EPOCH + rng.randrange(0, YEAR // 2)
        topic = TOPICS[number % len(TOPICS)]
        return Course(
            id=number,
            code=f"C{number:04d}",
            name=f"{topic} {number}",
            description="" if number % 4 == 0 else f"<p>All about {topic.lower()}.</p>",
            status="inactive" if number % 7 == 0 else "active",
            kind="path" if number % 6 == 0 else "course",
            category=CATEGORIES[number % len(CATEGORIES)],
            language=LANGUAGES[number % len(LANGUAGES)],
            duration_seconds=None if number % 3 == 0 else 600 * (number % 10 + 1),
            created=created,
            updated=created + rng.randrange(0, YEAR // 2),
            custom={"owner": f"team-{number % 3}"},
        )

    @staticmethod
    def _enrollment(rng: random.Random, number: int, user_id: int, course_id: int, role: str) -> Enrollment:
        state = ENROLLMENT_STATES[number % len(ENROLLMENT_STATES)]
        enrolled = BASE_EPOCH + rng.randrange(0, YEAR // 2)
        started = enrolled + rng.randrange(60, 86400) if state not in ("not_started", "assigned") else None
        completed = (started or enrolled) + rng.randrange(3600, 30 * 86400) if state in ("completed", "passed", "failed") else None
        progress = {"not_started": 0, "assigned": 0, "in_progress": 10 + number % 80, "completed": 100, "passed": 100,
                    "failed": 100, "expired": number % 60, "withdrawn": number % 50}[state]
        expires = enrolled + 30 * 86400 if state == "expired" else (enrolled + YEAR * 5 if number % 10 == 3 else None)
        last_activity = max(t for t in (enrolled, started, completed) if t) if started else None
        return Enrollment(
            id=number,
            user_id=user_id,
            course_id=course_id,
            role=role,
            state=state,
            progress=progress,
            assigned=number % 2 == 0,
            enrolled=enrolled,
            started=started,
            completed=completed,
            expires=expires,
            due=enrolled + 14 * 86400 if number % 3 == 0 else None,
            last_activity=last_activity,
            time_spent=0 if state in ("not_started", "assigned") else 60 * (1 + number % 120),
            score=round(50 + (number % 50) + 0.5, 1) if state in ("passed", "failed", "completed") else None,
            updated=max(t for t in (enrolled, started, completed) if t),
        )

    # ---- queries and changes -------------------------------------------------------------------------------
    def learner_enrollments(self) -> list[Enrollment]:
        return [e for e in self.enrollments.values() if e.role == "learner"]

    def enrollments_of_course(self, course_id: int) -> list[Enrollment]:
        index = self._by_course()
        return index.get(course_id, [])

    def _by_course(self) -> dict[int, list[Enrollment]]:
        cache = getattr(self, "_course_index", None)
        if cache is None or cache[0] != len(self.enrollments):
            grouped: dict[int, list[Enrollment]] = {}
            for enrollment in self.enrollments.values():
                grouped.setdefault(enrollment.course_id, []).append(enrollment)
            cache = (len(self.enrollments), grouped)
            self._course_index = cache
        return cache[1]

    def touch(self, users: Iterable[int] = (), courses: Iterable[int] = (), enrollments: Iterable[int] = (), when: int | None = None) -> int:
        """Change some records now: a rename, a retitle, progress; each one's `updated` moves to `when`."""
        when = when or int(time.time())
        for user_id in users:
            person = self.people[user_id]
            person.last_name = person.last_name + " Jr"
            person.updated = when
        for course_id in courses:
            course = self.courses[course_id]
            course.name = course.name + " (v2)"
            course.updated = when
        for enrollment_id in enrollments:
            enrollment = self.enrollments[enrollment_id]
            enrollment.state = "in_progress" if enrollment.state != "in_progress" else "completed"
            enrollment.progress = 55 if enrollment.state == "in_progress" else 100
            enrollment.started = enrollment.started or when - 60
            enrollment.completed = when if enrollment.state == "completed" else None
            enrollment.last_activity = when
            enrollment.time_spent += 300
            enrollment.updated = when
        return when

    def remove_course(self, course_id: int) -> None:
        self.courses.pop(course_id, None)

    def delete(self, users: Iterable[int] = (), courses: Iterable[int] = (), enrollments: Iterable[int] = (), when: int | None = None) -> int:
        """Delete records now, as an administrator would: a deleted user or course takes its enrollments with it.

        The records leave the data (an API that lists live records only shows them gone); `deleted` keeps each one
        with its deletion time, for a fake whose API still lists deleted records with a flag or a status.
        """
        when = when or int(time.time())
        gone_users, gone_courses = set(users), set(courses)
        for user_id in gone_users:
            self.deleted.setdefault("users", {})[user_id] = (self.people.pop(user_id), when)
        for course_id in gone_courses:
            self.deleted.setdefault("courses", {})[course_id] = (self.courses.pop(course_id), when)
        doomed = set(enrollments) | {e.id for e in self.enrollments.values() if e.user_id in gone_users or e.course_id in gone_courses}
        for enrollment_id in doomed:
            self.deleted.setdefault("enrollments", {})[enrollment_id] = (self.enrollments.pop(enrollment_id), when)
        self._course_index = None
        return when
