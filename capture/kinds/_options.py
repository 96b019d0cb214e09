"""Options more than one source kind reads, declared once (see `SourceOption`); `COMMON` ones every command
that starts a source has, whatever the kind."""

from __future__ import annotations

from myosight import options
from myosight.arms import arms_option
from myosight.capture.kinds import SourceOption

SPEED = SourceOption(("--speed",), "speed", {"type": options.speed, "default": 1.0,
                                              "help": "how many times real time to play"})
CAMERA = SourceOption(("--camera",), "camera", {"default": "0", "help": "camera index or video file"})
LSL_EMG_LEFT = SourceOption(("--lsl-emg-left",), "lsl_emg_left", {
    "metavar": "NAME", "help": "the left arm's EMG stream: another program's, or an XDF file's where the file "
    "does not say"})
LSL_EMG_RIGHT = SourceOption(("--lsl-emg-right",), "lsl_emg_right", {
    "metavar": "NAME", "help": "the right arm's EMG stream (as --lsl-emg-left)"})
SUBJECT = SourceOption(("--subject",), "subject", {
    "default": "S00", "help": "subject id written into recordings; synthetic: the synthetic person to render "
    "(S00-S09)"})
ARMS = SourceOption(("--arms",), "arms", {
    "type": arms_option, "metavar": "left|right|both",
    "help": "the armbands worn: synthetic, the person's; camera+myo without addresses, the ones to connect "
    "(default: the model's, else both; with --myo-left/--myo-right, the ones named)"})

#: Options of every source-starting command, read by all kinds (`SourceKind.arms_from_args`) and by recordings.
COMMON = (SUBJECT, ARMS)
