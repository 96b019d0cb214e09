"""Type-check the package with mypy as it installs (`make typecheck`, part of `make test`).

The package's folders sit at the repository root under other names than their modules (core/ is `myosight`,
capture/ is `myosight.capture`, ...: `package-dir` in pyproject.toml). mypy cannot map folders to other
names, and the editable install hides the mapping behind an import hook mypy does not run. So this script
lays the modules out under their own names as links into the checkout (build/typecheck/myosight), runs
`mypy -p myosight` there with the settings of pyproject.toml, and prints each error with the checkout's path.

Usage: python tests/typecheck.py [extra mypy arguments]; exit code: mypy's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency provides it
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"
CACHE = ROOT / "build" / "mypy-cache"


def package_dirs() -> dict[str, str]:
    """{"myosight": "core", "myosight.capture": "capture", ...} from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["tool"]["setuptools"]["package-dir"]


def link_tree(dirs: dict[str, str]) -> dict[str, str]:
    """Build the tree of links; returns {path in the tree: path in the checkout} for the error messages."""
    top = TREE / "myosight"
    shutil.rmtree(TREE, ignore_errors=True)  # removes the links, never what they point to
    top.mkdir(parents=True)
    back = {}
    for source in sorted((ROOT / dirs["myosight"]).iterdir()):  # the top package: its files, one link each
        if source.suffix == ".py" or source.name == "py.typed":
            (top / source.name).symlink_to(source)
    back["myosight/"] = dirs["myosight"] + "/"
    for module, folder in dirs.items():
        parts = module.split(".")
        if len(parts) == 2:  # a subpackage: a link to its whole folder
            (top / parts[1]).symlink_to(ROOT / folder, target_is_directory=True)
            back[f"myosight/{parts[1]}/"] = folder + "/"
    return back


def main(argv: list[str]) -> int:
    back = link_tree(package_dirs())
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
               "--cache-dir", str(CACHE), "-p", "myosight", *argv]
    result = subprocess.run(command, cwd=TREE, capture_output=True, text=True,
                            env={**os.environ, "MYPYPATH": str(TREE)})
    longest_first = sorted(back, key=len, reverse=True)
    pattern = re.compile("^(" + "|".join(re.escape(prefix) for prefix in longest_first) + ")", re.MULTILINE)
    for stream, text in ((sys.stdout, result.stdout), (sys.stderr, result.stderr)):
        stream.write(pattern.sub(lambda match: back[match.group(1)], text))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
