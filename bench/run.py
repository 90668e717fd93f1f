"""`make bench`: the connector against a floor and its peers, on the same fake LMS data, with figures.

For each provider and latency it starts the fake LMS in its own process (`python -m integration_tests.fake_lms`),
then runs, one after another on the same data, each command as a child process whose stdout this script reads:

* `connector`  this connector's `read` of `course_enrollments` (full refresh), default concurrency;
* `floor`      bench/floor.py: requests + orjson, sequential, the same pages, one line per learner row;
* peers        where they install (bench/peers.py puts each in its own venv under bench/.peers/, gitignored):
               Singer's `tap-canvas` against the fake Canvas, Airbyte's `source-northpass-lms` against the fake
               Northpass.

Wall time is measured here; CPU seconds and peak RSS come from the kernel's accounting of that one child
(`os.wait4`). Records are counted from the child's stdout (Airbyte and Singer RECORD lines, or the floor's lines);
counting happens in this process, not in the measured one. The machine may be shared: each figure is the median
of `--repeat` runs. Then: a 4× larger run and a 1,000,000-enrollment run of the connector (memory growth), and the
start-up time of `spec`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
OUT = ROOT / "bench" / ".out"
PYTHON = sys.executable
STREAM = re.compile(rb'"stream":\s*"([^"]*)"')
# Northpass allows 10 requests a second and the connector spaces them at 8: every client's time is requests ÷ rate,
# whatever its code, so its runs use a fifth of the data (still minutes), and its fake renders every answer (the
# replay cache would skip the fake's rate limit). No growth runs: 1,000,000 enrollments would take 20 minutes.
PROVIDER_SCALE = {"northpass": 0.2}
UNCACHED = {"northpass"}
NO_GROWTH = {"northpass"}


@dataclass
class Run:
    name: str
    wall: float = 0.0
    cpu: float = 0.0
    rss_mb: float = 0.0
    records: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    ok: bool = True
    note: str = ""

    @property
    def total(self) -> int:
        return sum(self.records.values())

    def rate(self, stream: str | None = None) -> float:
        count = self.records.get(stream, 0) if stream else self.total
        return count / self.wall if self.wall else 0.0


# ---- the fake ----------------------------------------------------------------------------------------------------


class Fake:
    """The fake LMS in its own process: it prints its address once its data is built."""

    def __init__(self, provider: str, users: int, courses: int, enrollments: int, latency_ms: float, workdir: Path, options: list[str],
                 cache: bool = True) -> None:
        self.provider = provider
        self.config_path = workdir / f"{provider}-config.json"
        cmd = [PYTHON, "-m", "integration_tests.fake_lms", provider, "--port", "0", "--users", str(users), "--courses", str(courses),
               "--enrollments", str(enrollments), "--latency-ms", str(latency_ms), "--config-out", str(self.config_path)]
        if cache:
            cmd.append("--cache")
        for option in options:
            cmd += ["--option", option]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"listening on (\S+)", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"the fake {provider} did not start: {line!r}")
        self.url = match.group(1)

    def config(self, **extra: Any) -> dict[str, Any]:
        return {**json.loads(self.config_path.read_text()), **extra}

    def requests_served(self) -> int:
        """Requests since the last call (the fake logs every one), then clears the log."""
        with urllib.request.urlopen(f"{self.url}/_fake/requests") as answer:
            count = len(json.loads(answer.read()))
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/_fake/reset-requests", data=b"{}", method="POST")).read()
        return count

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---- one measured child ----------------------------------------------------------------------------------------------


def measure(name: str, cmd: list[str], kind: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Run:
    """Run `cmd`, count its records, and read its CPU and peak RSS from the kernel (wait4 on that pid only)."""
    run = Run(name)
    errors = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=errors, env=env, bufsize=1 << 20)
    last_other = b""
    assert proc.stdout is not None
    for line in proc.stdout:
        if kind == "lines":
            run.records["lines"] = run.records.get("lines", 0) + 1
            continue
        head = line[:48]
        if b'"RECORD"' in head:
            match = STREAM.search(line, 0, 400)
            stream = match.group(1).decode() if match else "?"
            run.records[stream] = run.records.get(stream, 0) + 1
        elif b'"TRACE"' in head and b'"ERROR"' in line[:200]:
            last_other = line
    _, status, usage = os.wait4(proc.pid, 0)
    run.wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    run.cpu = usage.ru_utime + usage.ru_stime
    run.rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    if proc.returncode != 0 or last_other:
        errors.seek(0)
        tail = (last_other or errors.read()[-600:]).decode(errors="replace").strip()
        run.ok, run.note = False, f"exit {proc.returncode}: {tail[-400:]}"
    return run


def median_run(runs: list[Run]) -> Run:
    """The run of median wall time, with medians of CPU and RSS (records must agree across runs)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    middle = ordered[len(ordered) // 2]
    result = Run(middle.name, middle.wall, statistics.median(r.cpu for r in runs), statistics.median(r.rss_mb for r in runs),
                 middle.records, middle.requests, all(r.ok for r in runs), next((r.note for r in runs if r.note), ""))
    if len({tuple(sorted(r.records.items())) for r in runs}) > 1:
        result.note += " record counts differed between repeats"
    result.note += f" walls: {', '.join(f'{r.wall:.2f}' for r in runs)}"
    return result


# ---- what runs ---------------------------------------------------------------------------------------------------------


def catalog(workdir: Path, streams: list[str]) -> Path:
    entries = []
    for stream in streams:
        schema = json.loads((ROOT / "source_lms_enrollments" / "schemas" / f"{stream}.json").read_text())
        entries.append({
            "stream": {"name": stream, "json_schema": schema, "supported_sync_modes": ["full_refresh", "incremental"],
                       "source_defined_cursor": True, "default_cursor_field": ["updated_at"], "source_defined_primary_key": [["id"]]},
            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite",
        })
    path = workdir / f"catalog-{'-'.join(streams)}.json"
    path.write_text(json.dumps({"streams": entries}))
    return path


def connector_cmd(config: Path, catalog_path: Path) -> list[str]:
    return [PYTHON, "-m", "source_lms_enrollments.run", "read", "--config", str(config), "--catalog", str(catalog_path)]


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


# Peers: how to run each against a fake; None when it is not installed (bench/peers.py says why).
def peer_runs(provider: str, fake: Fake, workdir: Path) -> list[tuple[str, Callable[[], Run]]]:
    sys.path.insert(0, str(ROOT / "bench"))
    import peers  # noqa: E402 (bench/peers.py, beside this file)

    return [(name, runner) for name, runner in peers.runners(provider, fake.url, fake.config(), workdir, measure)]


def scenario(provider: str, size: dict[str, int], latency: float, repeat: int, workdir: Path, with_peers: bool, wide: int) -> list[Run]:
    options = ["root_account_id=1"] if provider == "canvas" else []  # tap-canvas hard-codes account 1
    fake = Fake(provider, size["users"], size["courses"], size["enrollments"], latency, workdir, options, cache=provider not in UNCACHED)
    try:
        config = write_json(workdir / f"{provider}-connector.json", fake.config())
        cat = catalog(workdir, ["course_enrollments"])
        plan: list[tuple[str, Callable[[], Run]]] = [
            ("connector", lambda: measure("connector", connector_cmd(config, cat), "airbyte")),
            ("floor", lambda: measure("floor", [PYTHON, str(ROOT / "bench" / "floor.py"), str(config)], "lines")),
        ]
        if latency and wide:
            wide_config = write_json(workdir / f"{provider}-connector-wide.json", fake.config(max_concurrency=wide))
            plan.append((f"connector, max_concurrency {wide}", lambda: measure(f"connector, max_concurrency {wide}", connector_cmd(wide_config, cat), "airbyte")))
        if with_peers:
            plan += peer_runs(provider, fake, workdir)
        # The fake replays each answer it has rendered once (`--cache`): an untimed floor run renders the pages the
        # connector and floor read, so that neither pays for the fake's rendering; peers warm up with a run of their own.
        if not latency and provider not in UNCACHED:
            plan[1][1]()
        fake.requests_served()  # start counting from here
        results = []
        for index, (name, runner) in enumerate(plan):
            runs = []
            if index >= 2 and not latency and provider not in UNCACHED and not name.startswith("connector"):  # a peer's own pages, rendered once
                runner()
                fake.requests_served()
            for _ in range(repeat):
                run = runner()
                run.requests = fake.requests_served()
                runs.append(run)
                if not run.ok:
                    break
            results.append(median_run(runs))
            print(f"  {provider} {latency:g} ms {name}: {results[-1].wall:.2f} s, {results[-1].total} records, {results[-1].requests} requests"
                  f"{'' if results[-1].ok else ' FAILED ' + results[-1].note}", file=sys.stderr, flush=True)
        return results
    finally:
        fake.stop()


def spec_startup(repeat: int) -> list[tuple[str, float]]:
    times = []
    for name, cmd in [("connector spec", [PYTHON, "-m", "source_lms_enrollments.run", "spec"]), ("python -c pass", [PYTHON, "-c", "pass"])]:
        walls = [measure(name, cmd, "airbyte").wall for _ in range(repeat)]
        times.append((name, statistics.median(walls)))
    return times


# ---- output ------------------------------------------------------------------------------------------------------------


def table(rows: list[tuple[str, str, Run, Run | None, Run | None, str]]) -> str:
    head = ("| provider | latency | run | records | requests | wall s | CPU s | peak RSS MB | records/s | vs floor | vs this connector | note |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    lines = [head]
    for provider, latency, run, floor, connector, note in rows:
        versus_floor = f"{run.rate() / floor.rate():.2f}" if floor and floor.rate() and run.ok else ""
        versus_connector = (f"{run.wall / connector.wall:.1f}× slower" if run.wall >= connector.wall else f"{connector.wall / run.wall:.1f}× faster") \
            if connector and run is not connector and run.ok and run.name != "floor" else ""
        lines.append(f"| {provider} | {latency} | {run.name} | {run.total:,} | {run.requests:,} | {run.wall:.2f} | {run.cpu:.2f} | {run.rss_mb:.0f} | "
                     f"{run.rate():,.0f} | {versus_floor} | {versus_connector} | {note if run.ok else 'FAILED: ' + run.note[:120]} |")
    return "\n".join(lines)


def provider_facts(providers: list[str]) -> dict[str, tuple[int, int | None]]:
    """Each provider's default fan-out width and its own request-rate limit, asked of a child: this process stays
    small, because a child's peak RSS as the kernel counts it starts from this process's size at fork."""
    code = ("import json,sys; from source_lms_enrollments.providers import PROVIDERS as P; from integration_tests.fake_lms import APPS as A; "
            "print(json.dumps({p: (P[p].default_concurrency, P[p].max_requests_per_second) for p in sys.argv[1:] if p in P and p in A}))")
    return json.loads(subprocess.run([PYTHON, "-c", code, *providers], cwd=ROOT, check=True, capture_output=True, text=True).stdout)


def cdk_record_cost(workdir: Path, count: int = 100_000, repeat: int = 3) -> float:
    """µs of CPU per record spent in the CDK's own record path (bench/cdk_path.py: N ready records minus 0)."""
    empty, cat = write_json(workdir / "empty-config.json", {}), catalog(workdir, ["course_enrollments"])

    def cpu(n: int) -> float:
        done = subprocess.run([PYTHON, "-m", "bench.cdk_path", str(n), str(empty), str(cat)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=True)
        return float(done.stderr.strip().splitlines()[-1])

    return statistics.median(cpu(count) - cpu(0) for _ in range(repeat)) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", default="talentlms,canvas,northpass", help="those without a fake yet are skipped")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--courses", type=int, default=500)
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--latencies", default="0,50", help="ms added by the fake to every answer")
    parser.add_argument("--latency-scale", type=float, default=1.0, help="the data size of runs with latency, as a share of the size above "
                        "(sequential runs at 50 ms take requests × 50 ms: 0.2 keeps the whole bench within minutes)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wide", type=int, default=10, help="with latency, also run the connector with this max_concurrency, the most the spec allows (0: skip)")
    parser.add_argument("--growth", type=int, default=4, help="the memory-growth run's size, as a multiple (0: skip)")
    parser.add_argument("--million", action=argparse.BooleanOptionalAction, default=True, help="also read 1,000,000 enrollments")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--state", action=argparse.BooleanOptionalAction, default=True,
                        help="the state-size section (bench/state_size.py): listed_ids at --state-sizes enrollments")
    parser.add_argument("--state-only", action="store_true", help="only the state-size section")
    parser.add_argument("--state-sizes", default="100000,1000000", help="enrollments (users and courses in the proportions above)")
    parser.add_argument("--state-providers", default="talentlms,canvas")
    parser.add_argument("--state-baseline", default=None, help="the connector before deletions (default: the merge base with main while main has no deletions.py, else the parent of the commit that added it)")
    parser.add_argument("--state-big-repeat", type=int, default=1, help="repeats at 1,000,000 enrollments or more (each takes minutes)")
    args = parser.parse_args(argv)
    if args.state_only:
        return state_figures(args)

    facts = provider_facts(args.providers.split(","))
    defaults = {provider: width for provider, (width, _rate) in facts.items()}
    providers = [p for p in args.providers.split(",") if p in defaults]
    for skipped in sorted(set(args.providers.split(",")) - set(providers)):
        print(f"  {skipped}: no provider or no fake of that name here; skipped", file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=OUT))
    size = {"users": args.users, "courses": args.courses, "enrollments": args.enrollments}
    rows: list[tuple[str, str, Run, Run | None, Run | None, str]] = []
    checks: list[str] = []
    # The connector's fixed cost (interpreter and imports, as `spec` pays it), measured first: the figures below are
    # also given without it, since it does not grow with the data.
    startup = spec_startup(5)
    start_cost = startup[0][1]
    for provider in providers:
        concurrency = defaults[provider]
        for latency in (float(value) for value in args.latencies.split(",")):
            share = (args.latency_scale if latency else 1.0) * PROVIDER_SCALE.get(provider, 1.0)
            scaled = {key: max(1, int(value * share)) for key, value in size.items()}
            label = f"{latency:g} ms, {scaled['users']:,} users / {scaled['courses']:,} courses / {scaled['enrollments']:,} enrollments"
            results = scenario(provider, scaled, latency, args.repeat, workdir, args.peers, args.wide)
            connector, floor = results[0], results[1]
            for run in results:
                note = ""
                if run.name.startswith("connector") and latency and run.ok:
                    width = args.wide if "max_concurrency" in run.name else concurrency
                    rate = facts[provider][1]
                    ideal = max(run.requests * latency / 1000 / width, run.requests / rate if rate else 0.0)
                    how = f"requests ÷ {rate}/s, the provider's limit" if rate and run.requests / rate >= run.requests * latency / 1000 / width else f"requests × latency ÷ {width}"
                    note = f"ideal {ideal:.2f} s ({how}): {run.wall / ideal:.2f}×, {(run.wall - start_cost) / ideal:.2f}× without start-up"
                    checks.append(f"{provider} {label}, {run.name} ({width} at once): wall {run.wall / ideal:.2f}× the ideal, "
                                  f"{(run.wall - start_cost) / ideal:.2f}× without the {start_cost:.1f} s start-up (target ≤ 1.3); "
                                  f"{floor.wall / run.wall:.1f}× faster than sequential (target ≥ 6)")
                rows.append((provider, label, run, floor, connector, note))
            if not latency:
                steady = connector.total / max(connector.wall - start_cost, 1e-6)
                checks.append(f"{provider} {label}: course_enrollments records/s {connector.rate() / floor.rate():.0%} of the floor's, "
                              f"{steady / floor.rate():.0%} without the {start_cost:.1f} s start-up (target ≥ 60%)")
            for peer in results[2:]:
                if peer.ok and not peer.name.startswith("connector"):
                    checks.append(f"{provider} {label}: {peer.wall / connector.wall:.1f}× faster than {peer.name} in wall time, "
                                  f"{connector.rate() / max(peer.rate(), 1e-9):.1f}× its records/s ({peer.total:,} records to our {connector.total:,}) (target ≥ 5)")
    growth_rows = []
    for provider in (p for p in providers if p not in NO_GROWTH):
        base = next(r for p, l, r, *_ in rows if p == provider and r.name == "connector" and l.startswith("0 ms"))
        sizes = []
        if args.growth:
            sizes.append({key: value * args.growth for key, value in size.items()})
        if args.million:
            factor = 1_000_000 / args.enrollments
            sizes.append({key: int(value * factor) for key, value in size.items()})
        for bigger in sizes:
            run = scenario_connector_only(provider, bigger, workdir)
            growth_rows.append(f"| {provider} | {bigger['users']:,} / {bigger['courses']:,} / {bigger['enrollments']:,} | {run.total:,} | "
                               f"{run.wall:.1f} | {run.cpu:.1f} | {run.rss_mb:.0f} | {run.rss_mb / base.rss_mb:.2f}× | {'' if run.ok else 'FAILED ' + run.note[:100]} |")
            checks.append(f"{provider} {bigger['enrollments']:,} enrollments: peak RSS {run.rss_mb:.0f} MB, {run.rss_mb / base.rss_mb:.2f}× the "
                          f"{args.enrollments:,} run's (targets: ≤ 1.2× at 4×, < 250 MB at 1,000,000)")
    print()
    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; medians of {args.repeat} runs.")
    print()
    print(table(rows))
    if growth_rows:
        print()
        print("| provider | users / courses / enrollments | records | wall s | CPU s | peak RSS MB | RSS vs base run | note |")
        print("|---|---|---:|---:|---:|---:|---:|---|")
        print("\n".join(growth_rows))
    print()
    print("Start-up (median of 5): " + " · ".join(f"{name}: {seconds:.2f} s" for name, seconds in startup))
    print(f"The CDK's own record path (AirbyteMessage, serialization, print; bench/cdk_path.py): {cdk_record_cost(workdir):.1f} µs of CPU a record")
    print()
    print("\n".join(f"- {line}" for line in checks))
    shutil.rmtree(workdir, ignore_errors=True)
    return state_figures(args) if args.state else 0


