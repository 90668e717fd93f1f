"""The Docker image, built from this checkout and run as Airbyte runs it, against the fake LMS on loopback.

The image is built and run with shared/tools/container-check (rootful podman, a local stand-in for
airbyte/python-connector-base, the host network, this checkout mounted read-only-in-practice at /data). Where the
tool cannot run (not found, not root, no podman and no apt-get to install it) every test here is skipped, with
the reason; a build that fails is a failure.

Every container-check call holds one machine-wide file lock (`CONTAINER_CHECK_LOCK`): a first call installs podman
with apt and bootstraps the base image, and two at once race for apt's lock. pytest-xdist's `xdist_group` keeps
these tests on one worker only where pytest and xdist agree on it (pytest 9 with xdist 3.8 does not); the lock
holds whichever workers, or checkouts, run them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer

from integration_tests.fake_lms import start_fake
from integration_tests.harness import STREAMS, CliResult, catalog, run_cli

# One worker runs them all where xdist honours the group, so the image is built once per run (pyproject.toml:
# --dist loadgroup); the lock below, not the group, keeps container-check calls from overlapping.
pytestmark = [pytest.mark.image_tests, pytest.mark.xdist_group("image")]

CHECKOUT = Path(__file__).resolve().parents[1]
# One tag per checkout: worktrees testing at the same time do not run each other's image.
IMAGE = f"source-lms-enrollments:test-{hashlib.sha1(str(CHECKOUT).encode()).hexdigest()[:10]}"
BUILD_TIMEOUT = 1800  # a cold first build installs podman and bootstraps the stand-in base: about 3 minutes here
RUN_TIMEOUT = 300
# One for the machine, not per checkout: worktrees share apt and podman too.
CONTAINER_CHECK_LOCK = Path(tempfile.gettempdir()) / "source-lms-enrollments-container-check.lock"


@contextmanager
def container_check_lock(path: Path = CONTAINER_CHECK_LOCK) -> Iterator[None]:
    """Hold the machine-wide container-check lock (fcntl.flock: released by the kernel if the holder dies)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def container_check(tool: Path, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    with container_check_lock():
        return subprocess.run([str(tool), *args], env=tool_env(), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def find_container_check() -> tuple[Path | None, str]:
    """The tool, or None and why it cannot run. $CONTAINER_CHECK names it; otherwise shared/tools/ beside the
    checkout (as in CI) or beside one of its parent folders (as for a worktree)."""
    if os.environ.get("CONTAINER_CHECK"):
        candidates = [Path(os.environ["CONTAINER_CHECK"])]
    else:
        candidates = [parent / "shared" / "tools" / "container-check" for parent in CHECKOUT.parents]
    tool = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
    if tool is None and os.environ.get("CONTAINER_CHECK"):
        return None, f"CONTAINER_CHECK={os.environ['CONTAINER_CHECK']} is not an executable file"
    if tool is None:
        return None, "shared/tools/container-check not found beside the checkout or its parents (set CONTAINER_CHECK)"
    if os.geteuid() != 0:
        return None, f"{tool} needs root (it uses rootful podman)"
    if not shutil.which("podman") and not shutil.which("apt-get"):
        return None, "podman is not installed and there is no apt-get for container-check to install it"
    return tool, ""


def tool_env() -> dict[str, str]:
    return {**os.environ, "CONTAINER_CHECK_IMAGE": IMAGE}


@pytest.fixture(scope="module")
def tool() -> Path:
    """Builds the image (container-check also runs `spec` in it) once for the module."""
    found, reason = find_container_check()
    if found is None:
        pytest.skip(reason)
    done = container_check(found, "-C", str(CHECKOUT), timeout=BUILD_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"container-check could not build or run the image (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return found


@pytest.fixture
def data_dir() -> Iterator[tuple[Path, str]]:
    """A folder inside the checkout (which `container-check run` mounts at /data): its host path and its path in
    the container. The image runs as user `airbyte`, which may only read /data, so files are written beforehand."""
    folder = Path(tempfile.mkdtemp(prefix=".image-test-", dir=CHECKOUT))
    folder.chmod(0o755)
    try:
        yield folder, f"/data/{folder.name}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write(folder: Path, name: str, content: Any) -> None:
    path = folder / name
    path.write_text(json.dumps(content))
    path.chmod(0o644)


def run_in_image(tool: Path, *args: str) -> CliResult:
    return CliResult.of_process(container_check(tool, "-C", str(CHECKOUT), "run", *args))


def podman(tool: Path, *args: str) -> subprocess.CompletedProcess:
    return container_check(tool, "podman", *args)


def by_id(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda record: record["id"])


def final_states(result: CliResult) -> dict[str, Any]:
    return {m["state"]["stream"]["stream_descriptor"]["name"]: m["state"]["stream"]["stream_state"]
            for m in result.of_type("STATE")}


@pytest.fixture
def fake() -> Iterator[Any]:
    server = start_fake("talentlms", users=30, courses=6, enrollments=60)
    yield server
    server.stop()


def test_container_check_lock_waits_for_another_process(tmp_path):
    """The lock holds across processes (xdist workers are processes): a second holder waits for the first."""
    lock = tmp_path / "container-check.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(1.5)", str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with container_check_lock(lock):
            waited = time.monotonic() - started
        assert waited >= 1.0, f"took the lock after {waited:.2f} s while another process held it"
    finally:
        holder.wait(timeout=10)


def test_image_runs_the_connector_as_user_airbyte(tool):
    done = podman(tool, "image", "inspect", IMAGE)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)[0]["Config"]
    assert config["User"] == "airbyte"
    assert config["Entrypoint"] == ["source-lms-enrollments"]
    assert "AIRBYTE_ENTRYPOINT=source-lms-enrollments" in config["Env"]


def test_spec_in_the_image_is_the_spec_outside(tool, tmp_path):
    inside = run_in_image(tool, "spec")
    assert inside.returncode == 0, inside.stderr
    outside = run_cli(["spec"], tmp_path)
    assert inside.of_type("SPEC")[0]["spec"] == outside.of_type("SPEC")[0]["spec"]


def test_airbyte_entrypoint_variable_starts_the_connector(tool):
    # The platform starts the connector through $AIRBYTE_ENTRYPOINT, not the image's ENTRYPOINT.
    done = podman(tool, "run", "--rm", "--network", "host", "--entrypoint", "sh", IMAGE, "-c",
                  'exec $AIRBYTE_ENTRYPOINT spec')
    result = CliResult.of_process(done)
    assert result.returncode == 0, result.stderr
    assert result.of_type("SPEC"), result.stdout[-2000:]


def test_image_holds_the_installed_package_and_no_tests_or_caches(tool):
    script = ("import importlib.util as u, os, source_lms_enrollments as m; "
              "assert '/site-packages/' in m.__file__, m.__file__; "
              "assert not any(u.find_spec(t) for t in ('integration_tests', 'unit_tests')); "
              "left = [p for p in ('/build', '/tmp/wheels', '/tmp/pyproject.toml', '/custom_cache/pip') if os.path.exists(p)]; "
              "assert not left, left; print('clean')")
    done = podman(tool, "run", "--rm", "--network", "host", "--entrypoint", "python", IMAGE, "-c", script)
    assert done.returncode == 0 and done.stdout.strip().endswith("clean"), done.stderr[-2000:]


def test_check_in_the_image_reaches_the_fake_on_loopback(tool, fake, data_dir):
    folder, inside = data_dir
    write(folder, "config.json", fake.config())
    result = run_in_image(tool, "check", "--config", f"{inside}/config.json")
    assert result.returncode == 0, result.stderr
    assert result.connection_status()["status"] == "SUCCEEDED", result.connection_status()
    assert fake.requests, "the connector in the image never reached the fake server"


def test_read_in_the_image_emits_what_a_run_outside_emits(tool, fake, data_dir, tmp_path):
    folder, inside = data_dir
    config, configured = fake.config(), catalog()
    write(folder, "config.json", config)
    write(folder, "catalog.json", ConfiguredAirbyteCatalogSerializer.dump(configured))
    in_image = run_in_image(tool, "read", "--config", f"{inside}/config.json", "--catalog", f"{inside}/catalog.json")
    assert in_image.returncode == 0, in_image.stderr[-3000:]
    assert not in_image.errors(), in_image.errors()

    outside = run_cli(["read"], tmp_path, config=config, catalog_obj=configured)
    assert outside.returncode == 0, outside.stderr[-3000:]
    for stream in STREAMS:
        records = by_id(in_image.records(stream))
        assert records, f"{stream}: no records from the image"
        assert records == by_id(outside.records(stream)), f"{stream}: the image emitted different records"
    assert final_states(in_image) == final_states(outside)
