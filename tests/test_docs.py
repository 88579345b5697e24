"""The commands the docs show still parse: every sqz-convert and sqz-validate command of the
code blocks in docs/*.md (the "$ " lines of a transcript, else every line; continued with a
backslash) is accepted by the tool's own argument parser, and every `pio run` target they name
exists."""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import REPO

from converter.cli import _convert_parser, _validate_parser

DOCS = sorted((REPO / "docs").glob("*.md"))
PARSERS = {"sqz-convert": _convert_parser, "sqz-validate": _validate_parser}
# pio run's own targets, and those sqz's platform for the emulated boards adds.
PIO_TARGETS = {"upload", "monitor", "clean", "size", "stop"}


def _commands(text: str) -> list[list[str]]:
    out = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        lines = block.splitlines()
        # A transcript: only what follows its "$ " prompts was typed.
        typed_only = any(ln.startswith("$ ") for ln in lines)
        i = 0
        while i < len(lines):
            if typed_only and not lines[i].startswith("$ "):
                i += 1
                continue
            line = lines[i].removeprefix("$ ")
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            i += 1
            words = line.split()
            if words and (words[0] in PARSERS or words[:2] == ["pio", "run"]):
                out.append(shlex.split(line.split("  #", 1)[0]))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_the_commands_shown_parse(doc):
    commands = _commands(doc.read_text())
    for argv in commands:
        if argv[0] in PARSERS:
            # URLs and paths of a transcript: what matters is that the options exist.
            PARSERS[argv[0]]().parse_args(argv[1:])
        else:
            targets = [argv[i + 1] for i, a in enumerate(argv) if a == "-t"]
            assert set(targets) <= PIO_TARGETS, argv


def test_the_board_flow_doc_shows_the_flow():
    commands = [" ".join(c) for c in _commands((REPO / "docs" / "board-flow.md").read_text())]
    assert "sqz-convert --target esp32s3-qemu" in commands
    assert "pio run -t upload" in commands and "pio run -t stop" in commands
    assert any(c.startswith("sqz-validate --port socket://127.0.0.1:") for c in commands)
