"""`myosight bench people`: myosight on real people, through the live path, beside LibEMG in the same run.

The people are the MyoArmbandDataset's (real Myo recordings, one armband on the right forearm, 7 hand and wrist
gestures held about 5 s, 4 cycles per round): 22 pre-training people and 18 evaluation people with three rounds
each (`training0`, then `Test0` and `Test1`, recorded on one day). Every step is a `myosight` command, as a user
would type it:

1. `myosight import myoarmband` writes the rounds as sessions;
2. the **base** model: `myosight dataset` (the pre-training people, the right arm, a 1-s window of one clip every
   0.1 s, each person scaled by their own statistics as a calibration will scale the new one), `features emg`,
   `train linear_emg`: a model of other people, for a new person without calibration;
3. per evaluation person, `myosight calibrate --from` their `training0` round, starting from the base
   (**calibrated**) and with the sEMG CNN trained on the person alone (**calibrated, no base**: whether other
   people's model helps);
4. each model is scored on `Test0` and `Test1` replayed through `myosight run --every-window` (the live worker,
   every decision of the replay, faster than real time);
5. the peer, LibEMG, installed from the package index in an environment of its own (`bench/peer.py`), is
   trained on the same `training0` round and asked for the same decisions: the window ending at each decision
   time, with its default pipeline (HTD features, LDA) and every classifier it ships, at its usual 200-ms
   window and at myosight's decision window;
6. the next session: the first cycle of `Test0` (one repetition of each gesture) tops the calibrated model up
   (`myosight calibrate --update BUNDLE --from CYCLE`), and a new calibration is made on that cycle alone; both are
   scored on the rest of `Test0` and on `Test1`, beside the model without a top-up.

Two scores per model and person, over both test rounds: **every decision** (the true label at the window's middle,
as the running accuracy counts it; decisions whose middle falls between two repetitions have none) and the
decisions whose **window lies inside one repetition**. The worker's log gives each decision's window end on the
replay's clock, which is the recording's clock shifted by a whole number of seconds (`capture/playback.py`): the
shift is found as the one under which the session's own labels give the logged true labels.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from myosight.bench.steps import CommandSteps, free_address
from myosight.errors import ConfigError
from myosight.paths import write_text_replacing

#: The MyoArmbandDataset's people (its folder names).
EVALUATION_PEOPLE = ("Female0", "Female1", *(f"Male{i}" for i in range(16)))
PRETRAINING_PEOPLE = (*(f"Female{i}" for i in range(10)), *(f"Male{i}" for i in range(12)))
TEST_ROUNDS = ("Test0", "Test1")
#: The models scored per person, in the order of the table.
MODELS = ("base", "calibrated", "calibrated_no_base")
MODEL_TITLES = {"base": "base (other people only)", "calibrated": "calibrated from the base",
                "calibrated_no_base": "calibrated, no base (sEMG CNN on the person alone)"}
#: The base model's samples: a 1-s window every 0.1 s of each repetition (about 25,000 of the 22 people's), and
#: the epochs of its CNN over them.
BASE_STEP_S = 0.1
BASE_EPOCHS = 15
#: LibEMG's usual window (seconds), tried beside myosight's decision window.
PEER_WINDOW_S = 0.2
PEER_INCREMENT_S = 0.05
TARGET_INSIDE = 0.97


@dataclass
class PeopleBenchConfig:
    data: Path  # the MyoArmbandDataset: the repacked .npz or the original folder tree
    people: Sequence[str] = EVALUATION_PEOPLE
    base_people: Sequence[str] = PRETRAINING_PEOPLE
    window_s: float = 1.0  # the decision window (one clip)
    hop_s: float = 0.2  # a decision every hop
    replay_speed: float = 16.0
    peer: bool = True
    peer_classifiers: Sequence[str] | None = None  # default: every classifier LibEMG ships
    work_dir: Path | None = None
    base_epochs: int | None = BASE_EPOCHS  # the base CNN's epochs
    top_up: bool = True  # also the next session: a top-up with one cycle of Test0, against none and a new one


@dataclass
class Decisions:
    """One scored replay: each logged decision on the recording's clock, with its labels."""

    ends: np.ndarray  # (n,) window ends, recording time (epoch seconds)
    predicted: list[str]
    truth: list[str | None]  # the activity at the window's middle (None between repetitions)
    inside: np.ndarray  # (n,) bool: the window lies inside one repetition
    window_s: float = 1.0

    def after(self, time_s: float) -> Decisions:
        """The decisions whose window starts at or after `time_s` (recording time)."""
        keep = self.ends - self.window_s >= time_s - 1e-9
        return Decisions(self.ends[keep], [p for p, k in zip(self.predicted, keep, strict=True) if k],
                         [t for t, k in zip(self.truth, keep, strict=True) if k], self.inside[keep], self.window_s)

    def scores(self) -> dict:
        labelled = np.array([t is not None for t in self.truth], bool)
        hits = np.array([p == t for p, t in zip(self.predicted, self.truth, strict=True)], bool)
        inside = self.inside & labelled
        return {"every": _share(hits[labelled]), "inside": _share(hits[inside]), "decisions": int(labelled.sum()),
                "inside_decisions": int(inside.sum())}


