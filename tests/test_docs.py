"""The documentation still matches the tools: every sqz command shown in README.md, docs/ and the
examples' READMEs parses with that command's own argparse parser (parsed only, never run), and
every relative link points at a file, and a heading, that exists.

Commands are taken from fenced code blocks (a `$ ` prompt marks the command lines of a
transcript; otherwise every line is one), with backslash continuations joined, `&&`, `||`, `;`
split, comments, `.venv/bin/`-style paths, `nice`/`time` and variable assignments
stripped, and `python -m converter.commands.X` taken as the command X. A command with
placeholders (`[--opt]`, `<model>`, `a|b`, `...`) is a synopsis: each option it names must exist.
Commands in inline code spans are often fragments of a command line, so only their option names
are checked.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

from converter.commands import bench, compress, convert, shapes, train, validate
from converter.errors import UsageError

PARSERS: dict[str, Callable] = {
    "sqz-convert": convert._convert_parser,
    "sqz-validate": validate._validate_parser,
    "sqz-bench": bench._parser,
    "sqz-train": train._parser,
    "sqz-compress": compress._parser,
    "converter.commands.convert": convert._convert_parser,
    "converter.commands.validate": validate._validate_parser,
    "converter.commands.bench": bench._parser,
    "converter.commands.train": train._parser,
    "converter.commands.compress": compress._parser,
    "converter.commands.shapes": shapes._parser,
    # The examples' scripts run the installed package, sqz_mcu (pyproject.toml).
    **{f"sqz_mcu.commands.{name}": parser for name, parser in (
        ("convert", convert._convert_parser), ("validate", validate._validate_parser),
        ("bench", bench._parser), ("train", train._parser), ("compress", compress._parser),
        ("shapes", shapes._parser))},
}

# Code blocks in these languages hold no shell commands.
NOT_SHELL = {"c", "cpp", "json", "toml", "ini", "python", "yaml", "cmake"}
SEPARATORS = re.compile(r"\s*(?:&&|\|\||;)\s*")  # a lone | is a synopsis' alternative
SYNOPSIS = re.compile(r"[\[\]<>|]|\.\.\.|…")
WRAPPERS = {"nice", "time", "exec", "sudo", "env"}
DRAWING = re.compile("[\u2500-\u25ff]")  # box drawing, blocks and arrows


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
            *sorted((REPO / "examples").glob("*/README.md"))]


@dataclass(frozen=True)
class Shown:
    """One command as the documentation shows it."""

    where: str  # file:line
    text: str  # the command, continuations joined
    inline: bool  # from an inline code span (a fragment), not a code block


def _fences(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number of the first line, info string, lines) of every fenced code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"\s*```(.*)$", lines[i])
        if m:
            start, info, body = i + 2, m.group(1).strip(), []
            i += 1
            while i < len(lines) and not re.match(r"\s*```\s*$", lines[i]):
                body.append(lines[i])
                i += 1
            yield start, info, body
        i += 1


def _prose(text: str) -> str:
    """The text with fenced code blocks blanked out (line numbers kept)."""
    out, inside = [], False
    for line in text.splitlines():
        if re.match(r"\s*```", line):
            inside = not inside
            out.append("")
        else:
            out.append("" if inside else line)
    return "\n".join(out)


def _logical_lines(body: list[str], first: int) -> Iterator[tuple[int, str]]:
    prompt = any(line.startswith("$ ") for line in body)
    i = 0
    while i < len(body):
        line, number = body[i], first + i
        i += 1
        if prompt:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        while line.rstrip().endswith("\\") and i < len(body):
            line = line.rstrip()[:-1] + " " + body[i].strip()
            i += 1
        yield number, line


def _strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line)


def shown_commands(path: Path, text: str | None = None) -> list[Shown]:
    text = path.read_text() if text is None else text
    name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    found: list[Shown] = []
    for first, info, body in _fences(text):
        if info.split()[:1] and info.split()[0].lower() in NOT_SHELL:
            continue
        for number, line in _logical_lines(body, first):
            if DRAWING.search(line):  # a picture (the pipeline), not a command
                continue
            for part in SEPARATORS.split(_strip_comment(line)):
                if _command(part):
                    found.append(Shown(f"{name}:{number}", " ".join(part.split()), inline=False))
    prose = _prose(text)
    for m in re.finditer(r"`([^`]+)`", prose):
        span = " ".join(m.group(1).split())
        if _command(span):
            number = prose.count("\n", 0, m.start()) + 1
            found.append(Shown(f"{name}:{number}", span, inline=True))
    return found


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote in a synopsis
        return text.split()


def _command(text: str) -> tuple[str, list[str]] | None:
    """(the command's key in PARSERS, its arguments) when `text` runs an sqz command."""
    words = _split(text)
    while words and (words[0] in WRAPPERS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*",
                                                          words[0])):
        words = words[1:]
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program in PARSERS and program.startswith("sqz-"):
        return program, words[1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", program) and words[1:2] == ["-m"] and \
            len(words) > 2 and words[2] in PARSERS:
        return words[2], words[3:]
    return None


def problems(shown: Shown) -> list[str]:
    """What is wrong with one shown command, as messages (none: it parses)."""
    key, args = _command(shown.text)
    parser = PARSERS[key]()
    parser.allow_abbrev = False  # the docs spell every option in full
    if shown.inline or SYNOPSIS.search(shown.text):
        known = set(parser._option_string_actions)
        options = {w.split("=", 1)[0] for token in args
                   for w in token.strip("[]()").split("|") if re.match(r"--?[A-Za-z]", w)}
        return [f"{shown.where}: {key} has no option {o}: {shown.text}"
                for o in sorted(options - known)]
    try:
        parser.parse_args(args)
    except UsageError as exc:
        return [f"{shown.where}: {exc}: {shown.text}"]
    except SystemExit as exc:  # --help, --version
        if exc.code:
            return [f"{shown.where}: exit {exc.code}: {shown.text}"]
    return []


ALL_SHOWN = [s for path in doc_files() for s in shown_commands(path)]


def test_the_docs_show_commands_of_every_tool():
    keys = {_command(s.text)[0] for s in ALL_SHOWN}
    assert {"sqz-convert", "sqz-validate", "sqz-bench", "sqz-train", "sqz-compress"} <= keys
    assert sum(not s.inline for s in ALL_SHOWN) >= 30


@pytest.mark.parametrize("shown", ALL_SHOWN, ids=lambda s: s.where)
def test_every_command_shown_parses(shown):
    assert problems(shown) == []


def test_a_misspelled_option_is_caught(tmp_path):
    doc = tmp_path / "doc.md"
    text = ("Run `sqz-validate --sim host --per-layr` and\n\n"
            "```\n$ .venv/bin/sqz-convert squeezenet1_1 --targt esp32s3 \\\n"
            "      --classes 10\nsome output\n"
            "$ nice python -m converter.commands.bench squeezenet1_1 --input-size 96x "
            "&& sqz-train data -o m.keras --epoch 3\n```\n\n"
            "```sh\nsqz-compress MODEL -o OUT.keras [--sparsity paper] [--bitz 6]\n"
            "sqz-convert --target host --stream sometimes  # a comment\n"
            "sqz-validate --sim qemu --model build/s3 -n 2 --per-layer\n```\n")
    shown = shown_commands(doc, text)
    assert [s.text for s in shown] == [
        ".venv/bin/sqz-convert squeezenet1_1 --targt esp32s3 --classes 10",
        "nice python -m converter.commands.bench squeezenet1_1 --input-size 96x",
        "sqz-train data -o m.keras --epoch 3",
        "sqz-compress MODEL -o OUT.keras [--sparsity paper] [--bitz 6]",
        "sqz-convert --target host --stream sometimes",
        "sqz-validate --sim qemu --model build/s3 -n 2 --per-layer",
        "sqz-validate --sim host --per-layr"]
    found = [problems(s) for s in shown]
    assert "--targt" in found[0][0]
    assert "--input-size '96x'" in found[1][0]
    assert "--epoch" in found[2][0]  # an abbreviation of --epochs: refused too
    assert found[3] == [f"{shown[3].where}: sqz-compress has no option --bitz: {shown[3].text}"]
    assert "sometimes" in found[4][0]
    assert found[5] == []
    assert found[6] == [f"{shown[6].where}: sqz-validate has no option --per-layr: "
                        f"{shown[6].text}"]


# ---- links ------------------------------------------------------------------------------------

def slugs(text: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(text).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)).lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> Iterator[tuple[str, str]]:
    """(file:line, target) of every relative link."""
    prose = _prose(path.read_text())
    for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", prose):
        target = m.group(1)
        if not re.match(r"[a-z]+:", target):
            yield f"{path.relative_to(REPO)}:{prose.count(chr(10), 0, m.start()) + 1}", target


