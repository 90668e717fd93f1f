"""Fake Moodle web services over REST, as documented (../shared/docs/providers-moodle-canvas.md §1) and as a real
Moodle 4.5.6 answers (../shared/recordings/moodle-4.5.6/).

- One endpoint, /webservice/rest/server.php; arguments from the query string and a form body alike (Moodle merges
  $_GET and $_POST); `wstoken`, `wsfunction`, `moodlewsrestformat=json` (XML without it); PHP bracket arrays.
- Every error is HTTP 200 with {"exception", "errorcode", "message"}: a wrong token (invalidtoken), a function not in
  the token's service (accessexception; `withhold=fn1,fn2` takes functions out of the service), an unknown function
  or a missing course (invalidrecord), a bad argument (invalidparameter), no completion data (nocriteriaset, …).
- core_webservice_get_site_info lists the functions the service holds; `version` (option) is the site's version
  number: before 3.11 (2021051700) `onlysuspended` is silently ignored, as Moodle's code does.
- Ids: Moodle's front page is course 1 (format "site"), so dataset course n is Moodle course n + 1.
- Deleted users are not listed (nor enrolled: Moodle unenrols them); core_user_get_users drops users whose searched
  field is empty, so users without an e-mail are missing from the `email=%` search, as in Moodle's code.
- Enrolment states: withdrawn = suspended enrolment, expired = time window ended, every other state is active.
  `onlysuspended` answers every member whose enrolment is not active (either), as lib/enrollib.php does.
- Course and category names are HTML-escaped (format_string); user names are not. The guest account is listed by
  core_user_get_users (username "guest", last name " "); it is no dataset person and enrols in nothing.
- gradereport_user_get_grade_items with userid=0 lists only learners with an active enrolment (the site default
  grade_report_showonlyactiveenrol=1; `showonlyactiveenrol=False` lists all), sorted by last name; with a userid it
  answers that learner whatever their enrolment. Per-user calls refuse unconfirmed accounts (usernotconfirmed), and
  core_completion_get_course_completion_status answers usernotenroled for an enrolment that is not active.
- HTTP 403 (web services switched off) has an empty text/html body.
  Instructor rows hold editingteacher or teacher; the admin holds a manager enrolment in every third course;
  some learners also hold a teacher role. No rate limits (Moodle has none).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

TOKEN = "0123456789abcdef0123456789abcdef"  # 32 hex characters, like a real token
SITE_VERSION = "2023100900"  # Moodle 4.3
FUNCTIONS = (
    "core_webservice_get_site_info", "core_user_get_users", "core_user_get_users_by_field", "core_course_get_courses",
    "core_course_get_categories", "core_enrol_get_enrolled_users", "core_enrol_get_users_courses",
    "core_completion_get_course_completion_status", "gradereport_user_get_grade_items",
)
ROLES = {
    "student": {"roleid": 5, "name": "", "shortname": "student", "sortorder": 0},
    "editingteacher": {"roleid": 3, "name": "", "shortname": "editingteacher", "sortorder": 0},
    "teacher": {"roleid": 4, "name": "", "shortname": "teacher", "sortorder": 0},
    "manager": {"roleid": 1, "name": "", "shortname": "manager", "sortorder": 0},
}
ACTIVE_STATES = frozenset({"not_started", "assigned", "in_progress", "completed", "passed", "failed"})
# As a real 4.5.6 site words them (usernotconfirmed has no translated string there).
NO_DATA_MESSAGES = {"usernotenroled": "User is not enrolled in this course", "usernotconfirmed": "error/usernotconfirmed"}
# Moodle's guest is user 1, but here 1 is the dataset's first person: the connector tells the guest by its username.
GUEST = {"id": 0, "username": "guest", "firstname": "Guest user", "lastname": " ", "fullname": "Guest user  ",
         "email": "root@localhost", "department": "", "firstaccess": 0, "lastaccess": 0, "auth": "manual",
         "suspended": False, "confirmed": True, "lang": "en", "theme": "", "timezone": "99", "mailformat": 1,
         "trackforums": 0, "description": "This user is a special user that allows read-only access to some courses.",
         "descriptionformat": 1}


def formatted(text: str) -> str:
    """What Moodle's format_string makes of a name: `&` not starting an entity, `<` and `>` escaped."""
    return re.sub(r"&(?![a-zA-Z0-9#]{1,8};)", "&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def exception(errorcode: str, message: str, kind: str = "moodle_exception", debuginfo: str | None = None) -> FakeResponse:
    body = {"exception": kind, "errorcode": errorcode, "message": message}
    if debuginfo:
        body["debuginfo"] = debuginfo
    return FakeResponse(200, body)  # Moodle's REST server answers errors with the success headers


class MoodleApp(FakeProviderApp):
    name = "moodle"
    # Every call is server.php: a stream's main call is told apart by its function, in the query.
    stream_paths = {"users": "wsfunction=core_user_get_users", "courses": "wsfunction=core_course_get_courses",
                    "course_enrollments": "wsfunction=core_enrol_get_enrolled_users"}
    endpoint_names = {"users": "core_user_get_users", "courses": "core_course_get_courses",
                      "course_enrollments": "core_enrol_get_enrolled_users"}

    def __init__(self, data: Dataset, token: str = TOKEN, withhold: str | tuple[str, ...] = (), version: str = SITE_VERSION,
                 showonlyactiveenrol: bool = True, **options: Any) -> None:
        super().__init__(data, **options)
        self.showonlyactiveenrol = showonlyactiveenrol
        self.token = token
        self.withheld = set(withhold.split(",")) if isinstance(withhold, str) else set(withhold)
        self.withheld.discard("")
        self.version = version

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "moodle", "base_url": base_url, "token": self.token}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "moodle", "base_url": base_url, "token": "feedfacefeedfacefeedfacefeedface"}

    def server_error(self, status: int) -> FakeResponse:
        if status == 403:  # web services or REST switched off: an empty page (recording ..._error_ws_disabled)
            return FakeResponse(status, "", content_type="text/html; charset=utf-8")
        return FakeResponse(status, "<html><body>Internal Server Error</body></html>", content_type="text/html")

    def not_found(self) -> FakeResponse:
        # A course deleted between the course list and a per-course call.
        return exception("invalidrecord", "Can't find data record in database table course.", "dml_missing_record_exception")

    # ---- ids and what Moodle lists ---------------------------------------------------------------------------------
    @staticmethod
    def moodle_course_id(course: Course | int) -> int:
        return (course if isinstance(course, int) else course.id) + 1

    def course_record_id(self, course: Course) -> str:
        return str(self.moodle_course_id(course))

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return f"{enrollment.user_id}:{self.moodle_course_id(enrollment.course_id)}"

    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted" and p.email]

    def members(self, course: Course) -> list[tuple[Person, Enrollment | None, list[str]]]:
        """(person, dataset enrollment or None for the fake-only manager row, role short names) of a course."""
        rows = []
        for e in self.data.enrollments_of_course(course.id):
            person = self.data.people.get(e.user_id)
            if person is None or person.status == "deleted":
                continue
            if e.role == "instructor":
                roles = ["editingteacher" if e.id % 2 == 0 else "teacher"]
            else:
                roles = ["student", "teacher"] if e.id % 13 == 0 else ["student"]
            rows.append((person, e, roles))
        admin = self.data.people.get(1)
        if admin and course.id % 3 == 0 and all(p.id != 1 for p, _, _ in rows):
            rows.append((admin, None, ["manager"]))
        return sorted(rows, key=lambda row: row[0].id)

    # ---- routing ----------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.path != "/webservice/rest/server.php":
            return FakeResponse(404, "<html><body>Not found</body></html>", content_type="text/html")
        params = {k: v[0] for k, v in request.query.items()}
        if request.body:
            params.update({k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()})
        if params.get("moodlewsrestformat") != "json":
            return FakeResponse(200, '<?xml version="1.0" encoding="UTF-8" ?>\n<EXCEPTION class="moodle_exception"><ERRORCODE>invalidtoken</ERRORCODE>'
                                "<MESSAGE>Invalid token - token not found</MESSAGE></EXCEPTION>", content_type="application/xml")
        if params.get("wstoken") != self.token:
            return exception("invalidtoken", "Invalid token - token not found")
        function = params.get("wsfunction", "")
        if function not in FUNCTIONS:
            return exception("invalidrecord", "Can't find data record in database table external_functions.", "dml_missing_record_exception")
        if function in self.withheld:
            return exception("accessexception", "Access control exception", "webservice_access_exception")
        handler = getattr(self, function)
        try:
            return FakeResponse(200, handler(params))
        except MissingRecord as missing:
            return exception("invalidrecord", f"Can't find data record in database table {missing}.", "dml_missing_record_exception")
        except NoData as nodata:
            return exception(str(nodata), NO_DATA_MESSAGES.get(str(nodata), "No completion data"), "core\\exception\\moodle_exception")
        except (KeyError, ValueError) as error:
            return exception("invalidparameter", "Invalid parameter value detected", "invalid_parameter_exception", f"{error!r}")

    # ---- functions ----------------------------------------------------------------------------------------------------
    def core_webservice_get_site_info(self, params: dict[str, str]) -> dict[str, Any]:
        return {
            "sitename": "Fake Moodle", "username": "wsuser", "firstname": "Web", "lastname": "Service",
            "fullname": "Web Service", "lang": "en", "userid": 2, "siteurl": "https://moodle.example.edu",
            "userpictureurl": "", "functions": [{"name": f, "version": self.version} for f in FUNCTIONS if f not in self.withheld],
            "downloadfiles": 0, "uploadfiles": 0, "release": "4.3 (Build: 20231009)", "version": self.version,
            "mobilecssurl": "", "advancedfeatures": [], "usercanmanageownfiles": True, "userquota": 0,
            "usermaxuploadfilesize": 0, "userhomepage": 1, "siteid": 1, "sitecalendartype": "gregorian",
            "usercalendartype": "gregorian", "userissiteadmin": True, "theme": "boost",
        }

    def core_user_get_users(self, params: dict[str, str]) -> dict[str, Any]:
        criteria = {params[f"criteria[{i}][key]"]: params[f"criteria[{i}][value]"] for i in range(10) if f"criteria[{i}][key]" in params}
        users = []
        for details in [GUEST] + [self.user(p) for p in self.data.people.values() if p.status != "deleted"]:
            if all(self._matches(details.get(key), key, value) for key, value in criteria.items()):
                # Moodle returns a user only when every searched field is non-empty in what it returns.
                if all(details.get(key) not in (None, "") for key in criteria):
                    users.append(details)
        return {"users": users, "warnings": []}

    @staticmethod
    def _matches(actual: Any, key: str, pattern: str) -> bool:
        if key in ("email", "firstname", "lastname"):  # SQL LIKE, case-insensitive
            regex = "^" + ".*".join(re.escape(part) for part in pattern.split("%")) + "$"
            return re.match(regex, str(actual or ""), re.IGNORECASE | re.DOTALL) is not None
        return str(actual) == pattern

    def core_user_get_users_by_field(self, params: dict[str, str]) -> list[dict[str, Any]]:
        field = params["field"]
        values = {params[f"values[{i}]"] for i in range(1000) if f"values[{i}]" in params}
        users = [GUEST] + [self.user(p) for p in self.data.people.values() if p.status != "deleted"]
        return [u for u in users if str(u.get(field)) in values]

    def core_course_get_courses(self, params: dict[str, str]) -> list[dict[str, Any]]:
        ids = {int(params[f"options[ids][{i}]"]) for i in range(1000) if f"options[ids][{i}]" in params}
        courses = [self.site_course()] + [self.course(c) for c in self.data.courses.values()]
        return [c for c in courses if not ids or c["id"] in ids]

    def core_course_get_categories(self, params: dict[str, str]) -> list[dict[str, Any]]:
        categories = {c.category for c in self.data.courses.values()} | {("1", "Compliance")}
        return [{"id": int(cid), "name": formatted(name), "idnumber": "", "description": "", "descriptionformat": 1, "parent": 0,
                 "sortorder": 10000 * int(cid), "coursecount": 1, "visible": 1, "visibleold": 1, "timemodified": 1704067200,
                 "depth": 1, "path": f"/{cid}", "theme": ""} for cid, name in sorted(categories)]

    def core_enrol_get_enrolled_users(self, params: dict[str, str]) -> list[dict[str, Any]]:
        course = self._course(params["courseid"])
        options = {params[f"options[{i}][name]"]: params.get(f"options[{i}][value]", "") for i in range(20) if f"options[{i}][name]" in params}
        onlyactive = options.get("onlyactive") not in (None, "", "0")
        # Before 3.11 the option does not exist and Moodle's switch silently ignores it.
        onlysuspended = float(self.version) >= 2021051700 and options.get("onlysuspended") not in (None, "", "0")
        if onlyactive and onlysuspended:
            raise ValueError("onlyactive and onlysuspended cannot be used together")
        rows = []
        for person, enrollment, roles in self.members(course):
            state = enrollment.state if enrollment else "in_progress"
            if onlyactive and state not in ACTIVE_STATES:
                continue
            if onlysuspended and state in ACTIVE_STATES:
                continue  # "enrolled but not active": suspended or outside its window alike
            rows.append((person, enrollment, roles))
        start, limit = int(options.get("limitfrom") or 0), int(options.get("limitnumber") or 0)
        rows = rows[start: start + limit] if limit else rows[start:]
        fields = [f.strip() for f in options.get("userfields", "").split(",") if f.strip()]
        out = []
        for person, enrollment, roles in rows:
            details = {**self.user(person), "lastcourseaccess": (enrollment.last_activity or 0) if enrollment else 0,
                       "roles": [ROLES[r] for r in roles], "groups": [],
                       "enrolledcourses": [{"id": self.moodle_course_id(course), "fullname": formatted(course.name), "shortname": formatted(course.code)}]}
            if fields:
                details = {k: v for k, v in details.items() if k in fields or k in ("id", "fullname")}
            out.append(details)
        return out

    def core_enrol_get_users_courses(self, params: dict[str, str]) -> list[dict[str, Any]]:
        user_id = int(params["userid"])
        result = []
        for e in self.data.enrollments.values():
            course = self.data.courses.get(e.course_id)
            if e.user_id != user_id or course is None or e.state not in ACTIVE_STATES:
                continue  # only active enrolments are returned
            tracked = self.completion_enabled(course) and e.role == "learner"
            row = {**self.course(course), "enrolledusercount": None,
                   "completionhascriteria": tracked, "completionusertracked": tracked, "category": int(course.category[0]),
                   "progress": float(e.progress) if tracked else None,
                   "completed": (e.state in ("completed", "passed", "failed")) if tracked else None,
                   "marker": 0, "lastaccess": e.last_activity, "isfavourite": False, "hidden": False, "overviewfiles": [],
                   "showgrades": True}
            if params.get("returnusercount") in ("0", "false"):
                row.pop("enrolledusercount")
            result.append(row)
        return result

    def core_completion_get_course_completion_status(self, params: dict[str, str]) -> dict[str, Any]:
        course = self._course(params["courseid"])
        user_id = int(params["userid"])
        self._require_active_user(user_id)
        enrollment = next((e for e in self.data.enrollments_of_course(course.id) if e.user_id == user_id), None)
        if enrollment is None or enrollment.state not in ACTIVE_STATES:
            raise NoData("usernotenroled")  # completion_info::is_tracked_user: active enrolments only
        if not self.completion_enabled(course):
            raise NoData("nocriteriaset")
        done = enrollment.state in ("completed", "passed", "failed")
        return {"completionstatus": {"completed": done, "aggregation": 1, "completions": [
            {"type": 4, "title": "Activity completion", "status": "Yes" if done else "No", "complete": done,
             "timecompleted": enrollment.completed if done else None,
             "details": {"type": "Activity completion", "criteria": "Quiz: Final test", "requirement": "Marking yourself complete",
                         "status": "Yes" if done else "No"}},
            {"type": 2, "title": "Enrolment duration", "status": "Yes" if done else "No", "complete": done,
             "timecompleted": (enrollment.completed - 3600) if done else None,
             "details": {"type": "Enrolment duration", "criteria": "Days", "requirement": "1 day", "status": ""}},
        ]}, "warnings": []}

    def gradereport_user_get_grade_items(self, params: dict[str, str]) -> dict[str, Any]:
        course = self._course(params["courseid"])
        user_id = int(params.get("userid") or 0)
        if user_id:
            self._require_active_user(user_id)
        grade_max = 50.0 if course.id % 2 == 0 else 100.0
        usergrades = []
        for person, enrollment, roles in sorted(self.members(course), key=lambda row: (row[0].last_name, row[0].id)):
            if "student" not in roles or (user_id and person.id != user_id):
                continue  # the user report covers graded (student) users
            if not user_id and self.showonlyactiveenrol and enrollment and enrollment.state not in ACTIVE_STATES:
                continue  # userid=0: graded_users_iterator with require_active_enrolment
            raw = enrollment.score * grade_max / 100 if enrollment and enrollment.score is not None else None
            usergrades.append({"courseid": self.moodle_course_id(course), "userid": person.id, "userfullname": f"{person.first_name} {person.last_name}",
                               "maxdepth": 2, "gradeitems": [
                                   {"id": 100 + course.id, "itemname": "Final test", "itemtype": "mod", "itemmodule": "quiz",
                                    "iteminstance": course.id, "itemnumber": 0, "categoryid": 1, "outcomeid": None, "scaleid": None,
                                    "graderaw": raw, "grademin": 0, "grademax": grade_max, "gradeformatted": "-" if raw is None else f"{raw:.2f}",
                                    "percentageformatted": "-", "gradedategraded": enrollment.completed if enrollment else None},
                                   {"id": 200 + course.id, "itemname": None, "itemtype": "course", "itemmodule": None,
                                    "iteminstance": course.id, "itemnumber": None, "categoryid": None, "outcomeid": None, "scaleid": None,
                                    "graderaw": raw, "grademin": 0, "grademax": grade_max, "gradeformatted": "-" if raw is None else f"{raw:.2f}",
                                    "percentageformatted": "-" if raw is None else f"{raw / grade_max * 100:.2f} %", "gradedategraded": None},
                               ]})
        return {"usergrades": usergrades, "warnings": []}

    # ---- rendering ------------------------------------------------------------------------------------------------------
    @staticmethod
    def completion_enabled(course: Course) -> bool:
        return course.id % 4 != 0

    def _require_active_user(self, user_id: int) -> None:
        """core_user::require_active_user, as the per-user functions call it."""
        person = self.data.people.get(user_id)
        if person is None or person.status == "deleted":
            raise MissingRecord("user")
        if not self.user(person)["confirmed"]:
            raise NoData("usernotconfirmed")

    def _course(self, value: str) -> Course:
        course = self.data.courses.get(int(value) - 1)
        if course is None:
            raise MissingRecord("course")
        return course

    def user(self, p: Person) -> dict[str, Any]:
        details: dict[str, Any] = {
            "id": p.id, "username": p.login, "firstname": p.first_name, "lastname": p.last_name,
            "fullname": f"{p.first_name} {p.last_name}", "email": p.email or "",
            "firstaccess": p.created, "lastaccess": p.last_login or 0, "auth": "manual",
            "suspended": p.status == "inactive", "confirmed": p.id % 23 != 0,
            "lang": p.language or "en", "theme": "", "timezone": p.timezone or "99", "mailformat": 1,
            "description": "", "descriptionformat": 1, "country": "GR",
            "profileimageurlsmall": f"https://moodle.example.edu/theme/image.php/boost/core/1/u/f2?u={p.id}",
            "profileimageurl": f"https://moodle.example.edu/theme/image.php/boost/core/1/u/f1?u={p.id}",
        }
        if p.custom.get("department"):
            details["department"] = p.custom["department"]  # optional keys are absent, not empty
            details["customfields"] = [{"type": "text", "value": p.custom["department"], "name": "Team", "shortname": "team"}]
        return details

    def site_course(self) -> dict[str, Any]:
        return {"id": 1, "shortname": "fake", "categoryid": 0, "categorysortorder": 1, "fullname": "Fake Moodle", "displayname": "Fake Moodle",
                "idnumber": "", "summary": "", "summaryformat": 1, "format": "site", "showgrades": 1, "newsitems": 3,
                "startdate": 0, "enddate": 0, "numsections": 1, "maxbytes": 0, "showreports": 0, "visible": 1,
                "groupmode": 0, "groupmodeforce": 0, "defaultgroupingid": 0, "timecreated": 1704067200,
                "timemodified": 1704067200, "enablecompletion": 0, "completionnotify": 0, "lang": "", "forcetheme": "",
                "courseformatoptions": []}

    def course(self, c: Course) -> dict[str, Any]:
        return {"id": self.moodle_course_id(c), "shortname": formatted(c.code), "categoryid": int(c.category[0]), "categorysortorder": 10001,
                "fullname": formatted(c.name), "displayname": formatted(c.name), "idnumber": "", "summary": c.description, "summaryformat": 1,
                "format": "topics", "showgrades": 1, "newsitems": 5, "startdate": c.created, "enddate": 0, "numsections": 4,
                "maxbytes": 0, "showreports": 0, "visible": 0 if c.status == "inactive" else 1, "groupmode": 0,
                "groupmodeforce": 0, "defaultgroupingid": 0, "timecreated": c.created, "timemodified": c.updated,
                "enablecompletion": 1 if self.completion_enabled(c) else 0, "completionnotify": 0,
                "lang": c.language if c.id % 2 else "", "forcetheme": "",
                "courseformatoptions": [{"name": "hiddensections", "value": 1}]}


class MissingRecord(Exception):
    pass


class NoData(Exception):
    pass