def _share(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if len(hits) else None


@dataclass
class Activity:
    label: str
    start_s: float
    stop_s: float


def session_activities(path: Path) -> tuple[list[Activity], float, float]:
    """The session's repetitions and the span of its EMG (first, last sample time)."""
    from myosight.data.actionsense import ActionSenseSession

    with ActionSenseSession(path) as session:
        activities = [Activity(a.label, a.start_s, a.stop_s) for a in session.activities()]
        times = [session.emg(arm).time_s for arm in session.arms]
    return activities, min(t[0] for t in times), max(t[-1] for t in times)


def label_at(activities: Sequence[Activity], time_s: np.ndarray) -> list[str | None]:
    """The activity under way at each time, as the replay's label markers tell it (Start <= t, before Stop)."""
    out: list[str | None] = []
    starts = np.array([a.start_s for a in activities])
    for t in np.asarray(time_s, np.float64):
        index = int(np.searchsorted(starts, t, side="right")) - 1
        out.append(activities[index].label if index >= 0 and t < activities[index].stop_s else None)
    return out


def read_decisions(jsonl: Path, session: Path, window_s: float) -> Decisions:
    """The logged decisions of a replay of `session`, moved onto the recording's clock (see the module text)."""
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        raise ConfigError(f"{jsonl}: no decision was logged")
    ends = np.array([float(r["window_end"]) for r in records])
    logged = [r.get("true_label") for r in records]
    activities, first, last = session_activities(session)
    shift = _replay_shift(ends, logged, activities, first, last, window_s, jsonl)
    recorded = ends - shift
    truth = label_at(activities, recorded - window_s / 2)
    tolerance = 1e-6
    inside = np.array([any(a.start_s - tolerance <= end - window_s and end <= a.stop_s + tolerance
                           for a in activities) for end in recorded])
    return Decisions(recorded, [r["label"] for r in records], truth, inside, window_s)


def _replay_shift(ends: np.ndarray, logged: list[str | None], activities: Sequence[Activity], first: float,
                  last: float, window_s: float, jsonl: Path) -> float:
    """The whole number of seconds between the replay's clock and the recording's under which the recording's
    labels give the logged ones (every decision's window must lie within the recording)."""
    low, high = math.floor(ends.max() - last - 1), math.ceil(ends.min() - window_s - first + 1)
    agreements = []
    for shift in range(low, high + 1):
        expected = label_at(activities, ends - shift - window_s / 2)
        agreements.append((float(np.mean([e == g for e, g in zip(expected, logged, strict=True)])), shift))
    agreements.sort(reverse=True)
    best_agreement, best = agreements[0] if agreements else (0.0, None)
    runner_up = agreements[1][0] if len(agreements) > 1 else 0.0
    # A window whose middle falls on a label change within a clock offset's rounding may be logged with the
    # neighbouring label: a few per round. The right shift still stands out from every other by far.
    if best is None or best_agreement < SHIFT_AGREEMENT or best_agreement - runner_up < SHIFT_MARGIN:
        raise ConfigError(f"{jsonl}: the logged true labels match the recording's under no whole-second shift "
                          f"(best {best_agreement:.1%}, next {runner_up:.1%})")
    return float(best)


#: How well the logged true labels must agree with the recording's under the shift found, and by how much
#: better than under any other shift.
SHIFT_AGREEMENT = 0.95
SHIFT_MARGIN = 0.1


@dataclass
class PersonResult:
    person: str
    models: dict[str, dict] = field(default_factory=dict)  # model -> scores over both test rounds
    rounds: dict[str, dict] = field(default_factory=dict)  # "model/round" -> scores
    adapt_s: dict[str, float] = field(default_factory=dict)  # model -> end of recording -> bundle written
    held_out: dict[str, float | None] = field(default_factory=dict)
    peer: list[dict] = field(default_factory=list)  # LibEMG: per (classifier, window) scores
    top_up: dict[str, dict] = field(default_factory=dict)  # model -> {"Test0 rest": scores, "Test1": scores}


def benchmark_people(config: PeopleBenchConfig, say: Callable[[str], None] = print,
                     command: str = "myosight bench people") -> dict:
    """Run the steps of the module docstring; return every measurement (see `people_figures`), also written as
    WORK/bench-people.json and, as the tables of docs/real-people.md, WORK/bench-people.md."""
    from datetime import date

    from myosight.bench.commands import machine_description

    work = Path(config.work_dir or tempfile.mkdtemp(prefix="myosight-bench-people-"))
    work.mkdir(parents=True, exist_ok=True)
    steps = CommandSteps(work, say, "bench people")
    machine = machine_description()  # before the run: the load average says how busy the machine was
    started = time.monotonic()
    sessions = import_people(steps, config, work / "sessions")
    base = base_model(steps, config, sessions, work / "base")
    environment = _peer_environment(config, say)
    earlier = earlier_people(work / RESULTS_NAME, config)
    people: list[PersonResult] = []
    result: dict = {}
    for person in config.people:
        if person in earlier:
            say(f"{person}: scored by an earlier run into {work} with the same settings, kept")
            people.append(earlier[person])
            steps.timings.update(earlier.timings_of(person))
        else:
            people.append(score_person(steps, config, base, sessions, person, work / person, environment))
        result = {"date": date.today().isoformat(), "command": command, "machine": machine, "work_dir": str(work),
                  "config": _settings(config, work), "people": [asdict(p) for p in people],
                  "summary": summarise(people), "seconds": time.monotonic() - started + earlier.seconds_of(people),
                  "timings": steps.timings, "complete": len(people) == len(config.people),
                  "kept_from_earlier_run": [p.person for p in people if p.person in earlier]}
        if environment is not None:
            result["peer_version"] = environment.stamp_contents()
        # after every person: an interrupted run keeps what it measured, and the next run goes on from there
        write_text_replacing(work / RESULTS_NAME, json.dumps(result, indent=2))
    (work / "bench-people.md").write_text(people_markdown(result), encoding="utf-8")
    return result


#: The settings that must agree for an earlier run's person to be kept (the people themselves may differ).
RESUMABLE_SETTINGS = ("data", "base_people", "window_s", "hop_s", "replay_speed", "peer", "peer_classifiers",
                      "base_epochs")


def _settings(config: PeopleBenchConfig, work: Path) -> dict:
    settings = {**asdict(config), "data": str(config.data), "work_dir": str(work)}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()}