def test_every_relative_link_points_at_something():
    broken = []
    for path in doc_files():
        for where, target in links(path):
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(f"{where}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in slugs(dest.read_text()):
                broken.append(f"{where}: {target}: no heading #{anchor} in {dest.name}")
    assert broken == []


def test_slugs_are_githubs():
    assert slugs("# Row streaming: peak arena\n## The pipeline and the converter's layers\n"
                 "## `--export` and 96×96\n## Tests\n## Tests\n```\n# not a heading\n```\n") == {
        "row-streaming-peak-arena", "the-pipeline-and-the-converters-layers",
        "--export-and-9696", "tests", "tests-1"}


# pio run's own targets, and those sqz's platform for the emulated boards adds.
PIO_TARGETS = {"upload", "monitor", "clean", "size", "stop"}


def _pio_commands(text: str) -> list[list[str]]:
    """The `pio run` command lines of the code blocks (transcripts: the "$ " lines)."""
    out = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        lines = block.splitlines()
        typed_only = any(ln.startswith("$ ") for ln in lines)
        for line in lines:
            if typed_only and not line.startswith("$ "):
                continue
            line = line.removeprefix("$ ").split("  #", 1)[0]
            if line.split()[:2] == ["pio", "run"]:
                out.append(shlex.split(line))
    return out


@pytest.mark.parametrize("doc", sorted((REPO / "docs").glob("*.md")),
                         ids=lambda p: p.name)
def test_every_pio_target_shown_exists(doc):
    for argv in _pio_commands(doc.read_text()):
        targets = [argv[i + 1] for i, a in enumerate(argv) if a == "-t"]
        assert set(targets) <= PIO_TARGETS, argv


def test_the_board_flow_doc_shows_the_flow():
    text = (REPO / "docs" / "board-flow.md").read_text()
    pio = [" ".join(c) for c in _pio_commands(text)]
    assert "pio run -t upload" in pio and "pio run -t stop" in pio
    assert "sqz-convert --target esp32s3-qemu" in text
    assert re.search(r"sqz-validate --port socket://127\.0\.0\.1:\d+", text)
