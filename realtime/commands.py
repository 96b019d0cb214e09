"""CLI: `myosight worker` (LSL streams in, predictions out on ZeroMQ), and the worker options every command
that starts a worker shares (`run`, `demo`, `gui`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from myosight import options
from myosight.capture.choice import add_choice_options, choice_from_args
from myosight.models.device import PRECISIONS
from myosight.realtime.messages import DEFAULT_ADDRESS


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "worker", help="run the live worker: LSL streams in, predictions out on ZeroMQ",
        description="Subscribe to the LSL streams of one source or several (the armbands from `myosight myo`, "
        "the camera from `myosight camera`), predict every new window and publish results on a ZeroMQ PUB socket "
        f"(default {DEFAULT_ADDRESS}; binds 127.0.0.1 unless --address says otherwise).",
    )
    worker.add_argument("--model", type=Path, required=True, help="model bundle (.safetensors)")
    add_choice_options(worker, what="subscribe to")
    add_worker_options(worker)
    worker.set_defaults(handler=run_worker)


def add_worker_options(parser: argparse.ArgumentParser, *, address: bool = True) -> None:
    """Options of a worker: where it publishes, what it computes, how often."""
    if address:
        parser.add_argument("--address", default=DEFAULT_ADDRESS, help="ZeroMQ address to publish results on")
    parser.add_argument("--emg-only", action="store_true", help="sEMG only: no video, no I3D")
    parser.add_argument("--allow-missing-arm", action="store_true",
                        help="run a model whose armband the source does not stream, with zeros there (predictions "
                        "are then worse than a model of the arms there are: calibrate one)")
    add_decision_options(parser)
    parser.add_argument("--compile", action="store_true",
                        help="compile I3D with torch.compile (about 1.8x faster; 20-40 s of compiling at start, "
                        "the kernels cached for later runs)")
    parser.add_argument("--input-size", "--size", dest="input_size", type=options.pixels, default=None,
                        metavar="PIXELS",
                        help="I3D input size in pixels (default: the bundle's; 112 is the reduced-resolution "
                        "mode). --size is the old name of this option")


def add_decision_options(parser: argparse.ArgumentParser) -> None:
    """How often the worker decides, and where and in what precision its models run."""
    parser.add_argument("--hop", type=options.seconds, default=1.0,
                        help="seconds between decisions (default 1: one clip); 0.2 gives five fused decisions a "
                        "second, each computing one new clip; made coarser by itself when the models cannot keep up")
    parser.add_argument("--every-window", action="store_true",
                        help="decide every window in order, however far behind, and end once the source's streams "
                        "have ended (replays faster than real time, benchmarks); without it the worker decides the "
                        "newest window and skips what it cannot keep up with, as live use needs")
    parser.add_argument("--device", type=options.device, default="cpu",
                        help="where the models run: cpu (default), cuda, cuda:N or mps")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="I3D's arithmetic: float32 (default), or int8 (a quantised I3D, CPU only, faster)")


def run_worker(args: argparse.Namespace) -> int:
    import threading

    from myosight.models.bundle import load_bundle
    from myosight.models.device import check_device
    from myosight.realtime.messages import ResultPublisher
    from myosight.realtime.worker import Worker, WorkerConfig

    check_device(args.device, precision=args.precision)
    bundle = load_bundle(args.model)
    publisher = ResultPublisher(args.address, option="worker --address")
    config = WorkerConfig(source=choice_from_args(args), resolve_timeout_s=args.wait, hop_s=args.hop,
                          emg_only=args.emg_only, input_size=args.input_size, use_compile=args.compile,
                          device=args.device, precision=args.precision, allow_missing_arm=args.allow_missing_arm,
                          every_window=args.every_window)
    worker = Worker(bundle, config, publisher)
    print(f"worker: predictions on {publisher.address}; Ctrl-C stops")
    stop = threading.Event()
    try:
        worker.run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        worker.close()
        publisher.close()
    return 0
