"""The torch device the live models run on, checked before anything starts.

`--device` takes `cpu`, `cuda`, `cuda:N` or `mps`. A device this machine does not have is a one-line error
that says what torch sees and how to get a build that has it, instead of a CUDA traceback in a child process
seconds later. Checking `cpu` imports nothing, so commands that run on the CPU start as fast as before.
"""

from __future__ import annotations

from myosight.errors import ConfigError

#: What a live worker may compute in: float32 everywhere, int8 (a quantised I3D) on the CPU only.
PRECISIONS = ("float32", "int8")


def check_device(name: str, *, precision: str = "float32", option: str = "--device") -> str:
    """`name` when this machine has that device (and it can run `precision`); ConfigError otherwise."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "int8" and name != "cpu":
        raise ConfigError(f"--precision int8 runs I3D on the CPU only; drop it, or use {option} cpu")
    if name == "cpu":
        return name
    import torch

    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {name}: torch {torch.__version__} sees no CUDA device (a CPU-only build, or "
                              "no driver); run on the CPU (the default), or install a CUDA build of torch into the "
                              "environment, e.g. .venv/bin/pip install torch --index-url "
                              "https://download.pytorch.org/whl/cu126")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ConfigError(f"{option} {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        return name
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{option} mps: torch {torch.__version__} has no Metal (MPS) device here (macOS on "
                              "Apple silicon only); run on the CPU (the default)")
        return name
    raise ConfigError(f"{option} {name}: expected cpu, cuda, cuda:N or mps")


def device_description(name: str) -> str:
    """The device in words, for benchmark reports (e.g. 'cuda:0: NVIDIA H200, 139.8 GiB')."""
    if name == "cpu":
        return "cpu"
    import torch

    if name.startswith("cuda"):
        index = int(name.partition(":")[2] or 0)
        properties = torch.cuda.get_device_properties(index)
        return f"cuda:{index}: {properties.name}, {properties.total_memory / 2**30:.1f} GiB, torch {torch.__version__}"
    return f"{name}, torch {torch.__version__}"
