"""Cartoon first-person kitchen frames for synthetic sessions.

The frames only need to carry the structure the recognisers must learn: a class-specific object and scene
layout (what vision separates) and two hands that move with the action's motion rhythm (the rhythm the sEMG
of the same action follows). Classes that share a muscle pattern share the hand motion exactly but show a
different object, so only vision can tell them apart; classes of a same-look group share the scene, the
object and the motion, so only sEMG can tell them apart. Rendering is plain OpenCV drawing on a small frame:
each class's static scene is drawn once per renderer and every frame is a shifted crop of it (camera shake)
plus the hands and the held object.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from myosight.data.activities import SAME_LOOK_GROUPS

BGR = tuple[int, int, int]

#: Base colours (BGR) before the per-subject lighting shift.
COLORS: dict[str, BGR] = {
    "wall": (196, 205, 214),
    "counter": (168, 180, 188),
    "counter_edge": (120, 130, 138),
    "wood": (92, 150, 201),
    "wood_dark": (50, 95, 140),
    "table": (60, 100, 150),
    "cucumber": (40, 120, 30),
    "cucumber_light": (110, 200, 120),
    "potato": (55, 105, 150),
    "potato_light": (150, 205, 230),
    "bread": (120, 185, 225),
    "crust": (40, 95, 160),
    "almond": (40, 80, 130),
    "jelly": (110, 30, 150),
    "plate": (245, 245, 245),
    "plate_rim": (200, 200, 205),
    "pan": (55, 55, 60),
    "pan_handle": (20, 20, 20),
    "steel": (170, 170, 165),
    "sink": (135, 135, 130),
    "sponge": (40, 220, 245),
    "sponge_green": (60, 160, 60),
    "towel": (60, 60, 200),
    "towel_stripe": (235, 235, 235),
    "glass": (225, 215, 200),
    "water": (210, 140, 40),
    "jar": (200, 200, 190),
    "lid": (40, 40, 170),
    "fridge": (235, 238, 240),
    "fridge_inside": (225, 230, 215),
    "cabinet": (60, 110, 165),
    "rack": (90, 90, 95),
    "bowl": (200, 150, 60),
    "mug": (70, 150, 230),
    "mat": (150, 80, 60),
    "knife": (200, 200, 200),
    "knife_handle": (30, 30, 30),
    "scrap_green": (60, 170, 90),
    "scrap_orange": (40, 130, 240),
    "bin": (50, 50, 50),
}

SKIN_TONES: tuple[BGR, ...] = ((150, 180, 225), (120, 160, 210), (95, 130, 185), (70, 100, 150))


@dataclass(frozen=True)
class SubjectLook:
    """Per-subject rendering differences: lighting, skin tone and how much the head moves."""

    gain: tuple[float, float, float]
    offset: float
    skin: BGR
    shake_px: float
    shake_freqs: tuple[float, float, float, float]
    hand_shift: tuple[float, float]


def subject_look(subject: str) -> SubjectLook:
    """Derive a subject's look from the subject name only, so every session of a subject looks alike."""
    rng = np.random.default_rng(zlib.crc32(f"look:{subject}".encode()))
    gb, gg, gr = (float(g) for g in rng.uniform(0.88, 1.12, 3))
    f0, f1, f2, f3 = (float(f) for f in rng.uniform(0.3, 1.7, 4))
    return SubjectLook(
        gain=(gb, gg, gr),
        offset=float(rng.uniform(-12, 12)),
        skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        shake_px=float(rng.uniform(1.0, 2.5)),
        shake_freqs=(f0, f1, f2, f3),
        hand_shift=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))),
    )


# -- hand motion ------------------------------------------------------------------------------------------

#: Rest positions of the hands (normalised x, y) and where each forearm enters the frame.
LEFT_HAND = (0.30, 0.72)
RIGHT_HAND = (0.68, 0.72)
LEFT_ELBOW = (0.12, 1.15)
RIGHT_ELBOW = (0.88, 1.15)


