"""The 20 ActionSense kitchen activities and the older spellings found in early sessions."""

from __future__ import annotations

ACTIVITIES: tuple[str, ...] = (
    "Get/replace items from refrigerator/cabinets/drawers",
    "Clear cutting board",
    "Peel a cucumber",
    "Slice a cucumber",
    "Peel a potato",
    "Slice a potato",
    "Slice bread",
    "Spread almond butter on a bread slice",
    "Spread jelly on a bread slice",
    "Open/close a jar of almond butter",
    "Pour water from a pitcher into a glass",
    "Clean a plate with a sponge",
    "Clean a plate with a towel",
    "Clean a pan with a sponge",
    "Clean a pan with a towel",
    "Get items from cabinets: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
    "Set table: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
    "Stack on table: 3 each large/small plates, bowls",
    "Load dishwasher: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
    "Unload dishwasher: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
)

#: Spellings used by older sessions, mapped to the current ones.
OLD_SPELLINGS: dict[str, str] = {
    "Open a jar of almond butter": "Open/close a jar of almond butter",
    "Get items from refrigerator/cabinets/drawers": "Get/replace items from refrigerator/cabinets/drawers",
}

#: Groups of activities with the same muscle pattern: in synthetic sessions sEMG alone confuses them and
#: vision separates them.
SAME_MUSCLE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Peel a cucumber", "Peel a potato"),
    ("Slice a cucumber", "Slice a potato", "Slice bread"),
)

#: Groups of activities that look alike: in synthetic sessions they share one scene, held object and hand
#: motion, so vision alone confuses them while their muscle patterns differ (sEMG separates them). With
#: `SAME_MUSCLE_GROUPS` this gives each modality blind spots the other covers, as in real recordings.
SAME_LOOK_GROUPS: tuple[tuple[str, ...], ...] = (
    (
        "Get items from cabinets: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
        "Set table: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
        "Stack on table: 3 each large/small plates, bowls",
        "Load dishwasher: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
        "Unload dishwasher: 3 each large/small plates, bowls, mugs, glasses, sets of utensils",
    ),
)


def canonical_activity(name: str) -> str:
    """Return the current spelling of an activity name (strips whitespace, maps old spellings)."""
    name = name.strip()
    return OLD_SPELLINGS.get(name, name)


def short_name(name: str) -> str:
    """A label short enough for a plot axis: the text before any colon."""
    return canonical_activity(name).split(":")[0]
