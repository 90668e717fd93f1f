"""The sync entry point's own logic, without PyAirbyte: arguments, config file errors, default file per account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from source_lms_enrollments import sync


def test_default_duckdb_file_is_one_per_account():
    acme = {"provider": {"provider_type": "talentlms", "base_url": "https://acme.talentlms.com", "api_key": "k"}}
    other = {"provider": {"provider_type": "talentlms", "base_url": "https://other.talentlms.com", "api_key": "k"}}
    assert sync.default_duckdb_path(acme) == Path(".cache/lms_talentlms_acme_talentlms_com.duckdb")
    assert sync.default_duckdb_path(acme) != sync.default_duckdb_path(other)
    assert sync.default_duckdb_path({}) == Path(".cache/lms_lms_default.duckdb")


def test_config_or_demo_is_required(capsys):
    with pytest.raises(SystemExit):
        sync.parse_args([])
    with pytest.raises(SystemExit):
        sync.parse_args(["--demo", "--config", "c.json"])
    args = sync.parse_args(["--config", "c.json"])
    assert (args.cache, args.schema, args.full_refresh) == ("duckdb", "lms", False)


@pytest.mark.parametrize("content, says", [(None, "Cannot read"), ("{", "not valid JSON"), ("[1]", "JSON object")])
def test_config_file_errors_are_plain(tmp_path, capsys, content, says):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    assert sync.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_postgres_needs_a_password(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"provider": {"provider_type": "talentlms"}}))
    assert sync.main(["--config", str(path), "--cache", "postgres"]) == 2
    assert "PGPASSWORD" in capsys.readouterr().err


def test_summary_table_aligns_columns():
    text = sync.render_table(("table", "rows"), [("users", 5), ("course_enrollments", 120)])
    lines = text.splitlines()
    assert lines[0] == "  table               rows"
    assert lines[3] == "  course_enrollments   120"


def test_demo_without_the_simulated_lms_is_one_clear_line(tmp_path, capsys, monkeypatch):
    # The package never imports test code: --demo needs integration_tests/sync_demo.py to hand it the fake LMS.
    monkeypatch.chdir(tmp_path)
    assert sync.main(["--demo"]) == 2
    err = capsys.readouterr().err
    assert "python -m integration_tests.sync_demo" in err and "Traceback" not in err
