"""The steps of a benchmark that runs myosight as a user types it: each step a `myosight` command in its own
process, its output kept in a log beside the results, its wall time measured."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from myosight.errors import MyosightError


@dataclass
class CommandSteps:
    """Runs `myosight` commands for a benchmark (`bench`, for messages), naming each on the progress line."""

    work: Path
    say: Callable[[str], None]
    bench: str = "bench"
    timings: dict[str, float] = field(default_factory=dict)

    def myosight(self, name: str, *args: str, timeout_s: float = 1800.0) -> subprocess.CompletedProcess:
        """Run `myosight ARGS` (step `name`, logged to WORK/NAME.log); a MyosightError with the log's tail when
        it fails."""
        self.say(name)
        started = time.monotonic()
        command = [sys.executable, "-m", "myosight", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env,
                                stdin=subprocess.DEVNULL)
        self.timings[name] = time.monotonic() - started
        (self.work / f"{name}.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        if result.returncode != 0:
            tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            raise MyosightError(f"{self.bench}: `myosight {' '.join(args[:2])} ...` failed "
                                f"(exit {result.returncode}): {tail} (log: {self.work / f'{name}.log'})")
        return result

    def myosight_json(self, name: str, *args: str, timeout_s: float = 1800.0) -> dict:
        """Run a command given `--json` and return the JSON object it printed last."""
        out = self.myosight(name, *args, timeout_s=timeout_s).stdout
        return json.loads(out[out.index("{"):])


def free_address() -> str:
    """A loopback ZeroMQ address whose port was free a moment ago: each `myosight run` of a benchmark publishes on
    its own, so that a benchmark beside another myosight (or another benchmark) does not collide on the default."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def running_accuracy(jsonl: Path) -> dict:
    """Accuracy over the logged predictions that have a true label, and the first prediction's wall time."""
    scored = correct = predictions = 0
    first_time = None
    if jsonl.is_file():
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            predictions += 1
            first_time = record.get("time") if first_time is None else first_time
            if record.get("true_label"):
                scored += 1
                correct += int(record["label"] == record["true_label"])
    return {"accuracy": correct / scored if scored else None, "scored": scored, "predictions": predictions,
            "first_time": first_time}
