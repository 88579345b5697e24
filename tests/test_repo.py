"""Repository promises: CI runs the README's test command; required layout exists."""

from __future__ import annotations

import re

from conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```\n(python3 -m venv \.venv && [^\n]+)\n```", text)


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    test_cmd = [c for c in commands if "pytest" in c]
    assert len(test_cmd) == 1, commands
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_cmd[0] in ci


def test_ci_sets_up_platformio_offline_with_the_documented_script():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert ".venv/bin/python firmware/tools/pio_offline_setup.py" in ci
    assert "firmware/tools/pio_offline_setup.py" in (REPO / "docs" / "board-flow.md").read_text()


def test_readme_main_command_converts_for_esp32s3():
    main = [c for c in _readme_commands() if "sqz-convert" in c]
    assert main and main[0].endswith("sqz-convert --target esp32s3")


def test_required_layout():
    for path in ("converter", "firmware", "templates", "targets", "tests", "platformio.ini",
                 "pyproject.toml", "docs/protocol.md", ".ci/run"):
        assert (REPO / path).exists(), path
