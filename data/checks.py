"""What a session must hold before a command learns from it or draws it: checked once, where it enters.

The reader (data/actionsense.py) refuses what breaks the file's layout: a damaged file, timestamps that are
not finite or go backwards, labels that do not pair. A session can pass all of that and still be unusable:
an activity whose Stop was typed a year after its Start (cutting it into windows would take the machine's
memory), EMG that is empty, a single sample, all NaN or beyond any device's range, labels far from the EMG
they label. Each command would then train on zeros, hang, or fail deep inside with a traceback. So every
command that uses a session's labelled EMG (`dataset`, `emg spectrograms`, `subactions`, `calibrate --from`,
the RGB features) takes its actions from `checked_actions`, which refuses such a session in one line naming
the file and the field, and warns, once per session, about what it can use (some NaN values, which the
sEMG pipeline holds at the last finite value; an action partly outside the EMG, zeros there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from myosight.data.actionsense import Action, ActionSenseSession
from myosight.data.layout import ACTIVITY_GROUP, EMG_GROUPS
from myosight.errors import SessionFormatError

log = logging.getLogger(__name__)

#: The shortest EMG a session may hold per arm (one clip of the sEMG pipeline).
MIN_EMG_SECONDS = 1.0
#: The longest labelled action: longer is a wrong label time, not an action.
MAX_ACTION_SECONDS = 3600.0
#: The largest EMG magnitude any device gives (a Myo: 128; amplifiers in microvolts: thousands).
MAX_EMG_MAGNITUDE = 1e7
#: An action may reach this far past its EMG's ends before the user is told (recorders start a moment apart).
OUTSIDE_EMG_WARN_S = 1.0


def checked_actions(session: ActionSenseSession, arms: Sequence[str] | None = None) -> list[Action]:
    """The session's labelled actions, once its content is checked (`check_session`); its warnings logged."""
    actions, warnings = _checked(session, arms)
    for warning in warnings:
        log.warning("%s: %s", session.path, warning)
    return actions


def check_session(session: ActionSenseSession, arms: Sequence[str] | None = None) -> list[str]:
    """SessionFormatError for the first problem that makes the session unusable (naming the file and field);
    otherwise the warnings about what it can use. `arms`: the arms the command reads (default: every arm the
    session has; an arm it lacks is the command's to refuse or allow)."""
    return _checked(session, arms)[1]


def _checked(session: ActionSenseSession, arms: Sequence[str] | None) -> tuple[list[Action], list[str]]:
    actions = session.activities()
    for action in actions:
        _check_action(session, action)
    spans, warnings = {}, []
    for arm in (arms or session.arms):
        if arm in session.arms:
            spans[arm], said = _check_emg(session, arm)
            warnings += said
    for action in actions:
        for arm, span in spans.items():
            warnings += _placement(session, action, arm, span)
    return actions, warnings


def _check_action(session: ActionSenseSession, action: Action) -> None:
    if action.duration_s > MAX_ACTION_SECONDS:
        raise SessionFormatError(session.path, f"action {action.index + 1} ('{action.label}') lasts "
                                 f"{action.duration_s:.3g} s, more than {MAX_ACTION_SECONDS:g} s: a label time is "
                                 "wrong", ACTIVITY_GROUP)


def _check_emg(session: ActionSenseSession, arm: str) -> tuple[tuple[float, float], list[str]]:
    """The arm's EMG time span once its length and values are checked, and a warning about NaN values."""
    emg, field = session.emg(arm), f"{EMG_GROUPS[arm]}/data"
    span = float(emg.time_s[-1] - emg.time_s[0]) if len(emg) else 0.0
    if len(emg) < 2 or span < MIN_EMG_SECONDS:
        raise SessionFormatError(session.path, f"the {arm} arm's EMG holds {len(emg)} samples over {span:.3g} s: "
                                 f"too short to use (at least {MIN_EMG_SECONDS:g} s)", field)
    values = np.asarray(emg.data, dtype=np.float64)  # an int32 minimum has no int32 magnitude
    finite = np.isfinite(values)
    dead = np.flatnonzero(~finite.any(axis=0))
    if len(dead):
        raise SessionFormatError(session.path, f"the {arm} arm's EMG channel {int(dead[0]) + 1} has no finite "
                                 "value (NaN or infinite throughout)", field)
    peak = float(np.abs(np.where(finite, values, 0)).max())
    if peak > MAX_EMG_MAGNITUDE:
        raise SessionFormatError(session.path, f"the {arm} arm's EMG reaches {peak:.3g}, beyond any EMG device's "
                                 f"range (at most {MAX_EMG_MAGNITUDE:g})", field)
    bad = int(finite.size - finite.sum())
    said = [f"{bad} of the {arm} arm's {finite.size} EMG values are not finite (each is held at the channel's last "
            "finite value)"] if bad else []
    return (float(emg.time_s[0]), float(emg.time_s[-1])), said


def _placement(session: ActionSenseSession, action: Action, arm: str, span: tuple[float, float]) -> list[str]:
    """An action outside its arm's EMG is refused; one partly outside it is a warning."""
    inside = min(action.stop_s, span[1]) - max(action.start_s, span[0])
    where = f"action {action.index + 1} ('{action.label}', {action.start_s - span[0]:+.1f} s to " \
            f"{action.stop_s - span[0]:+.1f} s from the {arm} arm's EMG start, which lasts {span[1] - span[0]:.1f} s)"
    if inside <= 0:
        raise SessionFormatError(session.path, f"{where} lies outside the EMG: a label time or the EMG's clock is "
                                 "wrong", ACTIVITY_GROUP)
    outside = action.duration_s - inside
    if outside > OUTSIDE_EMG_WARN_S:
        return [f"{outside:.1f} s of {where} are outside the EMG (no EMG there)"]
    return []