class EarlierPeople(dict):
    """The people an earlier run into the same folder scored with the same settings, by name, with that run's
    step timings (a two-hour run of 18 people need not start again after an interruption or to add people)."""

    def __init__(self, people: dict[str, PersonResult], run: dict | None = None) -> None:
        super().__init__(people)
        self.run = run or {}

    def timings_of(self, person: str) -> dict[str, float]:
        return {step: seconds for step, seconds in self.run.get("timings", {}).items()
                if step.startswith(f"{person}-")}

    def seconds_of(self, people: Sequence[PersonResult]) -> float:
        """The earlier run's time spent on the kept people (its step timings), so that the total stays the
        time the people took."""
        return sum(sum(self.timings_of(p.person).values()) for p in people if p.person in self)


def earlier_people(path: Path, config: PeopleBenchConfig) -> EarlierPeople:
    """The people of `path` (an earlier run's results) that this run can keep: same settings, and the next
    session measured where this run measures it."""
    if not path.is_file():
        return EarlierPeople({})
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        settings, wanted = run["config"], _settings(config, path.parent)
        settings["data"], wanted["data"] = (str(Path(s["data"]).resolve()) for s in (settings, wanted))
        if any(settings.get(key) != wanted.get(key) for key in RESUMABLE_SETTINGS):
            return EarlierPeople({})
        people = {entry["person"]: PersonResult(**entry) for entry in run["people"]}
    except (OSError, ValueError, KeyError, TypeError):
        return EarlierPeople({})  # not a results file of this benchmark: measured again, never trusted
    if config.top_up:
        people = {name: person for name, person in people.items() if person.top_up}
    return EarlierPeople({name: person for name, person in people.items() if name in config.people}, run)