def state_figures(args: argparse.Namespace) -> int:
    """The state-size section (bench/state_size.py), printed after the speed figures."""
    sys.path.insert(0, str(ROOT / "bench"))
    import state_size  # noqa: E402 (bench/state_size.py, beside this file)

    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-state-", dir=OUT))
    sizes = [{"users": max(1, args.users * count // args.enrollments), "courses": max(1, args.courses * count // args.enrollments), "enrollments": count}
             for count in (int(value) for value in args.state_sizes.split(","))]
    lines = state_size.state_section(args.state_providers.split(","), sizes, workdir, args.repeat, args.state_baseline, args.state_big_repeat)
    print()
    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end of the state section.")
    print()
    print("\n".join(lines))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def scenario_connector_only(provider: str, size: dict[str, int], workdir: Path) -> Run:
    fake = Fake(provider, size["users"], size["courses"], size["enrollments"], 0, workdir, [], cache=False)
    try:
        config = write_json(workdir / f"{provider}-big.json", fake.config())
        run = measure("connector", connector_cmd(config, catalog(workdir, ["course_enrollments"])), "airbyte")
        print(f"  {provider} {size['enrollments']:,} enrollments: {run.wall:.1f} s, {run.rss_mb:.0f} MB", file=sys.stderr, flush=True)
        return run
    finally:
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
