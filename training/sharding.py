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
from myosight.training.feature_store import DATASET_FILE, SPLITS, read_manifest, write_array, write_manifest

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
    loads, owned = [0] * world_size, [[] for _ in range(world_size)]
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
            videos, sessions = handle["video"][()].astype(str), handle["session"][()].astype(str)
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
                  cache_dir: str | Path | None = None, **options):
    """Extract this rank's samples into its shard (resumable); returns the extractor's RgbResult."""
    from myosight.models.clips import ClipGeometry, resolve_geometry
    from myosight.models.i3d_weights import verify_weights
    from myosight.training.rgb_features import _array_settings, _mismatch, extract_rgb_features, settings_of

    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    geometry = resolve_geometry(ClipGeometry.from_dict(manifest["clip_geometry"]), size, sampling)
    wanted = settings_of(geometry, verify_weights(cache_dir)["weights_sha256"])
    done = set()
    for split in SPLITS:
        stored = _array_settings(data_dir / f"{split}.h5")
        if stored is not None and stored != wanted:
            raise _mismatch(stored, wanted, str(data_dir / f"{split}.h5"))
        if stored == wanted:
            done.add(split)
    target = prepare_shard(data_dir, shard, done)
    return extract_rgb_features(target, size=size, sampling=sampling, cache_dir=cache_dir, **options)


def _shard_split(rank_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(uids, rgb) of one shard's split once its extraction is complete, else None."""
    with h5py.File(rank_dir / f"{split}.h5", "r") as handle:
        if f"arrays/{ARRAY}" not in handle:
            return None
        return handle["uid"][()].astype(str), handle[f"arrays/{ARRAY}"][()]


def merge_rgb_shards(data_dir: Path) -> dict:
    """Merge every shard's features into the split files, check each sample is covered; remove the shards."""
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
    for split in SPLITS:
        _merge_split(data_dir / f"{split}.h5", ranks, split, wanted)
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


def _merge_split(path: Path, ranks: list[Path], split: str, wanted: dict) -> None:
    from myosight.training.rgb_features import _array_settings

    if _array_settings(path) == wanted:
        return
    with h5py.File(path, "r") as handle:
        uids = handle["uid"][()].astype(str)
    index = {uid: row for row, uid in enumerate(uids)}
    if len(index) != len(uids):
        raise ConfigError(f"{path}: sample uids are not unique; features cannot be matched by uid")
    features, have = None, np.zeros(len(uids), bool)
    for rank_dir in ranks:
        part = _shard_split(rank_dir, split)
        if part is None:
            continue
        rows = np.array([index[uid] for uid in part[0]], dtype=np.int64)
        if features is None:
            features = np.zeros((len(uids), *part[1].shape[1:]), np.float32)
        features[rows] = part[1]
        have[rows] = True
    if features is None or not have.all():
        missing = int((~have).sum())
        raise ConfigError(f"{path}: {missing} of {len(uids)} samples are not extracted by any shard yet; run the "
                          "same `torchrun ... myosight features rgb` command again to finish them, then merge")
    write_array(path, ARRAY, features)
    with h5py.File(path, "a") as handle:
        handle[f"arrays/{ARRAY}"].attrs["settings"] = json.dumps(wanted)


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