def import_people(steps: CommandSteps, config: PeopleBenchConfig, out: Path) -> dict[tuple[str, str], Path]:
    """The sessions of the people the run needs, by (person key, round): evaluation people as `E/NAME`,
    pre-training ones as `P/NAME` (the two groups reuse names)."""
    found: dict[tuple[str, str], Path] = {}
    for split, people, key in (("evaluation", config.people, "E"), ("pretraining", config.base_people, "P")):
        if not people:
            continue
        folder = out / split
        if not (folder / "index.json").is_file():
            steps.myosight(f"import-{split}", "import", "myoarmband", str(config.data), "--out", str(folder),
                           "--split", split, "--people", *people, "--force")
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        for entry in index["sessions"]:
            found[(f"{key}/{entry['person']}", entry["round"])] = folder / entry["path"]
    return found


def base_model(steps: CommandSteps, config: PeopleBenchConfig, sessions: dict[tuple[str, str], Path],
               out: Path) -> Path:
    """The model of the pre-training people (trained once per work folder)."""
    bundle = out / "run" / "bundle.safetensors"
    if bundle.is_file():
        return bundle
    paths = [str(sessions[(f"P/{person}", "training0")]) for person in config.base_people]
    steps.myosight("base-dataset", "dataset", *paths, "--out", str(out / "data"), "--arms", "right", "--window",
                   f"{config.window_s:g}", "--clips", "1", "--by", "action", "--train-fraction", "0.9",
                   "--normalise", "subject", "--step", f"{BASE_STEP_S:g}", "--force")  # over an interrupted run
    epochs = ["--epochs", str(config.base_epochs)] if config.base_epochs else []
    steps.myosight("base-features", "features", "emg", str(out / "data"), "--cross-fit", "1", "--quiet", "--force",
                   *epochs)
    steps.myosight("base-train", "train", "--model", "linear_emg", "--data", str(out / "data"), "--out",
                   str(out / "run"), "--quiet")
    return bundle


def score_person(steps: CommandSteps, config: PeopleBenchConfig, base: Path, sessions: dict[tuple[str, str], Path],
                 person: str, out: Path, environment) -> PersonResult:
    """Calibrate one evaluation person two ways and score the three models (and the peer) on the test rounds."""
    out.mkdir(parents=True, exist_ok=True)
    result = PersonResult(person)
    train = sessions[(f"E/{person}", "training0")]
    bundles = {"base": base}
    for model, extra in (("calibrated", []), ("calibrated_no_base", ["--fine-tune", "scratch"])):
        folder = out / model
        outcome = steps.myosight_json(f"{person}-{model}", "calibrate", "--from", str(train), "--base", str(base),
                                      "--emg-only", "--out", str(folder), "--json", *extra)
        bundles[model] = folder / "bundle.safetensors"
        result.adapt_s[model] = outcome["adapt_wall_s"]
        result.held_out[model] = outcome["held_out_top1"]
    decisions: dict[str, dict[str, Decisions]] = {}
    for model, bundle in bundles.items():
        decisions[model] = {}
        for round_name in TEST_ROUNDS:
            session = sessions[(f"E/{person}", round_name)]
            log = out / f"{model}-{round_name}.jsonl"
            log.unlink(missing_ok=True)
            steps.myosight(f"{person}-{model}-{round_name}", "run", "--model", str(bundle), "--source", "replay",
                           str(session), "--speed", f"{config.replay_speed:g}", "--hop", f"{config.hop_s:g}",
                           "--emg-only", "--every-window", "--headless", "--jsonl", str(log), "--address",
                           free_address())
            decisions[model][round_name] = read_decisions(log, session, config.window_s)
            result.rounds[f"{model}/{round_name}"] = decisions[model][round_name].scores()
        result.models[model] = _pooled(list(decisions[model].values()))
    if environment is not None:
        result.peer = peer_scores(environment, config, train, {r: sessions[(f"E/{person}", r)] for r in TEST_ROUNDS},
                                  decisions["calibrated"], out / "peer")
    if config.top_up:
        result.top_up = score_top_up(steps, config, base, sessions, person, out, decisions["calibrated"],
                                     result.adapt_s)
    return result


#: The repetitions of one cycle of a round (each gesture once): what a top-up records.
TOP_UP_REPETITIONS = 7
TOP_UP_MODELS = {"calibrated": "yesterday's calibration, no top-up",
                 "topped_up": "topped up: yesterday's recording and one new cycle together",
                 "new_from_cycle": "a new calibration on the one new cycle alone"}


