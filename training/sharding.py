"""Data-parallel RGB feature extraction: `torchrun --nproc-per-node N -m myosight features rgb DIR`.

Each rank reads RANK / WORLD_SIZE (set by torchrun, or by hand), takes whole videos, balanced by sample
count (a video is decoded front to back by one rank only), and extracts them into a shard of its own:
`DIR/.rgb_shards/rank<R>of<N>/`, a dataset directory holding just its samples, so the single-process
extractor runs there unchanged and a rank that dies resumes where it stopped when the command is run
again. When every rank is done, rank 0 merges the shards into the normal split files (under torchrun the
ranks meet at a barrier of torch.distributed's gloo backend); without a rendezvous, `myosight features
merge DIR` does it. Features are matched by sample uid, so the merge does not depend on the split order.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from myosight.errors import ConfigError, MyosightError
from myosight.training.feature_store import (
    DATASET_FILE,
    SPLITS,
    read_manifest,
    read_text,
    write_array,
    write_manifest,
)

SHARD_DIR = ".rgb_shards"
ARRAY = "rgb"


@dataclass(frozen=True)
class Shard:
    """This process's part of a data-parallel run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def name(self) -> str:
        return f"rank{self.rank}of{self.world_size}"


def shard_from_env(environ: Mapping[str, str] | None = None) -> Shard:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them; a single process without them."""
    environ = os.environ if environ is None else environ
    try:
        rank, world = int(environ.get("RANK", "0")), int(environ.get("WORLD_SIZE", "1"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError as error:
        raise ConfigError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({error})") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} and WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return Shard(rank, world, local)


def assign_rows(videos: np.ndarray, sessions: np.ndarray, world_size: int) -> list[np.ndarray]:
    """Rows of each rank: whole (video, session) groups, largest first to the least-loaded rank."""
    groups: dict[tuple[str, str], list[int]] = {}
    for row, key in enumerate(zip(videos.tolist(), sessions.tolist(), strict=True)):
        groups.setdefault(key, []).append(row)
    loads, owned = [0] * world_size, [list[int]() for _ in range(world_size)]
    for _key, rows in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        rank = loads.index(min(loads))
        owned[rank] += rows
        loads[rank] += len(rows)
    return [np.array(sorted(rows), dtype=np.int64) for rows in owned]


def shard_dir(data_dir: Path, shard: Shard) -> Path:
    return Path(data_dir) / SHARD_DIR / shard.name


def _rows_of_split(path: Path) -> int:
    with h5py.File(path, "r") as handle:
        return int(handle["uid"].shape[0])


def _write_subset(source: Path, target: Path, rows: np.ndarray) -> None:
    """The split's per-sample metadata (uid, label, times, video, session, ...) for `rows` only."""
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        count = src["uid"].shape[0]
        for name, node in src.items():
            if isinstance(node, h5py.Dataset) and node.shape and node.shape[0] == count:
                dst.create_dataset(name, data=node[()][rows])


def _subset_matches(target: Path, source: Path, rows: np.ndarray) -> bool:
    """True if an existing shard split holds exactly these samples (then its progress is kept)."""
    if not target.is_file():
        return False
    try:
        with h5py.File(target, "r") as dst, h5py.File(source, "r") as src:
            return np.array_equal(dst["uid"][()], src["uid"][()][rows])
    except (OSError, KeyError):
        return False


def prepare_shard(data_dir: Path, shard: Shard, done_splits: set[str]) -> Path:
    """This rank's dataset directory (made once; kept as it is on a re-run with the same samples)."""
    data_dir = Path(data_dir)
    target = shard_dir(data_dir, shard)
    target.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        source = data_dir / f"{split}.h5"
        with h5py.File(source, "r") as handle:
            videos, sessions = read_text(handle, "video"), read_text(handle, "session")
        rows = np.zeros(0, np.int64) if split in done_splits else assign_rows(videos, sessions,
                                                                              shard.world_size)[shard.rank]
        if not _subset_matches(target / f"{split}.h5", source, rows):
            for stale in target.glob(f"{split}.*"):
                stale.unlink()
            _write_subset(source, target / f"{split}.h5", rows)
    if not (target / DATASET_FILE).is_file():
        manifest = read_manifest(data_dir)
        manifest.pop("rgb_features", None)
        manifest["shard"] = {"rank": shard.rank, "world_size": shard.world_size, "of": str(data_dir.resolve())}
        write_manifest(target, manifest)
    return target


