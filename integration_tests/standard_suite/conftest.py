"""Starts one fake server per provider on a free loopback port and writes the configs that
`acceptance-test-config.yml` names, with the fakes' addresses, before the suite reads them (the suite reads
config files when its tests run, cdk-notes.md §5).

The files are shared by every process running this folder's tests, so the suite runs in one process: `make test`
runs it apart from the parallel (pytest-xdist) run of the other tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from integration_tests.fake_lms import APPS, start_fake


CONFIG_DIR = Path(__file__).parent / "configs"


@pytest.fixture(scope="session", autouse=True)
def fake_lms_servers(worker_id):
    if worker_id != "master":
        pytest.fail("run the standard suite in one process: pytest -n 0 integration_tests/standard_suite")
    CONFIG_DIR.mkdir(exist_ok=True)
    servers = []
    try:
        for provider in sorted(APPS):
            server = start_fake(provider, users=20, courses=5, enrollments=40, port=0)
            servers.append(server)
            (CONFIG_DIR / f"{provider}_config.json").write_text(json.dumps(server.config(), indent=2))
            (CONFIG_DIR / f"{provider}_invalid_secret.json").write_text(json.dumps(server.bad_config(), indent=2))
        (CONFIG_DIR / "spec_config.json").write_text(json.dumps(servers[0].config(), indent=2))
        yield servers
    finally:
        for server in servers:
            server.stop()


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config, items):
    """The suite's own image tests call `docker build` / `docker run`: they need a Docker engine.

    On machines with only the docker client (this project's CI image), they are skipped with that reason;
    the image itself is built and run with podman by integration_tests/test_image.py.
    """
    # Only this folder's items: the hook sees the whole session, and test_image.py shares the marker.
    here = Path(__file__).resolve().parent
    image_tests = [item for item in items if "image_tests" in item.keywords and here in item.path.resolve().parents]
    if not image_tests or docker_engine_answers():
        return
    reason = ("no Docker engine answers `docker info` here (only the docker client is installed); "
              "the image is built and exercised with podman by integration_tests/test_image.py instead")
    for item in image_tests:
        item.add_marker(pytest.mark.skip(reason=reason))
