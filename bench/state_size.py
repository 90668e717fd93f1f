"""`make bench`, state section: how big each stream's state is once it carries `listed_ids` (design.md §5a).

For each provider and size it starts the fake LMS in its own process (as bench/run.py does) and runs, one after
another against the same data, an incremental first sync of `users`, `courses` and `course_enrollments`:

* `deletions`: this checkout's connector through bench/timed_connector.py (the real entrypoint, with
  `ListedIds.commit` and `ListedIds.from_state` timed); the last STATE message of each stream is kept;
* `before`: the same sync by the connector as it was before deletions were tracked (the merge base with `main`
  while that has no `deletions.py`, else the parent of the commit that added it, or `--state-baseline REV`), extracted with `git archive` under bench/.out/ and run with
  this venv from that tree (its own package comes first on `sys.path`), with its own schemas in the catalog.

Peak RSS and CPU come from the kernel's accounting of that one child (`os.wait4`), as in bench/run.py. A state's
size is its `stream_state` serialized as compact JSON, as Airbyte stores it. Encode and decode are also timed in a
child on the captured ids, `--repeat` times (median), and a child encodes synthetic ids of other shapes (UUIDs,
"uuid:uuid" pairs). It asserts nothing: it prints figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / ".out"
PYTHON = sys.executable
STREAMS = ["users", "courses", "course_enrollments"]
MARKER = "BENCH-LISTED-IDS "


@dataclass
class Sync:
    name: str
    wall: float = 0.0
    cpu: float = 0.0
    rss_mb: float = 0.0
    records: dict[str, int] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)  # stream -> its last stream_state
    timings: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = True
    note: str = ""


def state_bytes(stream_state: Any) -> int:
    return len(json.dumps(stream_state, separators=(",", ":")).encode())


def incremental_catalog(tree: Path, workdir: Path, name: str) -> Path:
    entries = []
    for stream in STREAMS:
        schema = json.loads((tree / "source_lms_enrollments" / "schemas" / f"{stream}.json").read_text())
        entries.append({
            "stream": {"name": stream, "json_schema": schema, "supported_sync_modes": ["full_refresh", "incremental"],
                       "source_defined_cursor": True, "default_cursor_field": ["updated_at"], "source_defined_primary_key": [["id"]]},
            "sync_mode": "incremental", "cursor_field": ["updated_at"], "destination_sync_mode": "append_dedup", "primary_key": [["id"]],
        })
    path = workdir / f"catalog-incremental-{name}.json"
    path.write_text(json.dumps({"streams": entries}))
    return path


def sync(name: str, cmd: list[str], cwd: Path) -> Sync:
    """One incremental sync as a child: its records and last STATE per stream from stdout, CPU and peak RSS from wait4."""
    run = Sync(name)
    errors = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=errors, bufsize=1 << 20)
    assert proc.stdout is not None
    failure = b""
    for line in proc.stdout:
        head = line[:48]
        if b'"RECORD"' in head:
            stream = json.loads(line)["record"]["stream"]
            run.records[stream] = run.records.get(stream, 0) + 1
        elif b'"STATE"' in head:
            state = json.loads(line)["state"]
            if "stream" in state:
                run.states[state["stream"]["stream_descriptor"]["name"]] = state["stream"].get("stream_state")
        elif b'"TRACE"' in head and b'"ERROR"' in line[:200]:
            failure = line
    _, status, usage = os.wait4(proc.pid, 0)
    run.wall = time.perf_counter() - start
    run.cpu = usage.ru_utime + usage.ru_stime
    run.rss_mb = usage.ru_maxrss / 1024
    errors.seek(0)
    stderr = errors.read().decode(errors="replace")
    for text in stderr.splitlines():
        if text.startswith(MARKER):
            run.timings = json.loads(text[len(MARKER):])
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or failure:
        run.ok, run.note = False, f"exit {code}: {(failure.decode(errors='replace') or stderr)[-300:]}"
    return run


def baseline_tree(rev: str | None, workdir: Path) -> tuple[str, Path]:
    """The connector before deletions, as files: `rev`, or the parent of the commit that added deletions.py."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    if rev is None:
        # The branch point from main while deletions are not merged there (the same code but for deletions), else
        # the parent of the commit that added deletions.py.
        base = git("merge-base", "HEAD", "main")
        if not base or git("cat-file", "-t", f"{base}:source_lms_enrollments/deletions.py") == "blob":
            added = git("log", "--diff-filter=A", "--format=%H", "--", "source_lms_enrollments/deletions.py").split()
            base = f"{added[-1]}^"
        rev = base
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    tree = workdir / f"before-{sha}"
    if not tree.exists():
        archive = subprocess.run(["git", "archive", "--format=tar", sha, "source_lms_enrollments"], cwd=ROOT, check=True, capture_output=True).stdout
        tree.mkdir(parents=True)
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(tree, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))  # the filter: 3.10.12+
    return sha, tree


