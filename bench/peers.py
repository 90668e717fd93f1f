"""The peers `make bench` compares with, each installed from PyPI into its own venv under bench/.peers/ (gitignored).

    python bench/peers.py install

Nothing of theirs is copied or changed here. Singer's `tap-canvas` takes its API base URL from its config.
Airbyte's `source-northpass-lms` (a manifest-only connector, published on PyPI as `airbyte-source-northpass-lms`)
has `https://api.northpass.com/v2` written into its manifest: it is run unchanged, with a `sitecustomize` module on
its PYTHONPATH that sends its requests to the fake instead (generated under bench/.out/ at run time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"

# name -> (PyPI package, console script, the provider whose fake it reads, its stream of course enrollments)
CATALOGUE = {
    "tap-canvas": ("tap-canvas", "tap-canvas", "canvas", "enrollments"),
    "source-northpass-lms": ("airbyte-source-northpass-lms", "source-northpass-lms", "northpass", "course_enrollments"),
}

NORTHPASS_API = "https://api.northpass.com"
REDIRECT = '''"""Written by bench/peers.py at run time: send the peer's requests for {api} to the local fake instead."""
import requests.adapters

_send = requests.adapters.HTTPAdapter.send


def send(self, request, *args, **kwargs):
    if request.url.startswith({api!r}):
        request.url = {target!r} + request.url[len({api!r}):]
    return _send(self, request, *args, **kwargs)


requests.adapters.HTTPAdapter.send = send
'''


def executable(name: str) -> Path:
    return PEERS / name / "bin" / CATALOGUE[name][1]


def install() -> int:
    """Install each peer that is not installed yet; say which could not be, and why, without failing the bench."""
    PEERS.mkdir(parents=True, exist_ok=True)
    for name, (package, *_rest) in CATALOGUE.items():
        if executable(name).exists():
            continue
        venv = PEERS / name
        print(f"installing {name} ({package}) into {venv} ...", flush=True)
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", package]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                (venv / "INSTALL_FAILED").write_text(reason[0])
                print(f"  {name} could not be installed: {reason[0]}", flush=True)
                break
    return 0


def missing(name: str) -> str | None:
    if executable(name).exists():
        return None
    failed = PEERS / name / "INSTALL_FAILED"
    return f"not installed ({failed.read_text().strip()})" if failed.exists() else "not installed (run: python bench/peers.py install)"


def selected_catalog(discovered: dict[str, Any], stream: str, singer: bool) -> dict[str, Any]:
    """The peer's own discovered catalog with only its course-enrollment stream selected, full refresh."""
    if singer:
        for entry in discovered["streams"]:
            for item in entry.get("metadata", []):
                if not item.get("breadcrumb"):
                    item["metadata"]["selected"] = entry["tap_stream_id"] == stream
        return discovered
    chosen = next(entry for entry in discovered["streams"] if entry["name"] == stream)
    return {"streams": [{"stream": chosen, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]}


def discover(cmd: list[str], env: dict[str, str] | None) -> dict[str, Any]:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    try:
        whole = json.loads(done.stdout)  # a Singer tap prints its catalog as one (indented) JSON document
        if isinstance(whole, dict) and "streams" in whole:
            return whole
    except ValueError:
        pass
    for line in done.stdout.splitlines():  # an Airbyte source prints one message a line
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("type") == "CATALOG":
                return message["catalog"]
            if "streams" in message:
                return message
            if message.get("type") == "TRACE" and message.get("trace", {}).get("type") == "ERROR":
                raise RuntimeError(f"discover failed: {message['trace']['error'].get('message')}")
    raise RuntimeError(f"discover gave no catalog: {(done.stderr or done.stdout)[-300:]}")


def runners(provider: str, url: str, config: dict[str, Any], workdir: Path, measure: Callable[..., Any]) -> list[tuple[str, Callable[[], Any]]]:
    """How to run each peer of `provider` against the fake at `url`: (name, a function returning a measured run)."""
    found = []
    for name, (_package, _script, peer_provider, stream) in CATALOGUE.items():
        if peer_provider != provider:
            continue
        why = missing(name)
        if why:
            found.append((name, _unavailable(name, why, measure)))
            continue
        try:
            found.append((name, _runner(name, stream, url, config["provider"], workdir, measure)))
        except (RuntimeError, OSError, ValueError, KeyError, StopIteration) as error:
            found.append((name, _unavailable(name, f"could not be run here: {error}", measure)))
    return found


def _runner(name: str, stream: str, url: str, secret: dict[str, Any], workdir: Path, measure: Callable[..., Any]) -> Callable[[], Any]:
    if name == "tap-canvas":
        path = workdir / "tap-canvas-config.json"
        # tap-canvas reads accounts/1 whatever its config says for some streams: the fake runs with root_account_id=1.
        path.write_text(json.dumps({"api_key": secret["access_token"], "base_url": f"{url}/api/v1", "account_id": "1"}))
        env = None
        catalog = selected_catalog(discover([str(executable(name)), "--config", str(path), "--discover"], env), stream, singer=True)
        catalog_path = workdir / "tap-canvas-catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        cmd = [str(executable(name)), "--config", str(path), "--catalog", str(catalog_path)]
    else:
        shim = workdir / "northpass-redirect"
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(REDIRECT.format(api=NORTHPASS_API, target=url))
        env = {**os.environ, "PYTHONPATH": str(shim)}
        path = workdir / "northpass-peer-config.json"
        path.write_text(json.dumps({"api_key": secret["api_key"]}))
        catalog = selected_catalog(discover([str(executable(name)), "discover", "--config", str(path)], env), stream, singer=False)
        catalog_path = workdir / "northpass-peer-catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        cmd = [str(executable(name)), "read", "--config", str(path), "--catalog", str(catalog_path)]
    return lambda: measure(name, cmd, "airbyte", env=env)


def _unavailable(name: str, why: str, measure: Callable[..., Any]) -> Callable[[], Any]:
    def run() -> Any:
        result = measure(name, [sys.executable, "-c", "pass"], "lines")
        result.ok, result.note = False, why
        return result
    return run


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit(__doc__)
    sys.exit(install())
