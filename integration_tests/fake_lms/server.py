"""A real HTTP server on loopback that serves one fake provider app over a `Dataset`, with fault switches.

Provider apps (one module each beside this one) turn a `FakeRequest` into a `FakeResponse` the way the
provider's documented API does. This module adds what every fake shares:

* a log of every request (method, path, query) for tests to assert what the connector asked for;
* faults, applied before the app answers, each for the next N matching requests: rate limiting (429 with
  `Retry-After`, body from the app), server errors, slow answers, malformed bodies, dropped connections
  (before the answer, or mid-body), storms (`every` Nth request), and
  `not_found` (an item deleted between being listed and being read);
* a control API for a fake run in another process: `POST /_fake/faults`, `POST /_fake/touch`, `POST /_fake/delete`,
  `GET /_fake/requests`, `POST /_fake/reset-requests`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, urlsplit

from .dataset import Course, Dataset, Enrollment, Person


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, str]:
        if "json" in self.headers.get("content-type", ""):
            return {k: str(v) for k, v in json.loads(self.body or b"{}").items()}
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class FakeResponse:
    status: int = 200
    body: Any = None  # bytes, str, or JSON-able
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, ensure_ascii=False).encode()


@dataclass
class Fault:
    kind: str  # rate_limit | error | slow | malformed | drop | truncate | not_found
    count: int
    match: str = ""  # only requests whose path, or path?query, contains this (one-endpoint APIs name the call in the query)
    every: int = 1  # hit every Nth matching request (a storm), `count` times in all
    seen: int = 0
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0


class FakeProviderApp:
    """What a fake provider implements."""

    name = "base"
    # The path (or a distinctive part of it) of each unified stream's main endpoint, for targeted faults.
    stream_paths: dict[str, str] = {}
    # How the connector's errors name each stream's main call when not by its path (" /..."): a one-endpoint API
    # such as Moodle's server.php is named by its function.
    endpoint_names: dict[str, str] = {}

    def __init__(self, data: Dataset, **options: Any) -> None:
        self.data = data
        self.options = options

    def config(self, base_url: str) -> dict[str, Any]:
        """The connector's `provider` object that authenticates against this fake."""
        raise NotImplementedError

    def bad_config(self, base_url: str) -> dict[str, Any]:
        """The same with a wrong secret."""
        raise NotImplementedError

    def handle(self, request: FakeRequest) -> FakeResponse:
        raise NotImplementedError

    # ---- what a sync must emit: the documented behaviour applied to the dataset ----------------------------------
    # Providers override what their API does differently (e.g. TalentLMS v1 does not list deleted users).
    def listed_people(self) -> list[Person]:
        return list(self.data.people.values())

    def listed_courses(self) -> list[Course]:
        return list(self.data.courses.values())

    def listed_enrollments(self) -> list[Enrollment]:
        """Every enrollment row the API lists, instructor rows included."""
        people, courses = {p.id for p in self.listed_people()}, {c.id for c in self.listed_courses()}
        return [e for e in self.data.enrollments.values() if e.user_id in people and e.course_id in courses]

    def user_record_id(self, person: Person) -> str:
        return str(person.id)

    def course_record_id(self, course: Course) -> str:
        return str(course.id)

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return f"{enrollment.user_id}:{enrollment.course_id}"

    def expected_ids(self) -> dict[str, set[str]]:
        """The ids a full sync must emit, per stream: learner enrollments only (design.md §4)."""
        return {
            "users": {self.user_record_id(p) for p in self.listed_people()},
            "courses": {self.course_record_id(c) for c in self.listed_courses()},
            "course_enrollments": {self.enrollment_record_id(e) for e in self.listed_enrollments() if e.role == "learner"},
        }

    def touch_sample(self) -> dict[str, set[str]]:
        """Change two users, one course and two learner enrollments now; the ids of what changed, per stream."""
        people = self.listed_people()[1:3]
        courses = self.listed_courses()[:1]
        enrollments = [e for e in self.listed_enrollments() if e.role == "learner"][:2]
        self.data.touch(users=[p.id for p in people], courses=[c.id for c in courses], enrollments=[e.id for e in enrollments])
        return {
            "users": {self.user_record_id(p) for p in people},
            "courses": {self.course_record_id(c) for c in courses},
            "course_enrollments": {self.enrollment_record_id(e) for e in enrollments},
        }

    def delete_sample(self) -> dict[str, set[str]]:
        """Delete one learner (with their enrollments), one course (with its enrollments) and one more enrollment
        now; the record ids a sync must report as deleted, per stream."""
        before = self.expected_ids()
        learners = [e for e in self.listed_enrollments() if e.role == "learner"]
        people = {p.id: p for p in self.listed_people()}
        user = next(people[e.user_id] for e in learners if e.user_id != 1 and people[e.user_id].status == "active")
        course = next(e.course_id for e in reversed(learners) if e.user_id != user.id)
        enrollment = next(e.id for e in learners if e.user_id != user.id and e.course_id != course)
        self.data.delete(users=[user.id], courses=[course], enrollments=[enrollment])
        after = self.expected_ids()
        return {stream: before[stream] - after[stream] for stream in before}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return FakeResponse(429, {"error": "rate limit exceeded"}, headers)

    def server_error(self, status: int) -> FakeResponse:
        return FakeResponse(status, {"error": "internal error"})

    def not_found(self) -> FakeResponse:
        """What the API answers for an item that no longer exists (the `not_found` fault: deleted mid-sync)."""
        return FakeResponse(404, {"error": "not found"})