def score_top_up(steps: CommandSteps, config: PeopleBenchConfig, base: Path, sessions: dict[tuple[str, str], Path],
                 person: str, out: Path, calibrated: dict[str, Decisions], adapt_s: dict[str, float]) -> dict:
    """The next session (section 4 of the module text): `Test0`'s first cycle is the top-up's recording; the
    models are scored on the rest of `Test0` and on `Test1`."""
    import shutil

    test0 = sessions[(f"E/{person}", "Test0")]
    cycle, rest_from = first_repetitions(test0, TOP_UP_REPETITIONS, out / "top-up-recording")
    topped = out / "topped_up"
    if topped.exists():
        shutil.rmtree(topped)
    shutil.copytree(out / "calibrated", topped)
    outcome = steps.myosight_json(f"{person}-topped_up", "calibrate", "--update", str(topped / "bundle.safetensors"),
                                  "--from", str(cycle), "--json")
    adapt_s["topped_up"] = outcome["adapt_wall_s"]
    outcome = steps.myosight_json(f"{person}-new_from_cycle", "calibrate", "--from", str(cycle), "--base", str(base),
                                  "--emg-only", "--out", str(out / "new_from_cycle"), "--json")
    adapt_s["new_from_cycle"] = outcome["adapt_wall_s"]
    scored: dict[str, dict] = {"calibrated": {"Test0 rest": calibrated["Test0"].after(rest_from).scores(),
                                              "Test1": calibrated["Test1"].scores()}}
    for model in ("topped_up", "new_from_cycle"):
        rounds = {}
        for round_name in TEST_ROUNDS:
            session = sessions[(f"E/{person}", round_name)]
            log = out / f"{model}-{round_name}.jsonl"
            log.unlink(missing_ok=True)
            steps.myosight(f"{person}-{model}-{round_name}", "run", "--model", str(out / model / "bundle.safetensors"),
                           "--source", "replay", str(session), "--speed", f"{config.replay_speed:g}", "--hop",
                           f"{config.hop_s:g}", "--emg-only", "--every-window", "--headless", "--jsonl", str(log),
                           "--address", free_address())
            rounds[round_name] = read_decisions(log, session, config.window_s)
        scored[model] = {"Test0 rest": rounds["Test0"].after(rest_from).scores(), "Test1": rounds["Test1"].scores()}
    return scored


def first_repetitions(session: Path, count: int, out: Path) -> tuple[Path, float]:
    """A session of the first `count` repetitions of a recorded round (what a top-up would have recorded), with
    the round's own samples and times, and the time the round's next repetition starts."""
    from myosight.data.actionsense import ActionSenseSession
    from myosight.data.layout import EMG_GROUPS, SessionWriter, session_filename

    with ActionSenseSession(session) as opened:
        activities = opened.activities()
        if len(activities) <= count:
            raise ConfigError(f"{session}: {len(activities)} repetitions; a top-up of {count} leaves none to test on")
        kept, rest_from = activities[:count], activities[count].start_s
        arms, subject = opened.arms, opened.subject or "person"
        emg = {arm: opened.emg(arm, kept[0].start_s, kept[-1].stop_s + 1e-6) for arm in arms}
    out.mkdir(parents=True, exist_ok=True)
    path = out / session_filename(kept[0].start_s, f"{subject}-top-up")
    with SessionWriter(path, file_attrs={"Subject": subject, "Cut from": str(session)}, whole=True) as writer:
        for arm, series in emg.items():
            writer.add_emg_stream(arm)
            writer.append(EMG_GROUPS[arm], series.data, series.time_s)
        writer.add_activity_stream(sorted({a.label for a in kept}))
        for activity in kept:
            writer.append_activity(activity.label, "Start", activity.start_s)
            writer.append_activity(activity.label, "Stop", activity.stop_s)
    return path, rest_from


def _pooled(parts: Sequence[Decisions]) -> dict:
    """Scores over the decisions of several replays together."""
    return Decisions(np.concatenate([p.ends for p in parts]), [x for p in parts for x in p.predicted],
                     [x for p in parts for x in p.truth], np.concatenate([p.inside for p in parts]),
                     parts[0].window_s).scores()


# -- the peer ---------------------------------------------------------------------------------------------


def _peer_environment(config: PeopleBenchConfig, say: Callable[[str], None]):
    if not config.peer:
        return None
    from myosight.bench.peer import PeerEnvironment

    environment = PeerEnvironment()
    environment.ensure(progress=say)
    return environment


