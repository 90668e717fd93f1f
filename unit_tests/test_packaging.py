"""The packaging files agree with each other: metadata.yaml (Airbyte's connector metadata), pyproject.toml,
CHANGELOG.md and the Dockerfile. A release bumps the version in all of them or the build breaks here."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

from source_lms_enrollments import SourceLmsEnrollments

ROOT = Path(__file__).resolve().parents[1]
# ConnectorMetadataDefinitionV0's required `data` fields (airbytehq/airbyte, metadata_service models).
REQUIRED = ("name", "definitionId", "connectorType", "dockerRepository", "dockerImageTag", "license",
            "documentationUrl", "githubIssueLabel", "connectorSubtype", "releaseStage")
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@pytest.fixture(scope="module")
def metadata() -> dict:
    document = yaml.safe_load((ROOT / "metadata.yaml").read_text())
    assert document["metadataSpecVersion"] == "1.0"
    return document["data"]


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def changelog_versions() -> list[str]:
    """The Version column of CHANGELOG.md's table, top to bottom."""
    rows = re.findall(r"^\|\s*([^|\s]+)\s*\|\s*\d{4}-\d{2}-\d{2}\s*\|", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert rows, "CHANGELOG.md has no `| version | YYYY-MM-DD | ... |` row"
    return rows


def test_metadata_has_every_field_airbyte_requires(metadata):
    missing = [name for name in REQUIRED if not metadata.get(name)]
    assert not missing, f"metadata.yaml lacks {missing}"
    assert metadata["connectorType"] == "source"
    assert metadata["connectorSubtype"] == "api"
    assert metadata["releaseStage"] in {"alpha", "beta", "generally_available", "custom"}
    assert metadata["supportLevel"] in {"community", "certified", "archived"}
    assert {"language:python", "cdk:python"} <= set(metadata["tags"])
    assert metadata["documentationUrl"].startswith("https://")


def test_definition_id_is_a_uuid(metadata):
    assert str(uuid.UUID(metadata["definitionId"])) == metadata["definitionId"]


def test_image_tag_package_version_and_changelog_agree(metadata, project, dockerfile):
    version = project["version"]
    assert SEMVER.match(version), f"pyproject version {version!r} is not MAJOR.MINOR.PATCH"
    assert metadata["dockerImageTag"] == version, "metadata.yaml dockerImageTag differs from pyproject.toml version"
    assert changelog_versions()[0] == version, "CHANGELOG.md's newest entry is not the pyproject.toml version"
    label = re.search(r'io\.airbyte\.version="([^"]+)"', dockerfile)
    assert label and label.group(1) == version, "the Dockerfile's io.airbyte.version label differs from pyproject.toml"


def test_changelog_is_newest_first_without_repeats():
    versions = [tuple(map(int, SEMVER.match(v).groups())) for v in changelog_versions()]
    assert versions == sorted(set(versions), reverse=True)


def test_dockerfile_builds_on_the_base_image_metadata_names(metadata, dockerfile):
    base = metadata["connectorBuildOptions"]["baseImage"]
    # Python 3.11 bases are 4.x; a digest pins the exact image a release was built and tested on.
    assert re.fullmatch(r"docker\.io/airbyte/python-connector-base:4\.\d+\.\d+@sha256:[0-9a-f]{64}", base), base
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert default and default.group(1) == base, "Dockerfile's ARG BASE_IMAGE default differs from metadata.yaml"
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert froms and all(f == "${BASE_IMAGE}" for f in froms), "every FROM must be the BASE_IMAGE argument"


def test_image_entrypoint_is_the_console_script(metadata, project, dockerfile):
    # The connector's own script (the package also installs lms-enrollments-sync, the warehouse path).
    (command,) = [name for name, target in project["scripts"].items() if target == "source_lms_enrollments.run:run"]
    assert re.search(rf'^ENV AIRBYTE_ENTRYPOINT="{command}"$', dockerfile, re.M)
    assert re.search(rf'^ENTRYPOINT \["{command}"\]$', dockerfile, re.M)
    assert re.search(rf'io\.airbyte\.name="{metadata["dockerRepository"]}"', dockerfile)
    assert re.search(r"^USER airbyte$", dockerfile, re.M), "the image must not run as root"


def test_metadata_documentation_url_is_the_spec_one(metadata):
    spec = SourceLmsEnrollments().spec(logging.getLogger("test"))
    assert metadata["documentationUrl"] == spec.documentationUrl