def cursor_page(items: list[Any], cursor: str | None, size: int) -> tuple[list[Any], str | None]:
    """One page of `items` behind an opaque cursor (base64 of an offset), and the next page's cursor or None.

    For fakes of APIs that page with a cursor in the body; raises ValueError for a cursor it did not issue.
    """
    offset = 0
    if cursor:
        decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        offset = int(decoded["offset"])
    end = offset + size
    following = base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode() if end < len(items) else None
    return items[offset:end], following


class FakeLmsServer:
    def __init__(self, app: FakeProviderApp, port: int = 0, latency_ms: float = 0.0, cache: bool = False) -> None:
        self.app = app
        self.latency = latency_ms / 1000.0
        # Benchmarks only: replay each successful GET's first answer (same path, query and credentials), so that
        # the fake's own rendering does not weigh on a client's timing. Data changes (`touch`) are then not seen.
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...], str], FakeResponse] | None = {} if cache else None
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed ACK of
            # the headers (about 40 ms a request on Linux loopback), which would swamp every timing.
            disable_nagle_algorithm = True

            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._serve(self, "GET")

            def do_POST(self) -> None:
                server._serve(self, "POST")

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # Python's default 5 costs SYN retries under a concurrent client

        self._httpd = Server(("127.0.0.1", port), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "FakeLmsServer":
        if self._thread is not None:  # already serving (start_fake() starts; `with` may start again)
            return self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"fake-{self.app.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeLmsServer":
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    # ---- test helpers -----------------------------------------------------------------------------------------
    def config(self, **extra: Any) -> dict[str, Any]:
        return {"provider": self.app.config(self.url), **extra}

    def bad_config(self, **extra: Any) -> dict[str, Any]:
        return {"provider": self.app.bad_config(self.url), **extra}

    def add_fault(self, kind: str, count: int = 1, match: str = "", **options: Any) -> None:
        with self._lock:
            self.faults.append(Fault(kind, count, match, **options))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    # ---- serving ------------------------------------------------------------------------------------------------
    def _take_fault(self, path: str, target: str = "") -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and (fault.match in path or fault.match in target):
                    fault.seen += 1
                    if fault.seen % fault.every == 0:
                        fault.count -= 1
                        return fault
        return None

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = FakeRequest(method, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              {k.lower(): v for k, v in handler.headers.items()}, body)
        if parts.path.startswith("/_fake/"):
            return self._write(handler, self._control(request))
        with self._lock:
            self.requests.append((method, parts.path, request.query))
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(parts.path, handler.path)
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            handler.connection.close()
            return None
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "rate_limit":
            return self._write(handler, self.app.rate_limited(fault.retry_after))
        if fault is not None and fault.kind == "not_found":
            return self._write(handler, self.app.not_found())
        if fault is not None and fault.kind == "error":
            response = self.app.server_error(fault.status)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(int(fault.retry_after))
            return self._write(handler, response)
        key = (parts.path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True))), request.headers.get("authorization", ""))
        cached = self._cache.get(key) if self._cache is not None and method == "GET" else None
        if cached is not None:
            response = cached
        else:
            try:
                response = self.app.handle(request)
            except Exception as error:  # a bug in a fake must show, not hang the client
                response = FakeResponse(500, {"fake_error": repr(error)})
            if self._cache is not None and method == "GET" and response.status == 200:
                response = FakeResponse(response.status, response.encoded(), response.headers, response.content_type)
                self._cache[key] = response
        if fault is not None and fault.kind == "truncate":
            return self._write(handler, response, truncate=True)
        if fault is not None and fault.kind == "malformed" and response.status == 200:
            encoded = response.encoded()
            response = FakeResponse(200, encoded[: max(1, len(encoded) // 2)], response.headers, response.content_type)
        return self._write(handler, response)

    def _control(self, request: FakeRequest) -> FakeResponse:
        data = json.loads(request.body or b"{}")
        if request.path == "/_fake/faults":
            for fault in data.get("faults", []):
                self.add_fault(**fault)
            return FakeResponse(200, {"ok": True})
        if request.path == "/_fake/touch":
            when = self.app.data.touch(**data)
            return FakeResponse(200, {"updated": when})
        if request.path == "/_fake/delete":
            when = self.app.data.delete(**data)
            return FakeResponse(200, {"deleted": when})
        if request.path == "/_fake/requests":
            return FakeResponse(200, [{"method": m, "path": p, "query": q} for m, p, q in self.requests])
        if request.path == "/_fake/reset-requests":
            self.clear()
            return FakeResponse(200, {"ok": True})
        return FakeResponse(404, {"error": "unknown control path"})

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, response: FakeResponse, truncate: bool = False) -> None:
        payload = response.encoded()
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if truncate:  # the connection dies mid-body: the client sees fewer bytes than Content-Length promised
            handler.wfile.write(payload[: len(payload) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        handler.wfile.write(payload)


AppFactory = Callable[..., FakeProviderApp]
