"""Collects the outcomes of test_reliability.py into the README's "Reliability" table (scenarios × providers).

Reports are read on the controlling process (`pytest_runtest_logreport` also receives pytest-xdist workers'
reports). The table is rewritten between its markers only on a whole run (no -k, -m or explicit paths), so a
partial run never publishes a partial table.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"
MODULE = "integration_tests/test_reliability.py::"
_NODE = re.compile(r"::test_(?P<name>\w+?)(?:\[(?P<params>[^\]]*)\])?$")

_outcomes: dict[str, dict[str, str]] = defaultdict(dict)


def _providers() -> set[str]:
    from integration_tests.fake_lms import APPS

    return set(APPS)


def pytest_runtest_logreport(report):
    if not report.nodeid.startswith(MODULE) or not (report.when == "call" or report.outcome != "passed"):
        return
    match = _NODE.search(report.nodeid)
    if not match:
        return
    parts = (match.group("params") or "").split("-") if match.group("params") else []
    provider = parts[0] if parts and parts[0] in _providers() else "all"
    extra = [p for p in parts if p != provider]
    scenario = match.group("name").replace("_", " ") + (f" ({', '.join(extra)})" if extra else "")
    outcome = {"passed": "pass", "failed": "**FAIL**", "skipped": "skipped"}[report.outcome]
    if _outcomes[scenario].get(provider) != "**FAIL**":
        _outcomes[scenario][provider] = outcome


def _whole_run(config) -> bool:
    if config.getoption("keyword") or config.getoption("markexpr"):
        return False
    return not config.args or all(arg in ("unit_tests", "integration_tests", ".") for arg in config.args) or \
        set(config.args) == set(config.getini("testpaths"))


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput") or not _outcomes or not _whole_run(session.config) or not README.exists():
        return
    providers = sorted(p for p in {p for row in _outcomes.values() for p in row} if p != "all")
    lines = ["| scenario | " + " | ".join(providers) + " |", "|---|" + "---|" * len(providers)]
    for scenario, row in sorted(_outcomes.items()):  # stable order whatever order the workers finish in
        cells = [row.get(p, row.get("all", "—")) for p in providers]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    text = README.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        README.write_text(head + START + "\n" + "\n".join(lines) + "\n" + END + tail)
