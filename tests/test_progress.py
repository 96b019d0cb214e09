"""Progress bars (myosight.progress): drawn on a terminal only, nested bars share one display, and rich is the
package's only terminal library."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from myosight.progress import ProgressBar, track

ROOT = Path(__file__).resolve().parents[1]

NESTED = """
from myosight.progress import ProgressBar, track
with ProgressBar(3, desc="outer bar", unit="step") as outer:
    for _ in range(3):
        for _ in track(range(4), "inner bar", leave=False):
            pass
        outer.set_postfix(loss="0.5")
        outer.update()
print("counted", outer.n)
"""


def _run_on_a_terminal(code: str) -> tuple[int, str, str]:
    """Run `code` with standard error on a pseudo-terminal; (exit code, stdout, what the terminal got)."""
    primary, secondary = os.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = process.communicate(timeout=60)[0].decode()
    os.close(primary)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


def test_nested_bars_are_drawn_on_a_terminal_and_stdout_stays_clean() -> None:
    code, stdout, terminal = _run_on_a_terminal(NESTED)
    assert code == 0, terminal
    assert stdout.strip() == "counted 3.0"  # standard output (a pipe here) gets no bar
    assert "outer bar" in terminal and "3/3" in terminal and "loss=0.5" in terminal
    assert "inner bar" in terminal  # drawn while it ran, inside the outer bar's display


def test_nothing_is_drawn_off_a_terminal() -> None:
    result = subprocess.run([sys.executable, "-c", NESTED], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "counted 3.0"
    assert "outer bar" not in result.stderr


def test_a_disabled_bar_still_counts_and_closes_on_break() -> None:
    bar = ProgressBar(10, desc="quiet", enabled=False)
    seen = []
    for item in bar.iterate(range(10)):
        seen.append(item)
        if item == 4:
            break
    bar.close()  # a second close is harmless
    assert seen == [0, 1, 2, 3, 4] and bar.n == 4
    assert list(track("abc", "letters", enabled=False)) == ["a", "b", "c"]


def test_rich_is_the_only_terminal_library() -> None:
    """No module of the package imports tqdm (rich draws every bar and table; see myosight.progress)."""
    folders = ["core", "capture", "realtime", "gui", "models", "training", "data", "app", "bench", "calibration"]
    offenders = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(name.split(".")[0] == "tqdm" for name in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"tqdm imported in {offenders}; use myosight.progress"
