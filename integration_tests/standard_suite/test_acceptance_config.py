"""acceptance-test-config.yml must give the standard suite every provider: a good and a bad-secret config."""

from pathlib import Path

import yaml

from integration_tests.fake_lms import APPS

ROOT = Path(__file__).resolve().parents[2]


def test_every_provider_has_its_scenarios():
    tests = yaml.safe_load((ROOT / "acceptance-test-config.yml").read_text())["acceptance_tests"]
    connection = {(t["config_path"], t["status"]) for t in tests["connection"]["tests"]}
    discovery = {t["config_path"] for t in tests["discovery"]["tests"]}
    basic_read = {t["config_path"]: t.get("configured_catalog_path") for t in tests["basic_read"]["tests"]}
    for provider in APPS:
        good = f"integration_tests/standard_suite/configs/{provider}_config.json"
        bad = f"integration_tests/standard_suite/configs/{provider}_invalid_secret.json"
        assert (good, "succeed") in connection and (bad, "failed") in connection, provider
        assert good in discovery, provider
        assert basic_read.get(good) == "integration_tests/configured_catalog.json", provider
