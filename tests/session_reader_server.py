"""A child process for fuzzing the ActionSense reader: reads one session per line of stdin, answers in JSON.

It runs apart from pytest because a damaged HDF5 file can crash the HDF5 library itself; the test then
sees this process die (or go silent) instead of dying with it. For each path it opens the session, reads
everything the reader offers, and answers {"status": "ok" | "project_error" | "raw_error", ...}.
"""

from __future__ import annotations

import json
import sys
import traceback


def read_everything(path: str) -> None:
    from myosight.data.actionsense import ActionSenseSession

    with ActionSenseSession(path) as session:
        streams = session.streams()
        _ = session.subject, session.arms
        for group in streams:
            session.attrs(group)
            session.read_stream(group)
        session.emg_pair(allow_missing=True)
        for arm in session.arms:
            session.emg(arm, start_s=0.0, stop_s=2e9)
        if "experiment-activities/activities" in streams:
            session.activities()
        if "eye-tracking-video-world/frame_timestamp" in streams:
            session.video_frame_times()


def answer(path: str) -> dict:
    from myosight.errors import MyosightError

    try:
        read_everything(path)
    except MyosightError as error:
        return {"status": "project_error", "type": type(error).__name__, "message": str(error)}
    except Exception as error:
        return {"status": "raw_error", "type": type(error).__name__, "message": str(error),
                "traceback": traceback.format_exc()}
    return {"status": "ok"}


def main() -> None:
    import logging

    logging.disable(logging.WARNING)  # trimmed-log warnings are expected and not the point here
    print(json.dumps({"status": "ready"}), flush=True)
    for line in sys.stdin:
        print(json.dumps(answer(line.strip())), flush=True)


if __name__ == "__main__":
    main()