def hand_offsets(motion: str, theta: float) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Hand displacements (normalised) and the held object's tilt (degrees) at cycle phase `theta`.

    `theta` is the same cycle phase that times the sEMG bursts of the action, so the visible motion and
    the muscle activity share one rhythm (frequency and phase); `c` rises from 0 to 1 and back per cycle.
    """
    c = 0.5 * (1.0 - math.cos(theta))
    s = math.sin(theta)
    co = math.cos(theta)
    table: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
        "reach": ((0.0, -0.03 * c), (0.06 * c, -0.42 * c), 0.0),
        "sweep": ((0.0, 0.0), (0.15 - 0.32 * c, -0.02 * s), 0.0),
        "stroke": ((0.01 * s, 0.0), (-0.16 * c, 0.10 * c), -20.0 * c),
        "chop": ((0.0, 0.005 * s), (0.0, 0.11 * c - 0.05), 0.0),
        "spread": ((0.0, 0.0), (0.18 * s, 0.02 * c), 15.0 * s),
        "dab": ((0.0, 0.0), (0.07 * co, 0.06 * s), 30.0 * s),
        "twist": ((0.0, 0.0), (0.035 * co - 0.1, 0.035 * s - 0.08), 90.0 * s),
        "tilt": ((0.0, 0.0), (-0.08 * c, -0.07 * c), -70.0 * c),
        "circle": ((0.0, 0.0), (0.10 * co - 0.08, 0.07 * s), 0.0),
        "scrub": ((0.0, 0.0), (0.08 * s - 0.08, 0.02 * c), 10.0 * s),
        "wipe": ((0.0, 0.0), (0.13 * co - 0.1, 0.12 * s), 25.0 * s),
        "place": ((-0.10 * s, 0.0), (0.28 * s, -0.10 * c), 0.0),
        "lift": ((0.0, 0.0), (-0.04 * c, -0.25 * c), 0.0),
        "lower": ((0.0, -0.02 * c), (-0.03 * c, 0.20 * c - 0.12), 0.0),
        "lift_out": ((0.0, 0.0), (0.10 * c, -0.32 * c + 0.05), 0.0),
        "idle": ((0.01 * s, 0.005 * co), (-0.01 * s, 0.005 * co), 0.0),
    }
    return table.get(motion, table["idle"])


MOTIONS: tuple[str, ...] = (
    "reach", "sweep", "stroke", "chop", "spread", "dab", "twist", "tilt", "circle", "scrub", "wipe",
    "place", "lift", "lower", "lift_out", "idle",
)


# -- class scenes -----------------------------------------------------------------------------------------

#: A static prop: (kind, x, y, size, angle) with x, y normalised to the frame and size to its short side.
Prop = tuple[str, float, float, float, float]


@dataclass(frozen=True)
class Scene:
    """What a class shows: static props on the counter and the objects in the left and right hand."""

    props: tuple[Prop, ...]
    left: str | None = None
    right: str | None = None
    wall: str = "wall"


SCENES: dict[str, Scene] = {
    "Get/replace items from refrigerator/cabinets/drawers": Scene(
        (("fridge", 0.5, 0.0, 0.9, 0.0), ("mug", 0.2, 0.85, 0.10, 0.0)), right="box"),
    "Clear cutting board": Scene(
        (("board", 0.45, 0.62, 0.55, 0.0), ("scraps", 0.45, 0.62, 0.3, 0.0), ("bin", 0.9, 0.9, 0.18, 0.0))),
    "Peel a cucumber": Scene(
        (("board", 0.5, 0.66, 0.6, 0.0), ("peels_green", 0.55, 0.7, 0.3, 0.0),
         ("cucumber", 0.64, 0.52, 0.4, 0.0), ("cucumber", 0.12, 0.5, 0.3, 0.0)),
        left="cucumber", right="peeler"),
    "Slice a cucumber": Scene(
        (("board", 0.5, 0.66, 0.6, 0.0), ("cucumber", 0.45, 0.64, 0.55, 0.0),
         ("cucumber_slices", 0.72, 0.7, 0.2, 0.0)), right="knife"),
    "Peel a potato": Scene(
        (("board", 0.5, 0.66, 0.6, 0.0), ("peels_brown", 0.55, 0.7, 0.3, 0.0),
         ("potato", 0.66, 0.53, 0.22, 0.0), ("potato", 0.1, 0.5, 0.18, 0.0)),
        left="potato", right="peeler"),
    "Slice a potato": Scene(
        (("board", 0.5, 0.66, 0.6, 0.0), ("potato", 0.45, 0.64, 0.3, 0.0),
         ("potato_slices", 0.72, 0.7, 0.2, 0.0)), right="knife"),
    "Slice bread": Scene(
        (("board", 0.5, 0.66, 0.6, 0.0), ("loaf", 0.45, 0.63, 0.42, 0.0),
         ("bread_slices", 0.75, 0.7, 0.2, 0.0)), right="knife"),
    "Spread almond butter on a bread slice": Scene(
        (("plate", 0.5, 0.66, 0.42, 0.0), ("slice_almond", 0.5, 0.66, 0.25, 0.0),
         ("jar_almond", 0.15, 0.45, 0.2, 0.0)), right="knife"),
    "Spread jelly on a bread slice": Scene(
        (("plate", 0.5, 0.66, 0.42, 0.0), ("slice_jelly", 0.5, 0.66, 0.25, 0.0),
         ("jar_jelly", 0.85, 0.45, 0.2, 0.0)), right="knife"),
    "Open/close a jar of almond butter": Scene(
        (("jar_almond", 0.5, 0.62, 0.32, 0.0),), right="lid"),
    "Pour water from a pitcher into a glass": Scene(
        (("glass", 0.42, 0.62, 0.22, 0.0),), right="pitcher"),
    "Clean a plate with a sponge": Scene(
        (("sink", 0.5, 0.65, 0.8, 0.0), ("plate", 0.5, 0.65, 0.5, 0.0)), right="sponge"),
    "Clean a plate with a towel": Scene(
        (("plate", 0.5, 0.65, 0.5, 0.0), ("drying_rack", 0.12, 0.4, 0.25, 0.0)), right="towel"),
    "Clean a pan with a sponge": Scene(
        (("sink", 0.5, 0.65, 0.8, 0.0), ("pan", 0.45, 0.65, 0.48, 0.0)), right="sponge"),
    "Clean a pan with a towel": Scene(
        (("pan", 0.45, 0.65, 0.48, 0.0), ("drying_rack", 0.88, 0.4, 0.25, 0.0)), right="towel"),
}

#: The one scene of the dish-handling classes (a same-look group): the counter by the open dishwasher, a
#: stack of plates, a plate in hand. Only the muscles tell getting, setting, stacking, loading and
#: unloading apart in synthetic video.
DISH_SCENE = Scene(
    (("cabinet", 0.5, 0.0, 0.5, 0.0), ("rack", 0.5, 0.78, 0.9, 0.0), ("rack_plates", 0.42, 0.78, 0.3, 0.0),
     ("plate_stack", 0.14, 0.62, 0.2, 0.0), ("mug", 0.86, 0.62, 0.1, 0.0)),
    right="plate_small")
SCENES.update({label: DISH_SCENE for group in SAME_LOOK_GROUPS for label in group})

NEUTRAL_SCENE = Scene(())


class SceneRenderer:
    """Renders BGR frames of the synthetic first-person kitchen for one subject."""

    def __init__(self, width: int, height: int, subject: str) -> None:
        self.width = int(width)
        self.height = int(height)
        self.look = subject_look(subject)
        self.margin = max(3, round(0.03 * min(self.width, self.height)))
        self.unit = float(min(self.width, self.height))
        self._layers: dict[str | None, np.ndarray] = {}
        self._colors = {name: self._shift(c) for name, c in COLORS.items()}
        self._colors["skin"] = self._shift(self.look.skin)
        b, g, r = (int(0.8 * v) for v in self.look.skin)
        self._colors["skin_dark"] = self._shift((b, g, r))
        self._draw: dict[str, Callable[[np.ndarray, tuple[int, int], float, float], None]] = {
            name[6:]: getattr(self, name) for name in dir(self) if name.startswith("_draw_")
        }

    # -- colour and geometry helpers ---------------------------------------------------------------------
    def _shift(self, color: BGR) -> BGR:
        """Apply the subject's lighting (per-channel gain and brightness offset)."""
        pairs = zip(color, self.look.gain, strict=True)
        b, g, r = (int(np.clip(v * k + self.look.offset, 0, 255)) for v, k in pairs)
        return b, g, r

    def c(self, name: str) -> BGR:
        return self._colors[name]

    def _pt(self, x: float, y: float) -> tuple[int, int]:
        """Normalised frame coordinates -> canvas pixels (the canvas has a margin for camera shake)."""
        return round(x * self.width) + self.margin, round(y * self.height) + self.margin

    def _len(self, size: float) -> int:
        return max(1, round(size * self.unit))

    # -- frames ------------------------------------------------------------------------------------------
    def shake(self, t: float) -> tuple[int, int]:
        """Small deterministic head motion (pixels) at session time `t`."""
        f = self.look.shake_freqs
        a = self.look.shake_px
        dx = a * (0.7 * math.sin(2 * math.pi * f[0] * t) + 0.3 * math.sin(2 * math.pi * f[1] * t + 1.0))
        dy = a * (0.7 * math.sin(2 * math.pi * f[2] * t + 2.0) + 0.3 * math.sin(2 * math.pi * f[3] * t))
        m = self.margin
        return int(np.clip(round(dx), -m, m)), int(np.clip(round(dy), -m, m))

    def render(self, label: str | None, motion: str, theta: float, t: float) -> np.ndarray:
        """One BGR frame: `label` (None = rest) picks the scene, `motion` and `theta` place the hands."""
        scene = SCENES.get(label, NEUTRAL_SCENE) if label is not None else NEUTRAL_SCENE
        layer = self._layer(label if label in SCENES else None)
        dx, dy = self.shake(t)
        m = self.margin
        canvas = layer.copy()
        self._draw_hands(canvas, scene, motion if label is not None else "idle", theta)
        return np.ascontiguousarray(canvas[m + dy : m + dy + self.height, m + dx : m + dx + self.width])

    def _layer(self, label: str | None) -> np.ndarray:
        if label not in self._layers:
            scene = SCENES[label] if label is not None else NEUTRAL_SCENE
            self._layers[label] = self._static(scene)
        return self._layers[label]

    def _static(self, scene: Scene) -> np.ndarray:
        h, w, m = self.height, self.width, self.margin
        canvas = np.empty((h + 2 * m, w + 2 * m, 3), np.uint8)
        top = m + round(0.3 * h)
        canvas[:top] = self.c(scene.wall)
        canvas[top:] = self.c("counter")
        cv2.line(canvas, (0, top), (canvas.shape[1], top), self.c("counter_edge"), max(1, self._len(0.012)))
        # lighting falls off towards one side of the frame
        ramp = np.linspace(1.0, 0.82, canvas.shape[1], dtype=np.float32)
        if self.look.gain[0] > 1.0:
            ramp = ramp[::-1]
        canvas = (canvas * ramp[None, :, None]).astype(np.uint8)
        for kind, x, y, size, angle in scene.props:
            self._draw[kind](canvas, self._pt(x, y), size, angle)
        return canvas

    def _draw_hands(self, canvas: np.ndarray, scene: Scene, motion: str, theta: float) -> None:
        (ldx, ldy), (rdx, rdy), tilt = hand_offsets(motion, theta)
        sx, sy = self.look.hand_shift
        rest = 0.12 if motion == "idle" else 0.0
        left = self._pt(LEFT_HAND[0] + ldx + sx, LEFT_HAND[1] + ldy + sy + rest)
        right = self._pt(RIGHT_HAND[0] + rdx + sx, RIGHT_HAND[1] + rdy + sy + rest)
        if scene.left:
            self._draw[scene.left](canvas, (left[0] + self._len(0.05), left[1] - self._len(0.04)), 0.0, tilt)
        for hand, elbow in ((left, LEFT_ELBOW), (right, RIGHT_ELBOW)):
            cv2.line(canvas, self._pt(*elbow), hand, self.c("skin_dark"), self._len(0.11))
            cv2.ellipse(canvas, hand, (self._len(0.065), self._len(0.05)), 0, 0, 360, self.c("skin"), -1)
            cv2.circle(canvas, (hand[0], hand[1] - self._len(0.045)), self._len(0.025), self.c("skin"), -1)
        if scene.right:
            grip = (right[0] - self._len(0.03), right[1] - self._len(0.05))
            self._draw[scene.right](canvas, grip, 0.0, tilt)

    # -- props (each: canvas, centre in pixels, size as a fraction of the short side, angle in degrees) ------
    def _draw_board(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size) // 2, self._len(size * 0.6) // 2
        cv2.rectangle(img, (p[0] - w, p[1] - h), (p[0] + w, p[1] + h), self.c("wood"), -1)
        cv2.rectangle(img, (p[0] - w, p[1] - h), (p[0] + w, p[1] + h), self.c("wood_dark"), max(1, w // 25))

    def _draw_table(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        top = p[1] - self._len(0.2)
        img[top:] = self.c("table")
        for i in range(1, 4):
            y = top + i * (img.shape[0] - top) // 4
            cv2.line(img, (0, y), (img.shape[1], y), self.c("wood_dark"), 1)

    def _draw_mats(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w = self._len(size) // 3
        for i in (-1, 0, 1):
            c = (p[0] + i * w, p[1])
            cv2.rectangle(img, (c[0] - w // 2 + 2, c[1] - w // 3), (c[0] + w // 2 - 2, c[1] + w // 3),
                          self.c("mat"), -1)
            if i < 1:
                self._draw_plate(img, c, size * 0.22, 0.0)

    def _draw_cucumber(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        length = self._len(size or 0.5)
        axes = (length // 2, max(2, length // 8))
        cv2.ellipse(img, p, axes, angle - 15, 0, 360, self.c("cucumber"), -1)
        cv2.ellipse(img, p, (axes[0] * 3 // 4, max(1, axes[1] // 3)), angle - 15, 0, 360,
                    self.c("cucumber_light"), -1)

    def _draw_cucumber_slices(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        r = max(2, self._len(size) // 5)
        for i in range(3):
            c = (p[0] + (i - 1) * r * 2 // 1, p[1] + (i % 2) * r)
            cv2.circle(img, c, r, self.c("cucumber"), -1)
            cv2.circle(img, c, max(1, r * 3 // 4), self.c("cucumber_light"), -1)

    def _draw_potato(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        r = self._len(size or 0.26) // 2
        cv2.ellipse(img, p, (r, r * 4 // 5), angle, 0, 360, self.c("potato"), -1)
        for ox, oy in ((-r // 3, -r // 4), (r // 3, r // 5), (0, r // 2)):
            cv2.circle(img, (p[0] + ox, p[1] + oy), max(1, r // 8), self.c("crust"), -1)

    def _draw_potato_slices(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        r = max(2, self._len(size) // 5)
        for i in range(3):
            c = (p[0] + (i - 1) * r * 2, p[1] + (i % 2) * r)
            cv2.circle(img, c, r, self.c("potato"), -1)
            cv2.circle(img, c, max(1, r * 4 // 5), self.c("potato_light"), -1)

    def _draw_loaf(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size) // 2, self._len(size * 0.45) // 2
        r = max(2, h // 2)
        cv2.rectangle(img, (p[0] - w, p[1] - h), (p[0] + w, p[1] + h), self.c("crust"), -1)
        cv2.rectangle(img, (p[0] - w + r, p[1] - h + r // 2), (p[0] + w - r, p[1] + h - r // 2),
                      self.c("bread"), -1)
        for x in range(p[0] - w + r, p[0] + w - r, max(3, w // 3)):
            cv2.line(img, (x, p[1] - h), (x + r // 2, p[1] - h + r), self.c("crust"), 1)

    def _draw_bread_slices(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = max(3, self._len(size) // 3)
        for i in range(2):
            c = (p[0] + i * s // 2, p[1] + i * s // 3)
            cv2.rectangle(img, (c[0] - s, c[1] - s), (c[0] + s, c[1] + s), self.c("crust"), -1)
            inner = ((c[0] - s + 2, c[1] - s + 2), (c[0] + s - 2, c[1] + s - 2))
            cv2.rectangle(img, *inner, self.c("bread"), -1)

    def _slice_with(self, img: np.ndarray, p: tuple[int, int], size: float, spread: str) -> None:
        s = self._len(size) // 2
        cv2.rectangle(img, (p[0] - s, p[1] - s), (p[0] + s, p[1] + s), self.c("crust"), -1)
        cv2.rectangle(img, (p[0] - s + 2, p[1] - s + 2), (p[0] + s - 2, p[1] + s - 2), self.c("bread"), -1)
        cv2.ellipse(img, p, (s * 3 // 4, s * 2 // 3), 0, 0, 360, self.c(spread), -1)

    def _draw_slice_almond(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        self._slice_with(img, p, size, "almond")

    def _draw_slice_jelly(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        self._slice_with(img, p, size, "jelly")

    def _jar(self, img: np.ndarray, p: tuple[int, int], size: float, content: str, lid: bool) -> None:
        w, h = self._len(size * 0.6) // 2, self._len(size) // 2
        cv2.rectangle(img, (p[0] - w, p[1] - h), (p[0] + w, p[1] + h), self.c("jar"), -1)
        cv2.rectangle(img, (p[0] - w + 2, p[1] - h // 3), (p[0] + w - 2, p[1] + h - 2), self.c(content), -1)
        if lid:
            cv2.rectangle(img, (p[0] - w, p[1] - h - h // 4), (p[0] + w, p[1] - h), self.c("lid"), -1)

    def _draw_jar_almond(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        self._jar(img, p, size, "almond", lid=False)

    def _draw_jar_jelly(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        self._jar(img, p, size, "jelly", lid=False)

    def _draw_lid(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        r = self._len(0.11)
        cv2.ellipse(img, (p[0], p[1] + r), (r, r // 2), angle, 0, 360, self.c("lid"), -1)
        cv2.ellipse(img, (p[0], p[1] + r), (r, r // 2), angle, 0, 180, self.c("crust"), max(1, r // 6))

    def _draw_glass(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size * 0.5) // 2, self._len(size) // 2
        pts = np.array([[p[0] - w, p[1] - h], [p[0] + w, p[1] - h], [p[0] + w * 3 // 4, p[1] + h],
                        [p[0] - w * 3 // 4, p[1] + h]], np.int32)
        cv2.fillPoly(img, [pts], self.c("glass"))
        cv2.rectangle(img, (p[0] - w * 3 // 4, p[1]), (p[0] + w * 3 // 4, p[1] + h - 1), self.c("water"), -1)
        cv2.polylines(img, [pts], True, self.c("steel"), 1)

    def _draw_pitcher(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(0.09), self._len(0.13)
        box = cv2.boxPoints(((p[0], p[1] - h // 2), (2 * w, 2 * h), angle))
        cv2.fillPoly(img, [box.astype(np.int32)], self.c("glass"))
        water = cv2.boxPoints(((p[0], p[1] - h // 3), (2 * w - 4, h), angle))
        cv2.fillPoly(img, [water.astype(np.int32)], self.c("water"))
        cv2.polylines(img, [box.astype(np.int32)], True, self.c("steel"), 1)
        if angle < -40:  # tilted far enough: water runs into the glass
            spout = box[np.argmin(box[:, 0] + box[:, 1])].astype(int)
            cv2.line(img, tuple(spout), (spout[0] - 2, spout[1] + self._len(0.15)), self.c("water"),
                     max(2, self._len(0.02)))

    def _draw_plate(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        r = self._len(size) // 2
        cv2.circle(img, p, r, self.c("plate_rim"), -1)
        cv2.circle(img, p, max(1, r * 3 // 4), self.c("plate"), -1)

    def _draw_plate_small(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        self._draw_plate(img, (p[0] - self._len(0.04), p[1] - self._len(0.02)), 0.2, 0.0)

    def _draw_plate_stack(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size) // 2, max(2, self._len(size) // 10)
        for i in range(4):
            y = p[1] - i * h
            cv2.ellipse(img, (p[0], y), (w, h), 0, 0, 360, self.c("plate_rim"), -1)
            cv2.ellipse(img, (p[0], y - 1), (w - 2, max(1, h - 2)), 0, 0, 360, self.c("plate"), -1)

    def _draw_bowl(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        r = self._len(size or 0.15) // 2
        cv2.ellipse(img, p, (r, r * 2 // 3), 0, 0, 180, self.c("bowl"), -1)
        cv2.ellipse(img, p, (r, r // 3), 0, 0, 360, self.c("bowl"), -1)

    def _draw_mug(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = self._len(size or 0.1) // 2
        cv2.rectangle(img, (p[0] - s, p[1] - s), (p[0] + s, p[1] + s), self.c("mug"), -1)
        cv2.circle(img, (p[0] + s, p[1]), max(1, s // 2), self.c("mug"), max(1, s // 4))

    def _draw_box(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = self._len(0.06)
        cv2.rectangle(img, (p[0] - s, p[1] - 2 * s), (p[0] + s, p[1] + s), self.c("scrap_orange"), -1)
        cv2.rectangle(img, (p[0] - s, p[1] - 2 * s), (p[0] + s, p[1] - s), self.c("plate"), -1)

    def _draw_pan(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        r = self._len(size) // 2
        cv2.line(img, p, (p[0] + 2 * r, p[1] + r // 3), self.c("pan_handle"), max(2, r // 5))
        cv2.circle(img, p, r, self.c("pan"), -1)
        cv2.circle(img, p, r, self.c("steel"), max(1, r // 12))

    def _draw_sink(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size) // 2, self._len(size * 0.6) // 2
        cv2.rectangle(img, (p[0] - w, p[1] - h), (p[0] + w, p[1] + h), self.c("steel"), -1)
        cv2.rectangle(img, (p[0] - w + 4, p[1] - h + 4), (p[0] + w - 4, p[1] + h - 4), self.c("sink"), -1)
        cv2.circle(img, (p[0] + w // 2, p[1] + h // 2), max(2, w // 12), self.c("pan_handle"), -1)

    def _draw_drying_rack(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = self._len(size) // 2
        cv2.rectangle(img, (p[0] - s, p[1] - s // 2), (p[0] + s, p[1] + s // 2), self.c("steel"), 1)
        for x in range(p[0] - s, p[0] + s, max(2, s // 4)):
            cv2.line(img, (x, p[1] - s // 2), (x, p[1] + s // 2), self.c("steel"), 1)

    def _draw_sponge(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(0.08), self._len(0.05)
        box = cv2.boxPoints(((p[0], p[1]), (2 * w, 2 * h), angle)).astype(np.int32)
        cv2.fillPoly(img, [box], self.c("sponge"))
        top = cv2.boxPoints(((p[0], p[1] - h * 2 // 3), (2 * w, h * 2 // 3), angle)).astype(np.int32)
        cv2.fillPoly(img, [top], self.c("sponge_green"))

    def _draw_towel(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(0.12), self._len(0.08)
        box = cv2.boxPoints(((p[0], p[1]), (2 * w, 2 * h), angle)).astype(np.int32)
        cv2.fillPoly(img, [box], self.c("towel_stripe"))
        for k in (-2, 0, 2):
            stripe = cv2.boxPoints(((p[0] + k * w // 3, p[1]), (w // 4, 2 * h), angle)).astype(np.int32)
            cv2.fillPoly(img, [stripe], self.c("towel"))

    def _draw_knife(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        L = self._len(0.16)
        cv2.line(img, p, (p[0] - L, p[1] + L // 3), self.c("knife"), max(2, L // 8))
        cv2.line(img, p, (p[0] + L // 2, p[1] - L // 6), self.c("knife_handle"), max(2, L // 6))

    def _draw_peeler(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        L = self._len(0.08)
        cv2.line(img, p, (p[0] - L, p[1] + L // 2), self.c("knife"), max(2, L // 4))
        cv2.line(img, p, (p[0] + L, p[1] - L // 3), self.c("scrap_orange"), max(2, L // 3))

    def _draw_peels_green(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = self._len(size) // 2
        for i in range(4):
            a = (p[0] - s + i * s // 2, p[1] + (i % 2) * s // 4)
            cv2.ellipse(img, a, (max(2, s // 4), max(1, s // 16)), 30 * i, 0, 360, self.c("cucumber"), -1)

    def _draw_peels_brown(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = self._len(size) // 2
        for i in range(5):
            a = (p[0] - s + i * s // 2, p[1] + (i % 2) * s // 5)
            cv2.circle(img, a, max(2, s // 8), self.c("potato"), -1)

    def _draw_scraps(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = self._len(size) // 2
        for i in range(6):
            a = (p[0] - s + (i * 37) % (2 * s), p[1] - s // 3 + (i * 23) % max(1, s * 2 // 3))
            color = self.c("scrap_green") if i % 2 else self.c("scrap_orange")
            cv2.circle(img, a, max(2, s // 9), color, -1)

    def _draw_bin(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        cv2.circle(img, p, self._len(size) // 2, self.c("bin"), -1)

    def _draw_fridge(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size) // 2, self._len(0.5)
        x0, x1 = p[0] - w, p[0] + w
        cv2.rectangle(img, (x0, 0), (x1, p[1] + h), self.c("fridge"), -1)
        cv2.rectangle(img, (x0 + 6, 0), (x1 - 6, p[1] + h - 6), self.c("fridge_inside"), -1)
        colors = ("scrap_orange", "cucumber", "mug", "jelly", "bowl")
        for row in range(2):
            y = p[1] + (row + 1) * h // 3
            cv2.line(img, (x0 + 6, y), (x1 - 6, y), self.c("steel"), 2)
            for i in range(5):
                x = x0 + 12 + i * (x1 - x0 - 24) // 5
                cv2.rectangle(img, (x, y - h // 5), (x + w // 6, y - 1), self.c(colors[(i + row) % 5]), -1)

    def _draw_cabinet(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size) // 2, self._len(0.42)
        x0, x1 = p[0] - w, p[0] + w
        cv2.rectangle(img, (x0, 0), (x1, p[1] + h), self.c("cabinet"), -1)
        cv2.rectangle(img, (x0 + 5, 0), (x1 - 5, p[1] + h - 5), self.c("wood"), -1)
        y = p[1] + h // 2
        cv2.line(img, (x0 + 5, y), (x1 - 5, y), self.c("cabinet"), 3)
        for i in range(4):
            x = x0 + 10 + i * (x1 - x0 - 20) // 4
            cv2.ellipse(img, (x + w // 8, y - 2), (w // 9, 3), 0, 0, 360, self.c("plate"), -1)
            cv2.rectangle(img, (x + 2, p[1] + h - 5 - h // 5), (x + w // 5, p[1] + h - 6), self.c("mug"), -1)

    def _draw_rack(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w, h = self._len(size) // 2, self._len(size * 0.45) // 2
        cv2.rectangle(img, (p[0] - w, p[1] - h), (p[0] + w, p[1] + h), self.c("pan"), -1)
        step = max(3, w // 8)
        for x in range(p[0] - w, p[0] + w + 1, step):
            cv2.line(img, (x, p[1] - h), (x, p[1] + h), self.c("rack"), 1)
        for y in range(p[1] - h, p[1] + h + 1, step):
            cv2.line(img, (p[0] - w, y), (p[0] + w, y), self.c("rack"), 1)

    def _draw_rack_plates(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        w = self._len(size) // 2
        h = self._len(0.14)
        for x in range(p[0] - w, p[0] + w + 1, max(4, self._len(0.05))):
            cv2.ellipse(img, (x, p[1]), (max(2, h // 8), h), 0, 0, 360, self.c("plate"), -1)

    def _draw_dirty_dishes(self, img: np.ndarray, p: tuple[int, int], size: float, angle: float) -> None:
        s = self._len(size) // 2
        self._draw_plate(img, (p[0] - s, p[1]), size * 0.6, 0.0)
        self._draw_bowl(img, (p[0] + s // 2, p[1]), size * 0.5, 0.0)
        cv2.circle(img, (p[0] - s, p[1]), max(2, s // 5), self.c("jelly"), -1)