def _raw(session: Path) -> tuple[np.ndarray, np.ndarray, list[Activity]]:
    """A one-arm session's raw samples (n, 8), their times and its repetitions."""
    from myosight.data.actionsense import ActionSenseSession

    with ActionSenseSession(session) as opened:
        if len(opened.arms) != 1:
            raise ConfigError(f"{session}: the peer reads one armband; this session has {len(opened.arms)}")
        series = opened.emg(opened.arms[0])
        activities = [Activity(a.label, a.start_s, a.stop_s) for a in opened.activities()]
    return series.data.astype(np.float64), series.time_s, activities


def peer_scores(environment, config: PeopleBenchConfig, train: Path, tests: dict[str, Path],
                decisions: dict[str, Decisions], work: Path) -> list[dict]:
    """LibEMG trained on the training round's repetitions, asked for the windows ending at myosight's decision
    times; scored like myosight (every decision, inside one repetition)."""
    from myosight.bench.peer import CLASSIFIERS, PeerRequest, peer_accuracy

    data, times, activities = _raw(train)
    classes = sorted({a.label for a in activities})
    rate = (len(times) - 1) / (times[-1] - times[0])
    recordings = []
    for activity in activities:
        rows = (times >= activity.start_s) & (times <= activity.stop_s)
        recordings.append((data[rows], classes.index(activity.label)))
    test_inputs, truth, masks = {}, {}, {}
    for name, path in tests.items():
        raw, raw_times, _ = _raw(path)
        chosen = decisions[name]
        ends = np.searchsorted(raw_times, chosen.ends + 1e-9, side="right")
        test_inputs[name] = (raw, ends)
        truth[name] = np.array([classes.index(t) if t in classes else -2 for t in chosen.truth])
        masks[name] = np.array([t is not None for t in chosen.truth])
    windows = sorted({round(PEER_WINDOW_S * rate), round(config.window_s * rate)})
    request = PeerRequest(rate_hz=rate, train=recordings, tests=test_inputs, window_samples=tuple(windows),
                          increment_samples=max(1, round(PEER_INCREMENT_S * rate)),
                          classifiers=tuple(config.peer_classifiers or CLASSIFIERS))
    result = environment.run(request, work)
    every = {(r["classifier"], r["window_samples"]): r for r in peer_accuracy(result, truth, masks)}
    inside = {(r["classifier"], r["window_samples"]): r for r in peer_accuracy(
        result, truth, {name: masks[name] & decisions[name].inside for name in tests})}
    return [{"classifier": key[0], "window_s": round(key[1] / rate, 3), "every": row["accuracy"],
             "inside": inside[key]["accuracy"]} for key, row in every.items()]


# -- the summary ------------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float | None]) -> dict:
    kept = [v for v in values if v is not None]
    if not kept:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": float(np.mean(kept)), "std": float(np.std(kept)), "min": float(min(kept)),
            "max": float(max(kept)), "n": len(kept)}


def summarise(people: Sequence[PersonResult]) -> dict:
    """Mean, std and range over the people of every model's scores and of each LibEMG pipeline's."""
    summary: dict = {"models": {}, "peer": {}, "adapt_s": {}}
    for model in MODELS:
        summary["models"][model] = {score: _mean_std([p.models.get(model, {}).get(score) for p in people])
                                    for score in ("every", "inside")}
    for model in ("calibrated", "calibrated_no_base", "topped_up", "new_from_cycle"):
        times = _mean_std([p.adapt_s.get(model) for p in people])
        if times["n"]:
            summary["adapt_s"][model] = times
    pipelines = {(row["classifier"], round(row["window_s"], 3)) for p in people for row in p.peer}
    for classifier, window in sorted(pipelines):
        rows = [row for p in people for row in p.peer
                if row["classifier"] == classifier and round(row["window_s"], 3) == window]
        summary["peer"][f"{classifier} @ {window:g} s"] = {score: _mean_std([r[score] for r in rows])
                                                          for score in ("every", "inside")}
    for model in TOP_UP_MODELS:
        for part in ("Test0 rest", "Test1"):
            values = [p.top_up.get(model, {}).get(part, {}).get("inside") for p in people]
            if any(v is not None for v in values):
                summary.setdefault("top_up", {}).setdefault(model, {})[part] = _mean_std(values)
    if summary["peer"]:
        best = max(summary["peer"], key=lambda key: summary["peer"][key]["inside"]["mean"] or 0.0)
        summary["peer_best"] = best
        summary["peer_default"] = next((key for key in summary["peer"] if key.startswith("LDA @ 0.2")), None)
    return summary


