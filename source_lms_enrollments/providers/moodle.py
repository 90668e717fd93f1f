"""Moodle, web services over REST ({site}/webservice/rest/server.php): users, courses and per-course enrollments.

Facts: ../shared/docs/providers-moodle-canvas.md §1 and §3.
- Auth: the token goes in the query string as `wstoken` with `wsfunction` and `moodlewsrestformat=json`. The CDK
  masks config secrets in every log line and trace; every message written here names the web-service function
  (`endpoint_name`), not the URL. (The CDK's own line for a request that fails for good, e.g. HTTP 403, does quote
  the URL, with the token masked as ****.)
- Errors come as HTTP 200 with `{"exception", "errorcode", "message"}`: such a body is always an error, classified
  on `errorcode` (the message is translated to the site language).
- No server-side "changed since" filter anywhere: every stream is read in full and filtered here.
- Times are Unix seconds, 0 meaning unset.
- Course and category names arrive HTML-escaped (format_string: `&` as `&amp;`); user names do not. Checked on a
  real Moodle 4.5.6 (../shared/recordings/moodle-4.5.6/).
- Call count per sync: 5 + 3 per course + 1 per learner with an active enrolment in a course with completion
  tracking + 1 per completed enrolment + 1 per learner whose enrolment is not active (their grades; see
  docs/providers/moodle.md).
"""

from __future__ import annotations

import html
import logging
import threading
from typing import Any, ClassVar, Iterable, Iterator, Mapping
from urllib.parse import parse_qs, urlsplit

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..base import LmsProvider, LmsStream, config_error
from ..unified import epoch_to_iso, full_name, primary_emails, to_number, to_percent, to_str

logger = logging.getLogger("airbyte")

SITE_INFO = "core_webservice_get_site_info"
GET_USERS = "core_user_get_users"
GET_COURSES = "core_course_get_courses"
GET_CATEGORIES = "core_course_get_categories"
ENROLLED_USERS = "core_enrol_get_enrolled_users"
USERS_COURSES = "core_enrol_get_users_courses"
COMPLETION_STATUS = "core_completion_get_course_completion_status"
GRADE_ITEMS = "gradereport_user_get_grade_items"

# Without these the three streams cannot be read: check fails naming the missing ones.
REQUIRED_FUNCTIONS = (SITE_INFO, GET_USERS, GET_COURSES, ENROLLED_USERS)
# Without these the sync still runs, with the fields they feed left null (a warning says which).
OPTIONAL_FUNCTIONS = {
    GET_CATEGORIES: "course category names",
    USERS_COURSES: "enrollment progress_percent and completion",
    COMPLETION_STATUS: "enrollment completed_at",
    GRADE_ITEMS: "enrollment score",
}
ENROLLED_PAGE_SIZE = 500
SERVICE_PATH = "Site administration > Server > Web services > External services"

# errorcodes of the per-course and per-user calls that mean "no data for this user here", not a failed sync
# (providers doc §1.10 #6).
# usernotenroled: the learner's enrolment is not active (ended, suspended, not begun), as a real 4.5 site answers.
# usernotconfirmed: core_user::require_active_user refuses unconfirmed accounts in every per-user function.
NO_DATA_FOR_USER = frozenset({"cannotviewreport", "usernotenroled", "nocriteriaset", "completionnotenabled", "usernotconfirmed"})


