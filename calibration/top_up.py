"""A calibrated person's next session: a short top-up instead of a whole new calibration.

Put the armband on again the next day and it sits a little elsewhere: the electrodes see other muscle fibres
and the model that was right yesterday errs (electrode shift). A top-up records one repetition of each of the
calibration's activities and adapts the same base model again, on yesterday's recordings and today's
together: the normalisation then spans both placements and the model learns both, in a fraction of the
time a new calibration takes.

Everything the top-up repeats comes from the calibrated bundle's provenance: its base model, its recordings,
its activities, arms, decision window and whether it read video. The new bundle replaces the old one in its
folder (the old one is kept in `history/`), so `myosight run --model DIR/bundle.safetensors` goes on working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from myosight.calibration.adapt import AdaptOptions
from myosight.calibration.plan import CalibrationPlan
from myosight.errors import ConfigError
from myosight.models.bundle_header import read_bundle_metadata
from myosight.paths import sha256_file

#: Where a live top-up's own recordings go, inside the calibration's folder.
TOP_UPS = "top-ups"


@dataclass(frozen=True)
class TopUp:
    """A calibrated bundle and what its calibration was made of."""

    bundle: Path
    base: Path
    earlier: tuple[Path, ...]  # the recordings the bundle was adapted on
    classes: tuple[str, ...]
    arms: tuple[str, ...]
    window_s: float
    emg_only: bool
    fine_tune: str
    subject: str | None
    input_size: int | None

    @property
    def folder(self) -> Path:
        return self.bundle.parent

    def plan(self, seconds: float, rest_s: float, lead_in_s: float) -> CalibrationPlan:
        """One repetition of every activity."""
        return CalibrationPlan(self.classes, repetitions=1, seconds=seconds, rest_s=rest_s, lead_in_s=lead_in_s)

    def recording_folder(self) -> Path:
        """A new folder for a live top-up's recordings (and its live features), under the calibration's (never
        one an earlier top-up made: two started in the same second get two folders)."""
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        folder, count = self.folder / TOP_UPS / stamp, 1
        while folder.exists():
            count += 1
            folder = self.folder / TOP_UPS / f"{stamp}-{count}"
        return folder

    def feature_folders(self) -> list[Path]:
        """Where the live RGB features of the calibration and of its earlier top-ups are."""
        return [self.folder, *sorted(p for p in (self.folder / TOP_UPS).glob("*") if p.is_dir())]

    def options(self, base: Path | None = None) -> AdaptOptions:
        """The adaptation of the calibration, repeated into its folder."""
        return AdaptOptions(base=base or self.base, out_dir=self.folder, classes=list(self.classes),
                            emg_only=self.emg_only, input_size=self.input_size, fine_tune=self.fine_tune,
                            subject=self.subject, window=self.window_s, arms=self.arms)


def read_top_up(bundle: str | Path, base: Path | None = None) -> TopUp:
    """What a top-up of `bundle` repeats; a ConfigError in one line when it is not a calibrated bundle, or when
    its base model or recordings are gone or changed (`base` names a moved base model)."""
    bundle = Path(bundle)
    meta = read_bundle_metadata(bundle)
    provenance = meta.get("provenance")
    if not isinstance(provenance, dict) or "calibrated_from" not in provenance:
        raise ConfigError(f"{bundle}: not a calibrated model (myosight calibrate makes one; --update tops one up)")
    base_path = Path(base) if base is not None else Path(provenance["calibrated_from"])
    if not base_path.is_file():
        raise ConfigError(f"{bundle}: its base model {base_path} is gone; name it with --base")
    if base is None and provenance.get("base_sha256") and sha256_file(base_path) != provenance["base_sha256"]:
        raise ConfigError(f"{bundle}: its base model {base_path} has changed since; name the one it was calibrated "
                          "from with --base")
    earlier = tuple(Path(p) for p in provenance.get("sessions", []))
    missing = [p for p in earlier if not p.is_file()]
    if not earlier or missing:
        raise ConfigError(f"{bundle}: its recording {missing[0] if missing else '(none listed)'} is gone; a top-up "
                          "adapts on the earlier recordings and the new one together")
    geometry = meta["clip_geometry"]
    return TopUp(bundle=bundle, base=base_path, earlier=earlier, classes=tuple(meta["classes"]),
                 arms=tuple(meta.get("arms", ("left", "right"))),
                 window_s=float(provenance.get("window_s", geometry["sample_seconds"])),
                 emg_only=bool(provenance.get("emg_only", "rgb" not in meta.get("modalities", []))),
                 fine_tune=str(provenance.get("fine_tune", "auto")), subject=provenance.get("subject"),
                 input_size=provenance.get("input_size", geometry.get("input_size")))