def median_sync(runs: list[Sync]) -> Sync:
    ordered = sorted(runs, key=lambda r: r.rss_mb)
    middle = ordered[len(ordered) // 2]
    result = Sync(middle.name, statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs), middle.rss_mb,
                  middle.records, middle.states, middle.timings, all(r.ok for r in runs), next((r.note for r in runs if r.note), ""))
    if len(runs) > 1:
        result.note += f" peak RSS MB of {len(runs)} runs: {', '.join(f'{r.rss_mb:.0f}' for r in runs)}"
    return result


# ---- children: the codec timed on captured and synthetic ids ------------------------------------------------------------


def codec_child(path: str, repeat: int) -> None:
    """For each stream state in the JSON file: decode as the setter does and encode as a first sync's commit does,
    `repeat` times each (median), and the size each encoding gives the same ids."""
    from source_lms_enrollments import deletions

    result = {}
    for stream, stream_state in json.loads(Path(path).read_text()).items():
        value = (stream_state or {}).get(deletions.STATE_KEY)
        if value is None:
            continue
        result[stream] = measure_codec(deletions.decode_ids(value), repeat, value)
    print(json.dumps(result))


def measure_codec(ids: list[str], repeat: int, value: dict[str, Any] | None = None) -> dict[str, Any]:
    from source_lms_enrollments import deletions

    encodings = getattr(deletions, "ENCODINGS", (deletions.ENCODING,))
    encode_times, decode_times = [], []
    encoded = value
    for _ in range(repeat):
        listed = deletions.ListedIds(None)
        listed.new = set(ids)
        start = time.perf_counter()
        listed.commit(True)  # a first sync's commit: the ids sorted and encoded
        encode_times.append(time.perf_counter() - start)
        encoded = listed.encoded
        start = time.perf_counter()
        deletions.ListedIds.from_state(encoded)  # what the state setter calls
        decode_times.append(time.perf_counter() - start)
    sizes = {}
    for name in encodings:
        start = time.perf_counter()
        try:
            sized = deletions.encode_ids(ids, name) if len(encodings) > 1 else deletions.encode_ids(ids)
        except ValueError:  # an encoding these ids do not fit (pairs for ids without one colon each)
            continue
        seconds = time.perf_counter() - start
        sizes[sized["encoding"]] = {"bytes": state_bytes(sized), "encode_s": seconds}
    assert encoded is not None
    return {"count": len(ids), "encoding": encoded["encoding"], "bytes": state_bytes(encoded), "encode_s": statistics.median(encode_times),
            "decode_s": statistics.median(decode_times), "sizes": sizes}