def people_figures(result: dict) -> list[dict]:
    """The benchmark's table rows: each model's and the peer's mean accuracy, and the adaptation time."""
    summary, figures = result["summary"], []
    count = len(result["people"])

    def row(name: str, scores: dict, note: str, target: str = "") -> None:
        if scores["mean"] is None:
            return
        figures.append({"name": name, "value": 100 * scores["mean"], "unit": "% accuracy", "target": target,
                        "note": f"± {100 * scores['std']:.1f} over {scores['n']} people ({100 * scores['min']:.1f}-"
                                f"{100 * scores['max']:.1f}); {note}"})

    for model in MODELS:
        for score, what in (("inside", "decisions inside one repetition"), ("every", "every labelled decision")):
            target = ">= 97 %, above LibEMG's best" if model == "calibrated" and score == "inside" else ""
            row(f"people.{model}.{score}", summary["models"][model][score], f"{MODEL_TITLES[model]}; {what}", target)
    for key, label in (("peer_default", "LibEMG default (HTD, LDA)"), ("peer_best", "LibEMG best")):
        pipeline = summary.get(key)
        if pipeline:
            for score in ("inside", "every"):
                row(f"people.libemg_{key.removeprefix('peer_')}.{score}", summary["peer"][pipeline][score],
                    f"{label}: {pipeline}")
    best = summary.get("peer_best")
    calibrated = summary["models"]["calibrated"]["inside"]["mean"]
    if best and calibrated is not None and summary["peer"][best]["inside"]["mean"]:
        figures[_index(figures, "people.calibrated.inside")].update(
            baseline="people.libemg_best.inside", ratio=calibrated / summary["peer"][best]["inside"]["mean"])
    for model, parts in summary.get("top_up", {}).items():
        for part, scores in parts.items():
            row(f"people.next_session.{model}.{part.replace(' ', '_')}", scores,
                f"{TOP_UP_MODELS[model]}; decisions inside one repetition of {part}")
    for model, times in summary["adapt_s"].items():
        if times["mean"] is not None:
            figures.append({"name": f"people.{model}.adapt", "value": times["mean"], "unit": "s",
                            "note": f"end of recording -> bundle written, max {times['max']:.0f} s, {count} people"})
    return figures


def _index(figures: list[dict], name: str) -> int:
    return next(i for i, figure in enumerate(figures) if figure["name"] == name)


# -- the documentation's tables -----------------------------------------------------------------------------


def _percent(scores: dict | None, spread: bool = True) -> str:
    if not scores or scores.get("mean") is None:
        return "-"
    text = f"{100 * scores['mean']:.1f}"
    if spread and scores.get("n", 0) > 1:
        text += f" ± {100 * scores['std']:.1f} ({100 * scores['min']:.1f}-{100 * scores['max']:.1f})"
    return text


