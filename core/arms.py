"""Which armbands a set-up wears, and where each arm's channels sit: one place decides it for every layer.

A person wears one Myo armband (on the left or the right forearm) or two. The *arm layout* is the tuple of
the arms worn, always in the order of :data:`~myosight.constants.ARMS` (left before right): ``("right",)``,
``("left",)`` or ``("left", "right")``. It is a property of the data (the arms a session recorded) and of a
model bundle (the arms its sEMG CNN reads); everything between (spectrograms, normalisation statistics, live
buffers, result messages) takes its channels from the layout, 8 per arm, in layout order. Nothing fills an
arm that is not worn with zeros unless the user asked for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from myosight.constants import ARMS, CHANNELS_PER_ARM
from myosight.errors import ConfigError

#: The layout of a two-armband set-up (the demo's, and ActionSense's).
BOTH_ARMS: tuple[str, ...] = ARMS
#: What `--arms` accepts besides the arm names themselves.
ARM_CHOICES = ("left", "right", "both")


def arm_layout(arms: Iterable[str], *, what: str = "arms") -> tuple[str, ...]:
    """The canonical layout of some arm names (ConfigError for an unknown name, a repeat or none at all)."""
    names = [str(arm).strip().lower() for arm in arms]
    unknown = [name for name in names if name not in ARMS]
    if unknown:
        raise ConfigError(f"{what}: {', '.join(map(repr, unknown))} is not an arm; use left, right or both")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what}: an arm is named twice ({', '.join(names)})")
    if not names:
        raise ConfigError(f"{what}: no arm given")
    return tuple(arm for arm in ARMS if arm in names)


def parse_arms(text: str) -> tuple[str, ...]:
    """`--arms` as typed: "left", "right", "both", or "left,right"."""
    text = text.strip().lower()
    if text == "both":
        return BOTH_ARMS
    return arm_layout((part for part in text.split(",") if part.strip()), what=f"--arms {text!r}")


def emg_channels(arms: Iterable[str]) -> int:
    """sEMG channels of a layout: 8 per armband."""
    return CHANNELS_PER_ARM * len(tuple(arms))


def arm_columns(arms: tuple[str, ...], arm: str) -> slice:
    """The columns of one arm's channels in a layout's channel order."""
    if arm not in arms:
        raise ConfigError(f"the {arm} arm is not part of the layout {describe_arms(arms)}")
    index = arms.index(arm)
    return slice(index * CHANNELS_PER_ARM, (index + 1) * CHANNELS_PER_ARM)


def describe_arms(arms: Iterable[str]) -> str:
    """'the right arm', 'the left arm' or 'both arms', for messages."""
    arms = tuple(arms)
    if tuple(arms) == BOTH_ARMS:
        return "both arms"
    return " and ".join(f"the {arm} arm" for arm in arms) or "no arm"


def arms_option(text: str) -> tuple[str, ...]:
    """An argparse type for `--arms`: left, right, both or left,right."""
    import argparse

    try:
        return parse_arms(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(f"expected left, right or both, got {text[:40]!r}") from error
