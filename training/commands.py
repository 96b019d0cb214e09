"""CLI: `myosight emg ...` (the sEMG pipeline over recorded sessions)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    emg = subparsers.add_parser("emg", help="run the sEMG pipeline over recorded sessions")
    emg_commands = emg.add_subparsers(dest="emg_command", metavar="ACTION")
    spec = emg_commands.add_parser(
        "spectrograms",
        help="compute the per-clip Mel spectrograms of a session's sub-actions and plot one",
        description="Run the offline sEMG pass (resampling, RMS, min-max, low-pass, Mel spectrograms) "
        "over a session, cut its actions into 5-second sub-actions, report the stream health, and save "
        "the 16 Mel spectrograms of one sub-action as a PNG (the paper's fig. 3, both arms).",
    )
    spec.add_argument("session", type=Path, help="session .hdf5 file")
    spec.add_argument("--out", type=Path, default=Path("emg_spectrograms.png"), help="PNG to write")
    spec.add_argument("--sample", type=int, default=0, help="which sub-action to plot (default 0)")
    spec.add_argument(
        "--normalisation", choices=("session", "full-scale"), default="session",
        help="min-max statistics: fitted on this session's RMS envelopes (an offline inspection) or the "
        "Myo's full int8 scale (no data needed). Models use the statistics stored in their bundle.",
    )
    spec.add_argument("--allow-missing-arm", action="store_true", help="use a one-arm session (other arm zeros)")
    spec.add_argument("--save", type=Path, help="also save all spectrograms and labels to this .npz")
    spec.set_defaults(handler=run_spectrograms)
    emg.set_defaults(handler=lambda args: emg.print_help() or 2)


def run_spectrograms(args: argparse.Namespace) -> int:
    import numpy as np

    from myosight.data.actionsense import ActionSenseSession
    from myosight.data.subactions import cut_subactions
    from myosight.errors import ConfigError
    from myosight.models.clips import ClipGeometry
    from myosight.models.emg_pipeline import EmgNormalisation, EmgPipelineConfig
    from myosight.training.emg_spectrograms import (
        fit_session_normalisation,
        session_tracks,
        subaction_spectrograms,
    )
    from myosight.training.figures import plot_emg_spectrograms

    config, geometry = EmgPipelineConfig(), ClipGeometry()
    with ActionSenseSession(args.session) as session:
        if args.normalisation == "session":
            normalisation = fit_session_normalisation([session], config)
        else:
            normalisation = EmgNormalisation.full_scale()
        tracks = session_tracks(session, config, normalisation, allow_missing_arm=args.allow_missing_arm)
        subactions = cut_subactions(session.activities(), args.session.stem, session.subject,
                                    geometry.sample_seconds)
    for arm, health in tracks.health.items():
        print(
            f"{arm}: {health.samples_in} samples, measured {health.measured_rate_hz:.1f} Hz, "
            f"{len(health.gaps)} gaps, {health.repeated_timestamps} repeated timestamps spread, "
            f"{health.nonfinite_values} non-finite values held, stuck channels {list(health.stuck_channels)}"
        )
    spectrograms, coverage = subaction_spectrograms(tracks, subactions, geometry, config)
    print(f"{len(subactions)} sub-actions -> spectrograms {spectrograms.shape}")
    if not subactions:
        raise ConfigError(f"{args.session}: no labelled actions to cut into sub-actions")
    if not 0 <= args.sample < len(subactions):
        raise ConfigError(f"--sample {args.sample} is out of range (0..{len(subactions) - 1})")
    chosen = subactions[args.sample]
    title = f"{args.session.name} - sub-action {args.sample}: {chosen.label}"
    path = plot_emg_spectrograms(spectrograms[args.sample], args.out, title, geometry.clip_seconds)
    print(f"wrote {path}")
    if args.save:
        np.savez_compressed(
            args.save, spectrograms=spectrograms, coverage=coverage,
            label=np.array([s.label for s in subactions]), uid=np.array([s.uid for s in subactions]),
        )
        print(f"wrote {args.save}")
    return 0