def synthetic_ids(shape: str, count: int, seed: int = 7) -> list[str]:
    """Ids shaped like a provider's, at the bench dataset's proportions (count/50 users, count/200 courses)."""
    import random
    import uuid

    rng = random.Random(seed)
    users, courses = max(1, count // 50), max(1, count // 200)

    def uuids(n: int) -> list[str]:
        return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]

    if shape == "numeric":
        return [str(i) for i in range(1, count + 1)]
    if shape == "uuid":
        return uuids(count)
    per = min(count // courses, users)  # below 10,000 ids a course cannot hold count/courses distinct users
    if shape == "numeric:numeric":
        return [f"{user}:{course}" for course in range(1, courses + 1) for user in rng.sample(range(1, users + 1), per)]
    if shape == "uuid:uuid":
        people, classes = uuids(users), uuids(courses)
        return [f"{user}:{course}" for course in classes for user in rng.sample(people, per)]
    raise ValueError(shape)


SHAPES = {
    "numeric": "sequential integers (Canvas enrollment ids)",
    "numeric:numeric": "user:course integers (TalentLMS, Docebo, Moodle enrollments)",
    "uuid": "random UUIDs (Bindbee and iSpring records, Northpass users and courses; Truto passes its LMS's ids through)",
    "uuid:uuid": "user-uuid:course-uuid (Northpass enrollments)",
}


def synthetic_child(counts: list[int], repeat: int) -> None:
    print(json.dumps({f"{shape} {count}": measure_codec(synthetic_ids(shape, count), repeat) for count in counts for shape in SHAPES}))


def child_json(args: list[str]) -> Any:
    done = subprocess.run([PYTHON, "-m", "bench.state_size", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench/state_size.py {' '.join(args)} failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout)


# ---- the section ------------------------------------------------------------------------------------------------------


def state_section(providers: list[str], sizes: list[dict[str, int]], workdir: Path, repeat: int, baseline: str | None,
                  big_repeat: int = 1) -> list[str]:
    """The figures, as Markdown lines; progress on stderr. Sizes of 1,000,000 enrollments or more run `big_repeat` times."""
    sys.path.insert(0, str(ROOT / "bench"))
    from run import Fake, write_json  # noqa: E402 (bench/run.py, beside this file)

    sha, before = baseline_tree(baseline, workdir)
    rows, codec_rows, rss_rows = [], [], []
    for size in sizes:
        for provider in providers:
            fake = Fake(provider, size["users"], size["courses"], size["enrollments"], 0, workdir, [], cache=False)
            try:
                config = write_json(workdir / f"{provider}-state.json", fake.config())
                now_catalog, before_catalog = incremental_catalog(ROOT, workdir, "now"), incremental_catalog(before, workdir, "before")
                times = big_repeat if size["enrollments"] >= 1_000_000 else repeat
                current, previous = [], []
                for _ in range(times):
                    previous.append(sync("before", [PYTHON, "-m", "source_lms_enrollments.run", "read", "--config", str(config), "--catalog", str(before_catalog)], before))
                    current.append(sync("deletions", [PYTHON, "-m", "bench.timed_connector", "read", "--config", str(config), "--catalog", str(now_catalog)], ROOT))
            finally:
                fake.stop()
            now, then = median_sync(current), median_sync(previous)
            label = f"{provider} | {size['enrollments']:,}"
            print(f"  state {provider} {size['enrollments']:,}: {now.rss_mb:.0f} MB (before: {then.rss_mb:.0f} MB), "
                  f"{now.wall:.1f} s (before: {then.wall:.1f} s){'' if now.ok and then.ok else ' FAILED ' + now.note + then.note}",
                  file=sys.stderr, flush=True)
            states_path = write_json(workdir / f"{provider}-{size['enrollments']}-states.json", now.states)
            codec = child_json(["codec", str(states_path), str(repeat)])
            commits = {t["count"]: t["seconds"] for t in now.timings if t["what"] == "commit"}
            for stream in STREAMS:
                stream_state = now.states.get(stream)
                if stream_state is None:
                    rows.append(f"| {label} | {stream} | {now.records.get(stream, 0):,} | no state | | | | | |")
                    continue
                count = (stream_state.get("listed_ids") or {}).get("count", 0)
                size_bytes = state_bytes(stream_state)
                before_bytes = state_bytes(then.states.get(stream) or {})
                figures = codec.get(stream, {})
                others = " · ".join(f"{name}: {s['bytes']:,} B" for name, s in figures.get("sizes", {}).items() if name != figures.get("encoding"))
                rows.append(f"| {label} | {stream} | {count:,} | {size_bytes:,} | {size_bytes / max(count, 1):.2f} | {before_bytes:,} | "
                            f"{commits.get(count, float('nan')):.3f} | {figures.get('encode_s', float('nan')):.3f} | {figures.get('decode_s', float('nan')):.3f} |"
                            + (f" {others} |" if others else " |"))
            rss_rows.append(f"| {label} | {then.rss_mb:.0f} | {now.rss_mb:.0f} | {now.rss_mb / then.rss_mb:.2f}× | {then.cpu:.1f} | {now.cpu:.1f} | "
                            f"{then.wall:.1f} | {now.wall:.1f} | {' '.join(n for n in (then.note.strip(), now.note.strip()) if n)} |")
    counts = sorted({size["enrollments"] for size in sizes})
    synthetic = child_json(["synthetic", ",".join(str(c) for c in counts), str(repeat)])
    for key, figures in synthetic.items():
        shape, count = key.rsplit(" ", 1)
        others = " · ".join(f"{name}: {s['bytes']:,} B ({s['bytes'] / figures['count']:.2f} B/id)" for name, s in figures["sizes"].items()
                            if name != figures["encoding"])
        codec_rows.append(f"| {shape} | {SHAPES[shape]} | {figures['count']:,} | {figures['encoding']} | {figures['bytes']:,} | "
                          f"{figures['bytes'] / figures['count']:.2f} | {figures['encode_s']:.3f} | {figures['decode_s']:.3f} | {others} |")
    return [
        f"State size (incremental first sync of users, courses, course_enrollments; `listed_ids` encoding as committed; "
        f"encode and decode: median of {repeat} in a child on the same ids; 'before' = {sha}, the connector before deletions):",
        "",
        "| provider | enrollments | stream | ids | state bytes | bytes/id | state bytes before | encode s in the sync (commit) | encode s (median) | decode s (setter, median) | other encodings |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Peak RSS of the same incremental sync, before deletions ({sha}) and now (median of {repeat}; 1 run at 1,000,000 or more unless --state-big-repeat):",
        "",
        "| provider | enrollments | peak RSS MB before | now | ratio | CPU s before | now | wall s before | now | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rss_rows,
        "",
        f"Synthetic ids (bench proportions: count/50 users, count/200 courses; median of {repeat}):",
        "",
        "| shape | like | ids | encoding | state bytes | bytes/id | encode s | decode s | other encodings |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
        *codec_rows,
    ]


def main(argv: list[str]) -> int:
    if argv[:1] == ["codec"]:
        codec_child(argv[1], int(argv[2]))
        return 0
    if argv[:1] == ["synthetic"]:
        synthetic_child([int(c) for c in argv[1].split(",")], int(argv[2]))
        return 0
    raise SystemExit("bench/state_size.py is run by bench/run.py (make bench); its children: codec FILE REPEAT, synthetic COUNTS REPEAT")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