def _one(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def people_markdown(result: dict) -> str:
    """The tables of docs/real-people.md from one run: the date, the machine and the command first."""
    from myosight.bench.commands import machine_line

    summary = result["summary"]
    peer = result.get("peer_version") or {}
    lines = [f"Measured {result['date']} with `{result['command']}` on {machine_line(result['machine'])}; "
             f"{len(result['people'])} people; LibEMG {peer.get('libemg_version', '-')} "
             f"(`{peer.get('requirement', '-')}`) in its own environment. Accuracy in %, mean ± std over the people "
             "(range).", "",
             "| model | inside one repetition | every decision |", "| --- | ---: | ---: |"]
    for model in MODELS:
        scores = summary["models"][model]
        inside, every = _percent(scores["inside"]), _percent(scores["every"])
        lines.append(f"| myosight: {MODEL_TITLES[model]} | {inside} | {every} |")
    for key, label in (("peer_default", "LibEMG default (HTD, LDA), {}"), ("peer_best", "LibEMG best, {}")):
        pipeline = summary.get(key)
        if pipeline:
            scores = summary["peer"][pipeline]
            lines.append(f"| {label.format(pipeline)} | {_percent(scores['inside'])} | {_percent(scores['every'])} |")
    lines += ["", "Every LibEMG pipeline of the run (classifier @ window), decisions inside one repetition:", "",
              "| pipeline | inside | every |", "| --- | ---: | ---: |"]
    for pipeline, scores in sorted(summary["peer"].items(), key=lambda item: -(item[1]["inside"]["mean"] or 0)):
        lines.append(f"| {pipeline} | {_percent(scores['inside'], False)} | {_percent(scores['every'], False)} |")
    lines += ["", "Per person, decisions inside one repetition:", "",
              "| person | base | calibrated | no base | LibEMG default | LibEMG best |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for person in result["people"]:
        peer_rows = {f"{row['classifier']} @ {row['window_s']:g} s": row for row in person["peer"]}
        default, best = peer_rows.get(summary.get("peer_default") or ""), peer_rows.get(summary.get("peer_best") or "")
        ours = " | ".join(_one(person["models"].get(m, {}).get("inside")) for m in MODELS)
        theirs = " | ".join(_one(row["inside"] if row else None) for row in (default, best))
        lines.append(f"| {person['person']} | {ours} | {theirs} |")
    lines += ["", _head_to_head(result)]
    times = summary["adapt_s"]
    spent = "; ".join(f"{model.replace('_', ' ')} {t['mean']:.0f} (max {t['max']:.0f})" for model, t in times.items())
    lines += ["", "From the end of the recording to the bundle written (`myosight calibrate --from`, seconds, "
              f"mean and max over the people): {spent}."]
    kept = result.get("kept_from_earlier_run") or []
    if kept:
        lines += ["", f"{len(kept)} of the people were scored by an earlier run into the same folder with the same "
                  "settings and kept (the run goes on where one stopped): " + ", ".join(kept) + "."]
    top_up = summary.get("top_up")
    if top_up:
        measured = max(scores["n"] for parts in top_up.values() for scores in parts.values())
        lines += ["", "<!-- next-session -->", "",
                  f"The next session, on the {measured} of the {len(result['people'])} people it was measured for "
                  "(decisions inside one repetition):", "",
                  "| model | rest of Test0 (after the top-up's cycle) | Test1 |", "| --- | ---: | ---: |"]
        for model, title in TOP_UP_MODELS.items():
            parts = top_up.get(model, {})
            lines.append(f"| {title} | {_percent(parts.get('Test0 rest'))} | {_percent(parts.get('Test1'))} |")
    return "\n".join(lines) + "\n"


def _head_to_head(result: dict) -> str:
    """Calibrated against LibEMG's best pipeline, person by person, on the decisions inside one repetition."""
    best = result["summary"].get("peer_best")
    pairs = []
    for person in result["people"]:
        ours = person["models"].get("calibrated", {}).get("inside")
        theirs = next((row["inside"] for row in person["peer"]
                       if f"{row['classifier']} @ {row['window_s']:g} s" == best), None)
        if ours is not None and theirs is not None:
            pairs.append(100 * (ours - theirs))
    if not pairs:
        return "No person has both a calibrated model's and LibEMG's best score."
    ahead, level = sum(d >= 0.05 for d in pairs), sum(abs(d) < 0.05 for d in pairs)
    return (f"Calibrated against LibEMG's best ({best}), inside one repetition: ahead on {ahead} of {len(pairs)} "
            f"people, level on {level}, behind on {len(pairs) - ahead - level}; difference {np.mean(pairs):+.1f} "
            f"points on average (from {min(pairs):+.1f} to {max(pairs):+.1f}).")


PAGE_START = "<!-- bench-people:start"
PAGE_END = "<!-- bench-people:end -->"
RESULTS_NAME = "bench-people.json"


def page_section(page: str) -> str:
    """The generated part of a documentation page: what lies between its bench-people markers."""
    if PAGE_START not in page or PAGE_END not in page:
        raise ConfigError(f"the page has no {PAGE_START} ... {PAGE_END} markers for the people tables")
    return page.split(PAGE_START, 1)[1].split("-->", 1)[1].split(PAGE_END, 1)[0]


def update_page(page: Path, result: dict) -> Path:
    """Write a run's tables into `page` (between its markers) and its results beside it, as
    `results/bench-people.json`: the figures the page shows then always come from the file next to it."""
    text = page.read_text(encoding="utf-8")
    page_section(text)  # the markers are there
    opening_end = text.index("-->", text.index(PAGE_START)) + len("-->")
    head, tail = text[:opening_end], text[text.index(PAGE_END, opening_end):]
    write_text_replacing(page, head + "\n" + people_markdown(result) + tail)
    results = page.parent / "results" / RESULTS_NAME
    results.parent.mkdir(parents=True, exist_ok=True)
    write_text_replacing(results, json.dumps(result, indent=1) + "\n")
    return results
