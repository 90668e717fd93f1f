"""Run a fake LMS by hand: python -m integration_tests.fake_lms talentlms --port 8080 --users 200 --courses 30

Prints the address and, with --config-out, writes a connector config that authenticates against it.
Stops on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from . import APPS, start_fake


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration_tests.fake_lms", description=__doc__.splitlines()[0])
    parser.add_argument("provider", choices=sorted(APPS))
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--courses", type=int, default=10)
    parser.add_argument("--enrollments", type=int, default=None, help="default: two per user")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument("--cache", action="store_true", help="replay each GET's first successful answer (benchmarks: keeps the fake's rendering out of a client's timing)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="provider fake option, e.g. date_format=MMDDYYYY")
    parser.add_argument("--config-out", help="write a connector config for this fake to this path")
    args = parser.parse_args(argv)
    options = dict(item.split("=", 1) for item in args.option)
    server = start_fake(args.provider, users=args.users, courses=args.courses, enrollments=args.enrollments,
                        seed=args.seed, port=args.port, latency_ms=args.latency_ms, cache=args.cache, **options)
    if args.config_out:
        with open(args.config_out, "w") as handle:
            json.dump(server.config(), handle, indent=2)
    print(f"fake {args.provider} listening on {server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
