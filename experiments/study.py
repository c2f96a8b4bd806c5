"""A study: one config file naming the data, the variants, a sweep and the seeds; expanded into runs.

    {"title": "...", "report": "beta_sweep",
     "data": ["--rows", "60000"],                      # generator / Transform flags, shared by every run
     "flags": ["--gradient-diagnostics"],              # Trainer flags common to every run
     "variants": {"BCE": ["--loss", "bce"], "Combined-Pair": ["--loss", "combined_pair"]},
     "baseline": "BCE",                                # paired differences are taken against it
     "sweep": {"--beta-pos": ["1.0", "0.1"]},          # every value of every swept flag, crossed
     "seeds": [1, 2, 3],                               # --train-seed of each run
     "seeds_at": {"--beta-pos=0.1": [1, 2, 3, 4]},     # other seeds at one sweep value (optional)
     "variant_flags_at": {"--beta-pos=0.1": {"Combined-Pair": ["--alpha", "0.7"]}},  # a variant's flags
                                                       # at one sweep value (optional), after its own
     "truth": true,                                    # also score the test split against the generator's
                                                       # true probabilities (experiments/truth.py)
     "notes": {"RQ1": "..."},                          # why a claim's result differs from the paper's
     "rule": {"variant": "Combined-Pair", "metric": "expected_auc", "at": "--beta-pos=0.1",
              "paper_lift": 0.0008},                   # a pre-registered decision rule (report "decisive")
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

REPORT_KINDS = ("beta_sweep", "alpha_sweep", "loss_table", "decisive")
DATA_SECTIONS = ("data", "transform")
RUN_SECTIONS = ("model", "loss", "train")
_KEYS = {"title", "report", "data", "flags", "variants", "baseline", "sweep", "seeds", "seeds_at", "paper",
         "description", "expect", "truth", "rule", "variant_flags_at", "notes"}
RULE_KEYS = {"variant", "metric", "at", "paper_lift"}
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
    seeds_at: Dict[str, List[int]] = dataclasses.field(default_factory=dict)
    truth: bool = False
    variant_flags_at: Dict[str, Dict[str, List[str]]] = dataclasses.field(default_factory=dict)
    notes: Dict[str, str] = dataclasses.field(default_factory=dict)  # claim name -> why it differs from the paper
    rule: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def rule_point(self) -> str:
        """The swept value the rule is decided at (`rule["at"]` is `flag=value`)."""
        return self.rule["at"].split("=", 1)[1]

    def seeds_for(self, point: Sequence[Tuple[str, str]]) -> List[int]:
        """The seeds run at a sweep point: `seeds_at`'s for one of its `flag=value`s, else `seeds`."""
        for flag, value in point:
            if f"{flag}={value}" in self.seeds_at:
                return self.seeds_at[f"{flag}={value}"]
        return self.seeds

    def expected(self, variant: str) -> Dict[str, int]:
        """metric -> the paper's direction (+1 up, -1 down) for `variant` against the baseline."""
        return self.expect.get(variant, DEFAULT_EXPECT)

    def runs(self) -> List[Run]:
        """Every (sweep point, seed, variant), in that order: a partial study has whole sweep points first, then
        whole seeds (every variant of a seed, so each finished seed is a paired comparison)."""
        out = []
        points = list(itertools.product(*[[(flag, v) for v in values] for flag, values in self.sweep.items()]))
        for point in points:
            for seed in self.seeds_for(point):
                for variant, variant_flags in self.variants.items():
                    at_point = [a for flag, value in point
                                for a in self.variant_flags_at.get(f"{flag}={value}", {}).get(variant, [])]
                    argv = self.run_flags + variant_flags + at_point + [a for pair in point for a in pair] + [
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


def _check_rule(path: str, raw: Dict[str, Any], points: set) -> None:
    """A "decisive" report needs a rule naming a variant, a metric, a swept value and the paper's lift, and the
    truth-scored metrics its tables read."""
    rule = raw.get("rule")
    if raw["report"] != "decisive":
        if rule is not None:
            raise StudyError(f"{path}: a rule is read by the 'decisive' report only, not {raw['report']!r}")
        return
    if not isinstance(rule, dict) or set(rule) != RULE_KEYS:
        raise StudyError(f"{path}: the decisive report needs a rule with keys {sorted(RULE_KEYS)}, got {rule}")
    if raw.get("truth") is not True:
        raise StudyError(f"{path}: the decisive report reads the truth-scored metrics: set \"truth\": true "
                         "(generator data only)")
    if rule["variant"] not in raw["variants"] or rule["variant"] == raw["baseline"]:
        raise StudyError(f"{path}: the rule's variant {rule['variant']!r} must be a variant other than the baseline")
    if rule["at"] not in points:
        raise StudyError(f"{path}: the rule's point {rule['at']!r} is not a swept value; valid: {sorted(points)}")
    if not isinstance(rule["paper_lift"], (int, float)):
        raise StudyError(f"{path}: the rule's paper_lift must be a number, got {rule['paper_lift']!r}")


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
    for seeds in [raw["seeds"]] + list(raw.get("seeds_at", {}).values()):
        if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
            raise StudyError(f"{path}: seeds must be distinct integers, got {seeds}")
    sweep = {flag: [str(v) for v in values] for flag, values in raw.get("sweep", {}).items()}
    if any(not values for values in sweep.values()):
        raise StudyError(f"{path}: every swept flag needs at least one value, got {sweep}")
    points = {f"{flag}={value}" for flag, values in sweep.items() for value in values}
    for key in ("seeds_at", "variant_flags_at"):
        unknown_points = sorted(set(raw.get(key, {})) - points)
        if unknown_points:
            raise StudyError(f"{path}: {key} names {unknown_points}, not swept values; valid: {sorted(points)}")
    for point, by_variant in raw.get("variant_flags_at", {}).items():
        if not set(by_variant) <= set(raw["variants"]):
            unknown_variants = sorted(set(by_variant) - set(raw["variants"]))
            raise StudyError(f"{path}: variant_flags_at[{point!r}] names {unknown_variants}, not variants "
                             f"({', '.join(raw['variants'])})")
    _check_rule(path, raw, points)
    study = Study(
        name=os.path.splitext(os.path.basename(path))[0], path=path, title=raw["title"], report=raw["report"],
        data_flags=[str(a) for a in raw.get("data", [])], run_flags=[str(a) for a in raw.get("flags", [])],
        variants={k: [str(a) for a in v] for k, v in raw["variants"].items()}, baseline=raw["baseline"],
        sweep=sweep, seeds=list(raw["seeds"]), paper=raw.get("paper", {}), description=raw.get("description", ""),
        expect=raw.get("expect", {}), seeds_at=raw.get("seeds_at", {}), truth=bool(raw.get("truth", False)),
        rule=raw.get("rule", {}), notes=raw.get("notes", {}),
        variant_flags_at={point: {v: [str(a) for a in f] for v, f in by_variant.items()}
                          for point, by_variant in raw.get("variant_flags_at", {}).items()})
    unknown_variants = sorted(set(study.expect) - set(study.variants))
    if unknown_variants or any(d not in (-1, 1) for e in study.expect.values() for d in e.values()):
        raise StudyError(f"{path}: expect names variants {sorted(study.expect)} with directions -1 or 1; "
                         f"unknown variants: {unknown_variants}")
    study.runs()            # every run's flags parse and validate
    data_config(study)      # and the shared data's
    return study