def extract_shard(data_dir: Path, shard: Shard, *, size: int, sampling: str | None = None,
                  cache_dir: str | Path | None = None, force: bool = False, **options):
    """Extract this rank's samples into its shard (resumable); returns the extractor's RgbResult.

    `force`: extract every sample again, whatever the split files hold; their features are replaced at the merge.
    """
    from myosight.models.clips import ClipGeometry, resolve_geometry
    from myosight.models.i3d_weights import verify_weights
    from myosight.training.rgb_features import _array_settings, _mismatch, extract_rgb_features, settings_of

    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    geometry = resolve_geometry(ClipGeometry.from_dict(manifest["clip_geometry"]), size, sampling)
    wanted = settings_of(geometry, verify_weights(cache_dir)["weights_sha256"], options.get("precision", "float32"))
    done = set()
    for split in [] if force else SPLITS:
        stored = _array_settings(data_dir / f"{split}.h5")
        if stored is not None and stored != wanted:
            raise _mismatch(stored, wanted, str(data_dir / f"{split}.h5"))
        if stored == wanted:
            done.add(split)
    target = prepare_shard(data_dir, shard, done)
    return extract_rgb_features(target, size=size, sampling=sampling, cache_dir=cache_dir, force=force, **options)


def _shard_split(rank_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(uids, rgb) of one shard's split once its extraction is complete, else None."""
    with h5py.File(rank_dir / f"{split}.h5", "r") as handle:
        if f"arrays/{ARRAY}" not in handle:
            return None
        return read_text(handle, "uid"), handle[f"arrays/{ARRAY}"][()]


def merge_rgb_shards(data_dir: Path) -> dict:
    """Merge every shard's features into the split files, check each sample is covered; remove the shards.

    Every shard's features are checked (shape, dtype, finite values) before anything is written, and the shards
    are removed only once the merged split files read back as written.
    """
    data_dir = Path(data_dir)
    root = data_dir / SHARD_DIR
    ranks = sorted(p for p in root.iterdir() if (p / DATASET_FILE).is_file()) if root.is_dir() else []
    if not ranks:
        raise ConfigError(f"{data_dir}: no RGB feature shards to merge (nothing in {root})")
    manifests = {p.name: read_manifest(p) for p in ranks}
    settings = {json.dumps(m.get("rgb_features", {}).get("settings"), sort_keys=True) for m in manifests.values()
                if m.get("rgb_features", {}).get("settings")}
    if len(settings) != 1:
        raise ConfigError(f"{root}: the shards were extracted with different settings (or none has finished)")
    wanted = json.loads(settings.pop())
    merged = {split: _merge_split(data_dir / f"{split}.h5", ranks, split, wanted) for split in SPLITS}
    for split, features in merged.items():
        if features is not None:
            write_array(data_dir / f"{split}.h5", ARRAY, features, {"settings": json.dumps(wanted)})
            _verify_merged(data_dir / f"{split}.h5", features)
    first = next(m for m in manifests.values() if m.get("rgb_features", {}).get("settings") == wanted)
    manifest = read_manifest(data_dir)
    manifest["clip_geometry"], manifest["i3d_sha256"] = first["clip_geometry"], first["i3d_sha256"]
    bad = [entry for m in manifests.values() for entry in m.get("rgb_features", {}).get("bad_samples", [])]
    manifest["rgb_features"] = {"settings": wanted, "complete": True, "shards": sorted(manifests)}
    if bad:
        manifest["rgb_features"]["bad_samples"] = bad
    write_manifest(data_dir, manifest)
    shutil.rmtree(root)
    return {"shards": sorted(manifests), "splits": list(SPLITS), "bad_samples": len(bad)}


def _merge_split(path: Path, ranks: list[Path], split: str, wanted: dict) -> np.ndarray | None:
    """The split's features gathered from the shards (checked), or None when the split file already holds
    features of these settings and no shard extracted this split again."""
    from myosight.training.rgb_features import _array_settings

    parts = [(rank_dir, part) for rank_dir in ranks if (part := _shard_split(rank_dir, split)) is not None]
    if _array_settings(path) == wanted and not any(len(uids) for _, (uids, _) in parts):
        return None
    uids = _split_uids(path)
    index = {uid: row for row, uid in enumerate(uids)}
    if len(index) != len(uids):
        raise ConfigError(f"{path}: sample uids are not unique; features cannot be matched by uid")
    features, have = np.zeros((len(uids), wanted["clips_per_sample"], _feature_dim()), np.float32), np.zeros(
        len(uids), bool)
    for rank_dir, (part_uids, part_features) in parts:
        _check_shard_features(rank_dir / f"{split}.h5", part_uids, part_features, features.shape[1:], index)
        rows = np.array([index[uid] for uid in part_uids], dtype=np.int64)
        features[rows] = part_features
        have[rows] = True
    if not have.all():
        missing = int((~have).sum())
        raise ConfigError(f"{path}: {missing} of {len(uids)} samples are not extracted by any shard yet; run the "
                          "same `torchrun ... myosight features rgb` command again to finish them, then merge")
    return features


def _split_uids(path: Path) -> np.ndarray:
    try:
        with h5py.File(path, "r") as handle:
            return read_text(handle, "uid")
    except (OSError, KeyError) as error:
        raise ConfigError(f"{path}: cannot read the split file ({error})") from error


def _feature_dim() -> int:
    from myosight.models.i3d import FEATURE_DIM

    return FEATURE_DIM


def _check_shard_features(path: Path, uids: np.ndarray, features: np.ndarray, sample_shape: tuple[int, ...],
                          index: dict[str, int]) -> None:
    """A shard's features must be float32 of the sample shape, finite, and belong to samples of the split."""
    if features.dtype != np.float32 or features.shape != (len(uids), *sample_shape):
        raise ConfigError(f"{path}: RGB features are {features.dtype} of shape {features.shape}, expected float32 of "
                          f"shape {(len(uids), *sample_shape)}; extract this shard again")
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=tuple(range(1, features.ndim))).sum())
        raise ConfigError(f"{path}: RGB features of {bad} sample(s) are not finite (NaN or inf); extract this shard "
                          "again")
    unknown = [uid for uid in uids if uid not in index]
    if unknown:
        raise ConfigError(f"{path}: {len(unknown)} sample(s) are not in the dataset (first: {unknown[0]!r}); the "
                          "shard belongs to another dataset")


def _verify_merged(path: Path, features: np.ndarray) -> None:
    """Read the merged features back before the shards are removed."""
    with h5py.File(path, "r") as handle:
        stored = handle[f"arrays/{ARRAY}"][()]
    if not np.array_equal(stored, features):
        raise ConfigError(f"{path}: the merged RGB features do not read back as written; the shards are kept")


def finish_sharded_run(data_dir: Path, shard: Shard, timeout_hours: float = 24.0) -> bool:
    """Under torchrun: wait for every rank (gloo barrier), rank 0 merges; returns True where this rank merged.

    Without a rendezvous (RANK / WORLD_SIZE set by hand), nothing is merged here: `myosight features merge`.
    """
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        return False
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world_size,
                            timeout=datetime.timedelta(hours=timeout_hours))
    try:
        dist.barrier()  # every rank has finished its shard
        error: MyosightError | None = None
        if shard.rank == 0:
            try:
                merge_rgb_shards(data_dir)
            except MyosightError as failure:
                error = failure  # raised after the barrier, so the other ranks do not wait for ever
        dist.barrier()
        if error is not None:
            raise error
        return shard.rank == 0
    finally:
        dist.destroy_process_group()
