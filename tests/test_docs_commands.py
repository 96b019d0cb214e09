"""Every `myosight` command the documentation shows exists, with the options it shows.

The commands are read from README.md and every page under docs/: the lines of shell blocks and the inline code
spans that start with `myosight` (after environment assignments such as `LSLAPICFG=...`). For each, the
subcommands must be the CLI's own and every `--option` must be one that subcommand's parser defines. A renamed
or removed option in the code then fails here until the documentation follows it.
"""

from __future__ import annotations

import argparse
import re
import shlex

import pytest
from conftest import REPO_ROOT

from myosight.cli import build_parser

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
SHELL = ("", "bash", "sh", "shell", "console")
INLINE = re.compile(r"(?<!`)`(myosight [^`]+)`(?!`)")


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line of the opening fence, 1-based; language; body) of every fenced block of a Markdown page, the fences
    paired in order (so a block of another language never swallows its neighbours)."""
    blocks, opened, language, body = [], None, "", []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if opened is None and stripped.startswith("```"):
            opened, language, body = number, stripped[3:].strip(), []
        elif opened is not None and stripped == "```":
            blocks.append((opened, language, "\n".join(body) + "\n"))
            opened = None
        elif opened is not None:
            body.append(line)
    return blocks


def shell_blocks(text: str) -> list[tuple[int, str]]:
    """(line, body) of the page's shell blocks."""
    return [(line, body) for line, language, body in fenced_blocks(text) if language in SHELL]


def _shell_commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped, `&&` and `;` split."""
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"\s#.*$", "", line).strip().removeprefix("$ ")
        for part in re.split(r"\s*(?:&&|;|\s&(?:\s|$))\s*", line):
            commands.append(part.strip().rstrip("&").strip())
    return [c for c in commands if c]


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every myosight command shown in the documentation."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        name = str(page.relative_to(REPO_ROOT))
        for _, block in shell_blocks(text):
            found += [(name, c) for c in _shell_commands(block)]
        prose = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("```"))
        for span in INLINE.findall(prose):
            found += [(name, c) for c in _shell_commands(" ".join(span.split()))]
    commands = []
    for name, command in found:
        words = command.split()
        while words and re.match(r"^[A-Z_]+=\S*$", words[0]):  # LSLAPICFG=... myosight ...
            words.pop(0)
        if words[:1] == ["myosight"]:
            commands.append((name, " ".join(words)))
    return commands


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _resolve(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str], str]:
    """The parser of the subcommand the words name, the words after it, and the subcommand's name."""
    path = ["myosight"]
    while words and (children := _subparsers(parser)) and words[0] in children:
        parser, path = children[words[0]], [*path, words[0]]
        words = words[1:]
    return parser, words, " ".join(path)


def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote in prose: the words as they are
        return command.split()


DOCUMENTED = documented_commands()


def test_the_documentation_shows_commands() -> None:
    """The reader finds the commands (a change of the page format would otherwise make the test below empty)."""
    pages = {page for page, _ in DOCUMENTED}
    assert len(DOCUMENTED) > 100 and {"README.md", "docs/user-guide/hardware.md"} <= pages


@pytest.mark.parametrize(("page", "command"), DOCUMENTED, ids=[f"{p}:{c[:60]}" for p, c in DOCUMENTED])
def test_every_documented_command_exists_with_its_options(page: str, command: str) -> None:
    parser = build_parser()
    words = _tokens(command)[1:]
    subparser, rest, name = _resolve(parser, words)
    top = _subparsers(parser)
    assert name != "myosight" or not rest or rest[0].startswith("-"), \
        f"{page}: `{command}`: no command {rest[0]!r} (commands: {', '.join(sorted(top))})"
    known = {option for action in subparser._actions for option in action.option_strings}
    for word in rest:
        option = word.split("=", 1)[0].strip("[]()")
        if option.startswith("--") and len(option) > 2 and option.replace("-", "").replace("_", "").isalnum():
            assert option in known, f"{page}: `{command}`: {name} has no option {option}"