class Moodle(LmsProvider):
    provider_type = "moodle"
    title = "Moodle"
    base_url_example = "https://moodle.example.edu"
    spec_required = ["token"]
    spec_properties = {
        "token": {
            "type": "string",
            "title": "Web service token",
            "description": (
                "Site administration > Server > Web services > Manage tokens. The token's external service must hold "
                "core_webservice_get_site_info, core_user_get_users, core_course_get_courses and "
                "core_enrol_get_enrolled_users; core_course_get_categories, core_enrol_get_users_courses, "
                "core_completion_get_course_completion_status and gradereport_user_get_grade_items add category names, "
                "progress, completion dates and scores."
            ),
            "airbyte_secret": True,
            "order": 2,
        },
        "learner_roles": {
            "type": "array",
            "items": {"type": "string"},
            "title": "Learner roles",
            "description": "Course role short names whose enrolments are learner enrollments. Others (editingteacher, teacher, manager, …) are not emitted.",
            "default": ["student"],
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.token, that web services and the REST protocol are enabled "
        "(Site administration > Server > Web services > Overview), and that provider.base_url is the site URL."
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/webservice/rest/"
        self.token = str(self.config.provider["token"]).strip()
        roles = self.config.provider.get("learner_roles") or ["student"]
        if not isinstance(roles, list) or not all(isinstance(r, str) and r.strip() for r in roles):
            raise config_error(f"provider.learner_roles must be a list of role short names such as [\"student\"], got {roles!r}.")
        self.learner_roles = frozenset(r.strip() for r in roles)
        self._site_info: dict[str, Any] | None = None
        self._warned: set[str] = set()

    def streams(self) -> list[LmsStream]:
        return [MoodleUsers(self), MoodleCourses(self), MoodleCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return MoodleSiteInfo(self, max_retries=1)

    def check(self) -> None:
        super().check()  # a wrong token, an unreachable or non-Moodle host fail here
        self.require_functions()

    # ---- what the token's service allows, read once per sync ----------------------------------------------------
    @property
    def site_info(self) -> dict[str, Any]:
        if self._site_info is None:
            self._site_info = next(iter(MoodleSiteInfo(self).records_of_slice(SyncMode.full_refresh, {})), {})
        return self._site_info

    @property
    def functions(self) -> frozenset[str]:
        listed = self.site_info.get("functions")
        return frozenset(f.get("name") for f in listed if isinstance(f, dict)) if isinstance(listed, list) else frozenset()

    def has_function(self, function: str) -> bool:
        if function in self.functions:
            return True
        if function in OPTIONAL_FUNCTIONS and function not in self._warned:
            self._warned.add(function)
            logger.warning(
                f"Moodle: the token's web service does not hold {function}, so {OPTIONAL_FUNCTIONS[function]} "
                f"will be null. Add it in {SERVICE_PATH} to read them."
            )
        return False

    def require_functions(self) -> None:
        """Fail a read early, naming every required function the token's service lacks; say what optional ones leave null."""
        missing = [f for f in REQUIRED_FUNCTIONS if f != SITE_INFO and not self.has_function(f)]
        if missing:
            raise config_error(self.missing_functions_message(missing))
        for function in OPTIONAL_FUNCTIONS:
            self.has_function(function)

    def missing_functions_message(self, missing: list[str]) -> str:
        service = "the token's external service"
        return (
            f"Moodle: {service} does not hold {', '.join(missing)}. Add {'it' if len(missing) == 1 else 'them'} in "
            f"{SERVICE_PATH} > Functions (or use a token of a service that has them)."
        )

    def course_url(self, course_id: str) -> str:
        return f"{self.config.base_url}/course/view.php?id={course_id}"


# ---- the REST call and its error body ------------------------------------------------------------------------------
class MoodleCall(LmsStream):
    """One web-service function through server.php. Subclasses name `wsfunction` and its arguments."""

    wsfunction: ClassVar[str]
    # errorcodes this call answers with "nothing here" rather than an error.
    empty_on: ClassVar[frozenset[str]] = frozenset()

    @property
    def unified_name(self) -> str:  # type: ignore[override]
        return self.wsfunction

    def path(self, **_: Any) -> str:
        return "server.php"

    def arguments(self, stream_slice: Mapping[str, Any], next_page_token: Mapping[str, Any] | None) -> dict[str, Any]:
        return {}

    def request_params(self, stream_state: Any = None, stream_slice: Mapping[str, Any] | None = None, next_page_token: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {
            "wstoken": self.provider.token,
            "wsfunction": self.wsfunction,
            "moodlewsrestformat": "json",
            **self.arguments(stream_slice or {}, next_page_token),
        }

    def next_page_token(self, response: requests.Response) -> None:
        return None

    def endpoint_name(self, url: str | None) -> str:
        # server.php says nothing; the function does. Never the URL: its query holds the token.
        if url:
            named = parse_qs(urlsplit(url).query).get("wsfunction")
            if named:
                return named[0]
        return self.wsfunction

    def describe_error(self, response: requests.Response) -> str | None:
        try:
            body = response.json()
        except ValueError:
            return None
        if isinstance(body, dict) and body.get("exception"):
            return f"{body.get('errorcode')}: {body.get('message')}"
        return None

    def body_of(self, response: requests.Response) -> Any:
        """The JSON answer; a 200 with an exception body raises (or is None for an errorcode in `empty_on`)."""
        body = self.json_of(response)
        if isinstance(body, dict) and "exception" in body:
            if body.get("errorcode") in self.empty_on:
                return None
            raise moodle_error(self.endpoint_name(response.url), body)
        if isinstance(body, dict) and body.get("warnings"):
            for warning in body["warnings"][:5]:
                logger.warning(f"Moodle {self.wsfunction} warned: {warning.get('warningcode')}: {warning.get('message')} (item {warning.get('item')} {warning.get('itemid')})")
        return body

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        body = self.body_of(response)
        if body is None:
            return
        yield from self.items_of(response, body)

    def items_of(self, response: requests.Response, body: Any) -> Iterable[Mapping[str, Any]]:
        if not isinstance(body, list) or not all(isinstance(item, dict) and item.get("id") is not None for item in body):
            raise self.malformed(response, "expected a JSON array of objects, each with an id")
        return body


def moodle_error(function: str, body: Mapping[str, Any]) -> AirbyteTracedException:
    """A Moodle exception body as an error a person can act on; classified on errorcode (messages are translated)."""
    exception, code, said = body.get("exception"), body.get("errorcode"), body.get("message")
    quoted = f"({exception}/{code}: {said})"
    failure = FailureType.config_error
    if code == "invalidtoken":
        message = f"Moodle rejected provider.token when calling {function} {quoted}. Check provider.token: it may be wrong, expired or deleted."
    elif code == "accessexception" or exception == "webservice_access_exception":
        message = (
            f"Moodle refused {function} {quoted}: the token's external service does not hold {function}, or the "
            f"service restricts this user, IP address or the REST protocol. Add {function} in {SERVICE_PATH} > Functions "
            "and check the service's authorised users."
        )
    elif code in ("nopermissions", "requireloginerror", "errorcoursecontextnotvalid") or exception in ("required_capability_exception", "require_login_exception"):
        message = f"Moodle refused {function} {quoted}: the token's user lacks a capability this function needs. Give that user the capability (or use a site administrator's token)."
    else:
        failure = FailureType.system_error
        message = f"Moodle {function} answered an error {quoted}."
    internal = f"{message} debuginfo: {body.get('debuginfo')}" if body.get("debuginfo") else message
    return AirbyteTracedException(message=message, internal_message=internal, failure_type=failure)


# ---- helper calls ----------------------------------------------------------------------------------------------------
class MoodleSiteInfo(MoodleCall):
    """core_webservice_get_site_info: who the token is, the site's version, the functions its service holds."""

    wsfunction = SITE_INFO

    def items_of(self, response: requests.Response, body: Any) -> Iterable[Mapping[str, Any]]:
        if not isinstance(body, dict) or "functions" not in body:
            raise self.malformed(response, "expected the site-info object with its functions; is provider.base_url the Moodle site URL?")
        self.provider._site_info = body  # read once per sync, whoever asks first (check included)
        return [body]


class MoodleCourseList(MoodleCall):
    """core_course_get_courses with no ids: every course, in one answer, the site course (format "site") left out."""

    wsfunction = GET_COURSES

    def items_of(self, response: requests.Response, body: Any) -> Iterable[Mapping[str, Any]]:
        return [course for course in super().items_of(response, body) if not is_site_course(course)]


class MoodleCategories(MoodleCall):
    wsfunction = GET_CATEGORIES


class MoodleEnrolledUsers(MoodleCall):
    """core_enrol_get_enrolled_users of one course, paged with limitfrom/limitnumber (ordered by user id).

    The slice may ask for `only`: onlyactive, read with userfields=id (only the ids matter). Its complement among the
    members is exactly what `onlysuspended` would answer (get_enrolled_join in lib/enrollib.php; the real 4.5.6 site's
    two lists are disjoint and make up the whole list): "enrolled but not active", so that list is not read.
    A course deleted between the course list and this call answers invalidrecord: skipped with a warning, and the
    listing is cut short (no deletion is inferred from it this sync).
    """

    wsfunction = ENROLLED_USERS
    empty_on = frozenset({"invalidrecord"})
    page_size = ENROLLED_PAGE_SIZE

    def arguments(self, stream_slice: Mapping[str, Any], next_page_token: Mapping[str, Any] | None) -> dict[str, Any]:
        options: list[tuple[str, Any]] = [("limitfrom", (next_page_token or {}).get("limitfrom", 0)), ("limitnumber", self.page_size), ("sortby", "id")]
        if stream_slice.get("only"):
            options += [(stream_slice["only"], 1), ("userfields", "id")]
        params: dict[str, Any] = {"courseid": stream_slice["course_id"]}
        for index, (name, value) in enumerate(options):
            params[f"options[{index}][name]"] = name
            params[f"options[{index}][value]"] = value
        return params

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        body = self.json_of(response)
        if not isinstance(body, list) or len(body) < self.page_size:
            return None
        sent = parse_qs(urlsplit(response.request.url).query)
        limitfrom = next((int(sent[f"options[{i}][value]"][0]) for i in range(5) if sent.get(f"options[{i}][name]") == ["limitfrom"]), 0)
        return {"limitfrom": limitfrom + self.page_size}

    def parse_response(self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        body = self.body_of(response)
        if body is None:
            course_id = (stream_slice or {}).get("course_id")
            logger.warning(f"Moodle {ENROLLED_USERS}: course {course_id} no longer exists (deleted during the sync?); skipped.")
            # Its rows are missing from this listing, not known deleted: no tombstone from it (design.md §5a).
            self.listing_cut_short(f"course {course_id} answered invalidrecord (deleted during the sync?)")
            return
        yield from self.items_of(response, body)


class MoodleUsersCourses(MoodleCall):
    """core_enrol_get_users_courses of one user: progress and completion of each course they are actively enrolled in."""

    wsfunction = USERS_COURSES

    def arguments(self, stream_slice: Mapping[str, Any], next_page_token: Any) -> dict[str, Any]:
        return {"userid": stream_slice["user_id"], "returnusercount": 0}  # the count "can add several seconds"


class MoodleCompletionStatus(MoodleCall):
    """core_completion_get_course_completion_status of one user in one course: when each criterion was completed."""

    wsfunction = COMPLETION_STATUS
    empty_on = NO_DATA_FOR_USER

    def arguments(self, stream_slice: Mapping[str, Any], next_page_token: Any) -> dict[str, Any]:
        return {"courseid": stream_slice["course_id"], "userid": stream_slice["user_id"]}

    def items_of(self, response: requests.Response, body: Any) -> Iterable[Mapping[str, Any]]:
        status = body.get("completionstatus") if isinstance(body, dict) else None
        if not isinstance(status, dict):
            raise self.malformed(response, "expected an object with completionstatus")
        return [status]


class MoodleGradeItems(MoodleCall):
    """gradereport_user_get_grade_items of one course: every graded user's items (userid=0), or one user's.

    userid=0 lists only users with an active enrolment on a site with Moodle's default
    grade_report_showonlyactiveenrol=1 (grade/report/user/classes/external/user.php); a learner left out is read with
    their own userid, which answers whatever their enrolment (recordings: gradereport_user_get_grade_items__*).
    """

    wsfunction = GRADE_ITEMS
    empty_on = NO_DATA_FOR_USER  # nothing to grade in a course without a gradebook for its users; unconfirmed users

    def arguments(self, stream_slice: Mapping[str, Any], next_page_token: Any) -> dict[str, Any]:
        return {"courseid": stream_slice["course_id"], "userid": stream_slice.get("user_id", 0)}

    def items_of(self, response: requests.Response, body: Any) -> Iterable[Mapping[str, Any]]:
        grades = body.get("usergrades") if isinstance(body, dict) else None
        if not isinstance(grades, list) or not all(isinstance(g, dict) and g.get("userid") is not None for g in grades):
            raise self.malformed(response, "expected an object with usergrades, each with a userid")
        return grades


# ---- the unified streams -------------------------------------------------------------------------------------------
class MoodleUsers(MoodleCall):
    """core_user_get_users with criteria email LIKE '%': every user that is not deleted, in one answer.

    Moodle has no modification time for users: `updated_at` is null and every user is emitted by every sync.
    The guest account is listed too (a real 4.5.6 site does): not a person, so not emitted.
    """

    wsfunction = GET_USERS
    unified_name = "users"  # type: ignore[assignment]

    def arguments(self, stream_slice: Mapping[str, Any], next_page_token: Any) -> dict[str, Any]:
        return {"criteria[0][key]": "email", "criteria[0][value]": "%"}

    def items_of(self, response: requests.Response, body: Any) -> Iterable[Mapping[str, Any]]:
        users = body.get("users") if isinstance(body, dict) else None
        if not isinstance(users, list):
            raise self.malformed(response, "expected an object with a users array")
        keep_raw = self.config.include_remote_data
        for raw in super().items_of(response, users):
            if not is_guest(raw):
                yield to_user(raw, keep_raw)


class MoodleCourses(MoodleCall):
    """core_course_get_courses (all, site course skipped) with names from core_course_get_categories; filtered here on timemodified."""

    wsfunction = GET_COURSES
    unified_name = "courses"  # type: ignore[assignment]

    def items_of(self, response: requests.Response, body: Any) -> Iterable[Mapping[str, Any]]:
        courses = super().items_of(response, body)
        names = {}
        if self.provider.has_function(GET_CATEGORIES):
            names = {str(c["id"]): plain_text(c.get("name")) for c in MoodleCategories(self.provider).records_of_slice(SyncMode.full_refresh, {})}
        keep_raw = self.config.include_remote_data
        for raw in courses:
            if not is_site_course(raw):
                yield to_course(raw, self.provider.course_url(str(raw["id"])), names, keep_raw)


class MoodleCourseEnrollments(MoodleEnrolledUsers):
    """Per course: core_enrol_get_enrolled_users (all members, then the active ones), the course's grades (and those
    of each learner whose enrolment is not active, one by one), and per active learner their progress; per completed
    learner, the completion time.

    No enrolment modification time is exposed (suspension, an enrolment window ending, grading or a teacher
    marking completion move none of the row's timestamps), so `updated_at` is null and every enrollment is
    emitted by every sync (design.md §4).
    """

    unified_name = "course_enrollments"  # type: ignore[assignment]
    pair_id = True  # ids are "{user_id}:{course_id}": a tombstone still names both

    def __init__(self, provider: Moodle, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._status_lists = MoodleEnrolledUsers(provider)
        self._users_courses = MoodleUsersCourses(provider)
        self._completion = MoodleCompletionStatus(provider)
        self._grades = MoodleGradeItems(provider)
        # user id -> course id -> users_courses row; courses are read on several threads (base fan-out), so each
        # user's call is made once, by whichever thread asks first.
        self._progress: dict[str, _Once] = {}
        self._progress_lock = threading.Lock()

    def partitions(self) -> Iterable[dict[str, Any]]:
        self.provider.require_functions()
        self._progress = {}
        for course in MoodleCourseList(self.provider).records_of_slice(SyncMode.full_refresh, {}):
            yield {"course_id": str(course["id"]), "course_title": plain_text(course.get("fullname")), "completion": bool(to_number(course.get("enablecompletion")))}

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        provider: Moodle = self.provider  # type: ignore[assignment]
        course_id = stream_slice["course_id"]
        rows = list(super().records_of_slice(sync_mode, {"course_id": course_id}))
        learners = [row for row in rows if is_learner_row(row, provider.learner_roles)]
        if not learners:
            return
        unlisted = [row for row in learners if not to_str(row.get("email"))]
        if unlisted:
            # core_user_get_users does not list users whose e-mail is empty or hidden, so their enrollments would not
            # join to a user record: left out, and said so.
            logger.warning(f"Moodle course {course_id}: {len(unlisted)} learner(s) without a visible e-mail are not listed by {GET_USERS}; their enrollments are skipped.")
            learners = [row for row in learners if to_str(row.get("email"))]
        active = self._ids(course_id, "onlyactive")
        scores = self._scores(course_id, [str(row["id"]) for row in learners if str(row["id"]) not in active])
        course = {"id": course_id, "title": stream_slice.get("course_title")}
        url = provider.course_url(course_id)
        keep_raw = self.config.include_remote_data
        for row in learners:
            user_id = str(row["id"])
            progress = self._progress_of(user_id, course_id) if user_id in active and stream_slice.get("completion") else None
            completed_at = self._completed_at(user_id, course_id) if progress and progress.get("completed") is True else None
            yield to_course_enrollment(
                row, course, url, is_active=user_id in active,
                progress=progress, completed_at=completed_at, score=scores.get(user_id), keep_raw=keep_raw,
            )

    def _ids(self, course_id: str, only: str) -> set[str]:
        return {str(row["id"]) for row in self._status_lists.records_of_slice(SyncMode.full_refresh, {"course_id": course_id, "only": only})}

    def _scores(self, course_id: str, inactive: list[str]) -> dict[str, float | int | None]:
        """Course-total percentages by user id: every listed user in one call, then each inactive learner it left out."""
        if not self.provider.has_function(GRADE_ITEMS):
            return {}
        scores = scores_by_user(self._grades.records_of_slice(SyncMode.full_refresh, {"course_id": course_id}))
        for user_id in left_out(inactive, scores):
            scores.update(scores_by_user(self._grades.records_of_slice(SyncMode.full_refresh, {"course_id": course_id, "user_id": user_id})))
        return scores

    def _progress_of(self, user_id: str, course_id: str) -> Mapping[str, Any] | None:
        if not self.provider.has_function(USERS_COURSES):
            return None
        with self._progress_lock:
            once = self._progress.setdefault(user_id, _Once())
        # One call per learner gives every course they are actively enrolled in: kept for their other courses.
        courses = once.get(lambda: {str(c["id"]): c for c in self._users_courses.records_of_slice(SyncMode.full_refresh, {"user_id": user_id})})
        return courses.get(course_id)

    def _completed_at(self, user_id: str, course_id: str) -> str | None:
        if not self.provider.has_function(COMPLETION_STATUS):
            return None
        status = next(iter(self._completion.records_of_slice(SyncMode.full_refresh, {"course_id": course_id, "user_id": user_id})), None)
        return completion_time(status)


class _Once:
    """A value computed once, by the first thread that asks; the others wait for it (a failure is retried by the next)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Any = None
        self._done = False

    def get(self, compute: Any) -> Any:
        with self._lock:
            if not self._done:
                self._value, self._done = compute(), True
            return self._value


# ---- mappers: recorded payloads in, unified records out -------------------------------------------------------------
def plain_text(value: Any) -> str | None:
    """A course or category name as a person reads it.

    Moodle sends them through format_string, which escapes `&` (and `<`, `>`, quotes) as HTML entities: a real 4.5.6
    site answers "Data Structures &amp; Algorithms". moodlewssettingraw=1 would return the stored text instead, but
    for every field of the call: course summaries would then come unformatted, with @@PLUGINFILE@@ placeholders
    instead of file URLs. Names are plain text on entry (PARAM_TEXT), so unescaping the formatted string gives back
    what was typed.
    """
    text = to_str(value)
    return html.unescape(text) if text and "&" in text else text


def is_guest(raw: Mapping[str, Any]) -> bool:
    """Moodle's guest account (username "guest", created by the installer; the site info does not give its id).

    An MNet user from another site may also be called guest: that one is a person (auth "mnet").
    """
    return raw.get("username") == "guest" and raw.get("auth") != "mnet"


def is_site_course(course: Mapping[str, Any]) -> bool:
    """core_course_get_courses lists the front page as a course (id 1, format "site"): not a course anyone takes."""
    return course.get("format") == "site"


def is_learner_row(row: Mapping[str, Any], learner_roles: frozenset[str] = frozenset({"student"})) -> bool:
    """A member holding a learner role in the course (design.md §4); teachers, managers and members with no role are not."""
    return any(isinstance(role, dict) and role.get("shortname") in learner_roles for role in row.get("roles") or [])


def _remote(raw: Mapping[str, Any], keep: bool, **extra: Any) -> dict[str, Any] | None:
    if not keep:
        return None
    return {**raw, **{key: value for key, value in extra.items() if value is not None}}


def user_status(raw: Mapping[str, Any]) -> str:
    if raw.get("suspended") in (True, 1, "1"):
        return "suspended"
    if raw.get("confirmed") in (False, 0, "0"):
        return "invited"  # signed up, e-mail not confirmed
    if "suspended" not in raw:
        return "unknown"  # older sites, or a token user without the capability to see it
    return "active"


def to_user(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    first, last = to_str(raw.get("firstname")), to_str(raw.get("lastname"))
    custom = {str(f["shortname"]): f.get("value") for f in raw.get("customfields") or [] if isinstance(f, dict) and f.get("shortname")}
    for key in ("department", "institution", "idnumber", "auth"):
        if to_str(raw.get(key)):
            custom[key] = raw[key]
    timezone = to_str(raw.get("timezone"))
    return {
        "id": str(raw["id"]),
        "name": to_str(raw.get("fullname")) or full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": to_str(raw.get("username")),
        "emails": primary_emails(to_str(raw.get("email"))),
        "status": user_status(raw),
        "role": None,  # Moodle roles are per course (and per context), not per user
        "locale": to_str(raw.get("lang")),
        "timezone": None if timezone == "99" else timezone,  # 99: the site's default zone
        "job_title": None,
        "last_login_at": epoch_to_iso(raw.get("lastaccess")),
        "created_at": None,  # not exposed by the user functions
        "updated_at": None,  # no modification time exposed: re-emitted by every sync (design.md §4)
        "custom_fields": custom,
        "remote_data": _remote(raw, keep_raw),
    }


def to_course(raw: Mapping[str, Any], url: str, category_names: Mapping[str, str | None], keep_raw: bool = False) -> dict[str, Any]:
    category_id = to_str(raw.get("categoryid"))
    custom = {key: raw[key] for key in ("idnumber", "format") if to_str(raw.get(key))}
    for key in ("startdate", "enddate"):
        if epoch_to_iso(raw.get(key)):
            custom[key] = epoch_to_iso(raw[key])
    return {
        "id": str(raw["id"]),
        "title": plain_text(raw.get("fullname")),
        "description": to_str(raw.get("summary")),  # HTML, as Moodle formats it
        "code": plain_text(raw.get("shortname")),
        "type": "course",
        # Hidden from learners; Moodle does not say whether it is being prepared or retired.
        "status": {1: "published", 0: "draft"}.get(to_number(raw.get("visible")), "unknown"),
        "language": to_str(raw.get("lang")),
        "duration_seconds": None,
        "urls": [{"url": url, "type": "web"}],
        "categories": [{"id": category_id, "name": category_names.get(category_id) or plain_text(raw.get("categoryname"))}] if category_id else [],
        "tags": [],
        "created_at": epoch_to_iso(raw.get("timecreated")),
        "updated_at": epoch_to_iso(raw.get("timemodified")),
        "custom_fields": custom,
        "remote_data": _remote(raw, keep_raw),
    }


def course_total_percent(items: Any) -> float | int | None:
    """The course-total grade item (itemtype "course") as a percentage of its range; null when ungraded."""
    for item in items or []:
        if isinstance(item, dict) and item.get("itemtype") == "course":
            raw, low, high = to_number(item.get("graderaw")), to_number(item.get("grademin")) or 0, to_number(item.get("grademax"))
            if raw is None or high is None or high <= low:
                return None
            return to_percent(round((raw - low) / (high - low) * 100, 2))
    return None


def scores_by_user(usergrades: Iterable[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """gradereport_user_get_grade_items' usergrades as course-total percentages by user id."""
    return {str(g["userid"]): course_total_percent(g.get("gradeitems")) for g in usergrades}


def left_out(user_ids: Iterable[str], listed: Mapping[str, Any]) -> list[str]:
    """The users a course-wide answer left out, in order: each is read on their own."""
    return [user_id for user_id in user_ids if user_id not in listed]


def completion_time(status: Mapping[str, Any] | None) -> str | None:
    """When a completed course was completed: the latest time among its completed criteria."""
    if not status or status.get("completed") is not True:
        return None
    times = [epoch_to_iso(c.get("timecompleted")) for c in status.get("completions") or [] if isinstance(c, dict)]
    present = [t for t in times if t]
    return max(present) if present else None


def enrollment_status(is_active: bool, completed: Any, progress: Any, last_access: Any) -> str:
    """First match wins. Not active is all Moodle's web services say of an enrolment that is suspended, whose window
    has ended or not begun, or whose method is disabled (lib/enrollib.php): which one is not exposed, so `unknown`."""
    if not is_active:
        return "unknown"
    if completed is True:
        return "completed"
    percent = to_number(progress)
    if (percent is not None and percent > 0) or epoch_to_iso(last_access):
        return "in_progress"
    return "enrolled"


def to_course_enrollment(
    row: Mapping[str, Any],
    course: Mapping[str, Any],
    url: str,
    *,
    is_active: bool,
    progress: Mapping[str, Any] | None = None,
    completed_at: str | None = None,
    score: float | int | None = None,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """A core_enrol_get_enrolled_users row of a learner; `progress` is their core_enrol_get_users_courses row for the course."""
    user_id, course_id = str(row["id"]), str(course["id"])
    progress = progress or {}
    last_access = row.get("lastcourseaccess")
    return {
        "id": f"{user_id}:{course_id}",  # Moodle exposes no enrolment id
        "user": {
            "id": user_id,
            "name": to_str(row.get("fullname")) or full_name(to_str(row.get("firstname")), to_str(row.get("lastname"))),
            "emails": primary_emails(to_str(row.get("email"))),
        },
        "course": {"id": course_id, "title": to_str(course.get("title"))},  # unescaped by the caller (plain_text)
        "status": enrollment_status(is_active, progress.get("completed"), progress.get("progress"), last_access),
        "assigned_at": None,
        "due_at": None,
        "enrolled_at": None,  # the enrolment's timestart is not exposed
        "started_at": None,
        "last_activity_at": epoch_to_iso(last_access),
        "completed_at": completed_at,
        "progress_percent": to_percent(progress.get("progress")),
        "time_spent_seconds": None,
        "score": score,
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [{"url": url, "type": "web"}],
        "created_at": None,
        "updated_at": None,  # no enrolment modification time exposed: re-emitted by every sync (design.md §4)
        "custom_fields": {
            "roles": [r.get("shortname") for r in row.get("roles") or [] if isinstance(r, dict)],
            "enrolment_active": is_active,  # what Moodle says of the enrolment; the reason it is not active, it does not
        },
        "remote_data": _remote(row, keep_raw, users_courses=progress or None),
    }
