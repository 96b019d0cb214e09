"""The replay picker's question for an XDF file that does not say which EMG stream is which arm.

A LabRecorder file from another program often names its armband streams "EMG 1" and "EMG 2": the replay
would have to guess, and a swapped pair gives wrong predictions without any error. So when the file (an
`arm` field in a stream's description, or "left"/"right" in its name) and the user's left/right fields do
not settle it, the window asks, listing the file's EMG streams read from their headers (no samples are
loaded for that).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from myosight.capture.xdf_replay import XdfStreamInfo, choose_arms, emg_streams, scan_streams
from myosight.constants import ARMS
from myosight.errors import ConfigError
from myosight.gui.qt import QtWidgets

#: ask(EMG streams, path) -> {"left": stream id or None, "right": ...}, or None when the user cancels.
ArmQuestion = Callable[[list[XdfStreamInfo], Path], "dict[str, str | None] | None"]


def xdf_arms(path: str | Path, left: str | None, right: str | None,
             ask: ArmQuestion) -> tuple[str | None, str | None] | None:
    """The left and right streams to replay `path` with: `left`/`right` as given when they and the file settle
    both arms, else what `ask` answers (None: cancelled). A file that cannot be replayed raises its
    SessionFormatError (a MyosightError)."""
    path = Path(path)
    streams = scan_streams(path).streams
    try:
        choose_arms(streams, path, left=left, right=right)
        return left, right
    except ConfigError:
        pass  # the arms are not settled: ask
    answer = ask(emg_streams(streams), path)
    if answer is None:
        return None
    return answer.get("left"), answer.get("right")


class XdfArmsDialog(QtWidgets.QDialog):
    """Which EMG stream of the file is which arm (or none)."""

    def __init__(self, streams: list[XdfStreamInfo], path: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Which arm is which?")
        form = QtWidgets.QFormLayout(self)
        form.addRow(QtWidgets.QLabel(f"{path.name} does not say which EMG stream is which arm."))
        self.boxes: dict[str, QtWidgets.QComboBox] = {}
        for index, arm in enumerate(ARMS):
            box = QtWidgets.QComboBox()
            box.addItem("(none)", None)
            for stream in streams:
                box.addItem(stream.label(), str(stream.stream_id))
            box.setCurrentIndex(min(index + 1, len(streams)))  # a first guess in file order, shown, never silent
            box.currentIndexChanged.connect(self._check)
            self.boxes[arm] = box
            form.addRow(f"{arm} arm", box)
        self.problem = QtWidgets.QLabel("")
        form.addRow(self.problem)
        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                                  | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self._check()

    def answer(self) -> dict[str, str | None]:
        return {arm: box.currentData() for arm, box in self.boxes.items()}

    def _check(self) -> None:
        """OK only for one stream per arm and at least one arm."""
        chosen = [value for value in self.answer().values() if value is not None]
        problem = ("choose a stream for at least one arm" if not chosen else
                   "one stream cannot be both arms" if len(set(chosen)) < len(chosen) else "")
        self.problem.setText(problem)
        self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)


def ask_with_dialog(parent: QtWidgets.QWidget | None) -> ArmQuestion:
    """The question as a modal dialog over `parent`."""

    def ask(streams: list[XdfStreamInfo], path: Path) -> dict[str, str | None] | None:
        dialog = XdfArmsDialog(streams, path, parent)
        return dialog.answer() if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted else None

    return ask
