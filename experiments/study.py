"""A study: one config file naming the data, the variants, a sweep and the seeds; expanded into runs.

    {"title": "...", "report": "beta_sweep",
     "data": ["--rows", "60000"],                      # generator / Transform flags, shared by every run
     "flags": ["--gradient-diagnostics"],              # Trainer flags common to every run
     "variants": {"BCE": ["--loss", "bce"], "Combined-Pair": ["--loss", "combined_pair"]},
     "baseline": "BCE",                                # paired differences are taken against it
     "sweep": {"--beta-pos": ["1.0", "0.1"]},          # every value of every swept flag, crossed
     "seeds": [1, 2, 3],                               # --train-seed of each run
     "paper": {...},                                   # the paper's numbers, for the report
     "expect": {"Focal": {"grad_negatives": 1}}}       # the paper's claimed direction per variant and metric
                                                       # (default: AUC up, weighted BCE down)

Every run's flags go through the Trainer's own flag parser and `validate()`, so a bad value stops the
study before anything runs, naming the run and the flag. A run's id hashes the data and the Trainer
settings its results can depend on (`run_id`): two studies that ask for the same training share its result.
"""
import dataclasses
import hashlib
import itertools
import json
import os
from typing import Any, Dict, List, Sequence, Tuple

from settings import configs, flags

REPORT_KINDS = ("beta_sweep", "alpha_sweep", "loss_table")
DATA_SECTIONS = ("data", "transform")
RUN_SECTIONS = ("model", "loss", "train")
_KEYS = {"title", "report", "data", "flags", "variants", "baseline", "sweep", "seeds", "paper", "description", "expect"}
DEFAULT_EXPECT = {"auc": 1, "weighted_bce": -1}  # the paper's claim for a variant unless `expect` says otherwise


class StudyError(ValueError):
    """An invalid study config; the message names the file and what is wrong."""


@dataclasses.dataclass(frozen=True)
class Run:
    variant: str
    sweep: Tuple[Tuple[str, str], ...]  # (flag, value) pairs
    seed: int
    settings: configs.TrainerSettings

    @property
    def label(self) -> str:
        return " ".join([self.variant] + [f"{flag[2:]}={value}" for flag, value in self.sweep] + [f"seed={self.seed}"])


@dataclasses.dataclass
class Study:
    name: str
    path: str
    title: str
    report: str
    data_flags: List[str]
    run_flags: List[str]
    variants: Dict[str, List[str]]
    baseline: str
    sweep: Dict[str, List[str]]
    seeds: List[int]
    paper: Dict[str, Any]
    description: str = ""
    expect: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)

    def expected(self, variant: str) -> Dict[str, int]:
        """metric -> the paper's direction (+1 up, -1 down) for `variant` against the baseline."""
        return self.expect.get(variant, DEFAULT_EXPECT)

    def runs(self) -> List[Run]:
        """Every (sweep point, variant, seed), in that order: a partial study has whole sweep points."""
        out = []
        points = list(itertools.product(*[[(flag, v) for v in values] for flag, values in self.sweep.items()]))
        for point in points:
            for variant, variant_flags in self.variants.items():
                for seed in self.seeds:
                    argv = self.run_flags + variant_flags + [a for pair in point for a in pair] + [
                        "--train-seed", str(seed)]
                    out.append(Run(variant, tuple(point), seed, _trainer_settings(argv, f"{self.path}: run "
                                                                                     f"{variant} {point} seed {seed}")))
        return out


def _parse(argv: Sequence[str], sections: Sequence[str], where: str) -> configs.PipelineConfig:
    parser = flags.StrictParser(prog=where, add_help=False)
    flags.add_flags(parser, sections=sections)
    try:
        return flags.parse(parser, list(argv))[0]
    except SystemExit as stop:
        raise StudyError(f"{where}: invalid flags {list(argv)} (see the message above)") from stop


def _trainer_settings(argv: Sequence[str], where: str) -> configs.TrainerSettings:
    return configs.TrainerSettings.from_pipeline_config(_parse(argv, RUN_SECTIONS, where))


def data_config(study: Study, overrides: Sequence[str] = ()) -> configs.PipelineConfig:
    """The generator and Transform settings every run of `study` shares (`overrides` win)."""
    return _parse(list(study.data_flags) + list(overrides), DATA_SECTIONS, f"{study.path}: data")


def run_id(data_key: str, settings: configs.TrainerSettings, train_input: str) -> str:
    """Stable id of a training: the data it reads, the settings its results can depend on
    (`TrainerSettings.identity`: a setting that changes only speed is not in it), and whether its train
    split was held in memory or streamed (`trainer.data.train_input_path`)."""
    text = json.dumps({"data": data_key, "settings": settings.identity(), "train_input": train_input}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_id(record: Dict[str, Any]) -> str:
    """The run id of a results record, derived from what the record holds (the id is never stored, so a
    record keeps its id when a setting is added or a speed-only one changes)."""
    settings = configs.TrainerSettings.from_custom_config(record["settings"])
    return run_id(record["data"]["key"], settings, record["train_input"])


def load(path: str) -> Study:
    """Reads and checks a study config (unknown keys, report kind, baseline, seeds, every run's flags)."""
    with open(path) as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as error:
            raise StudyError(f"{path}: not JSON: {error}") from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise StudyError(f"{path}: unknown key(s) {unknown}; valid: {sorted(_KEYS)}")
    missing = sorted({"title", "report", "variants", "baseline", "seeds"} - set(raw))
    if missing:
        raise StudyError(f"{path}: missing key(s) {missing}")
    if raw["report"] not in REPORT_KINDS:
        raise StudyError(f"{path}: unknown report {raw['report']!r}; valid: {', '.join(REPORT_KINDS)}")
    if raw["baseline"] not in raw["variants"]:
        raise StudyError(f"{path}: baseline {raw['baseline']!r} is not a variant ({', '.join(raw['variants'])})")
    seeds = raw["seeds"]
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise StudyError(f"{path}: seeds must be distinct integers, got {seeds}")
    sweep = {flag: [str(v) for v in values] for flag, values in raw.get("sweep", {}).items()}
    if any(not values for values in sweep.values()):
        raise StudyError(f"{path}: every swept flag needs at least one value, got {sweep}")
    study = Study(
        name=os.path.splitext(os.path.basename(path))[0], path=path, title=raw["title"], report=raw["report"],
        data_flags=[str(a) for a in raw.get("data", [])], run_flags=[str(a) for a in raw.get("flags", [])],
        variants={k: [str(a) for a in v] for k, v in raw["variants"].items()}, baseline=raw["baseline"],
        sweep=sweep, seeds=list(seeds), paper=raw.get("paper", {}), description=raw.get("description", ""),
        expect=raw.get("expect", {}))
    unknown_variants = sorted(set(study.expect) - set(study.variants))
    if unknown_variants or any(d not in (-1, 1) for e in study.expect.values() for d in e.values()):
        raise StudyError(f"{path}: expect names variants {sorted(study.expect)} with directions -1 or 1; "
                         f"unknown variants: {unknown_variants}")
    study.runs()            # every run's flags parse and validate
    data_config(study)      # and the shared data's
    return study
