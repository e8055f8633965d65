"""Docs that cannot rot: README examples and the shipped files are loaded by tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor import config
from monitor.cli import commands

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)


@pytest.mark.parametrize("block", [b for b in YAML_BLOCKS if "watches:" in b])
def test_readme_watchlist_examples_validate(block: str) -> None:
    env = {"SMTP_USER": "desk", "SMTP_PASS": "secret", "MATTERMOST_TOKEN": "t0ken"}
    watchlist = config.loads(block, "README.md", env=env)
    assert watchlist.watches


def test_readme_has_a_watchlist_example() -> None:
    assert any("watches:" in b for b in YAML_BLOCKS)


def test_readme_starts_with_the_run_and_test_commands() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.DOTALL)
    assert commands[0].endswith("monitor run")
    assert commands[1].endswith("pytest")
    ci = (ROOT / ".ci/run").read_text()
    assert "<!-- test-command -->" in ci and "<!-- test-command -->" in README


def test_readme_documents_every_watchlist_key() -> None:
    keys = set(config.DefaultsSpec.model_fields) | set(config.WatchSpec.model_fields)
    keys |= set(config.JurisdictionSpec.model_fields)
    missing = [k for k in keys if f"`{k}`" not in README]
    assert not missing, missing


def test_readme_documents_every_command() -> None:
    for name in commands():
        assert f"monitor {name}" in README


def test_readme_counts_the_built_in_watchlist_as_it_is() -> None:
    built_in = config.load(ROOT / "monitor/data/watchlist.yaml")
    rendered = sum(1 for w in built_in.watches if w.browser == "always")
    assert f"built-in watchlist ({len(built_in.watches)} pages" in README
    assert f"The {rendered} built-in pages that are JavaScript applications" in README
