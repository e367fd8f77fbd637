"""Expand a config of studies into cells and runs with stable, readable ids.

A study = workload + grid (cartesian) and/or rows (listed) of run options + fixed options
+ seeds + target. A *cell* is one point of the grid (a run spec without its seed); its
seeds train together in one job. Ids look like

    <study>/opt~sgd/lr~0.01/bs~64            (cell)
    <study>/opt~sgd/lr~0.01/bs~64/seed~0     (run folder with metrics.csv, steps.csv, run.json)

A *job* (one Snakemake job, one process, so imports and data loading are paid once) trains
the cells that share the values of the study's `pack_by` axes; its output folder is the
common prefix, e.g. `<study>/opt~sgd` with `pack_by: [optimizer]`. By default a job is one
cell (all its seeds); `pack_by: []` makes the whole study one job.

A cell whose resolved spec and seeds equal a cell of an earlier study is not trained twice:
the later study points at the earlier cell. Every error names the study and the key.
"""

from __future__ import annotations

import collections
import copy
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field

from sweepbench import SweepbenchError, atomic, rules, workloads
from sweepbench.data import local, registry
from sweepbench.plan import batch_cycle, stacks
from sweepbench.record import METRICS, BrokenRecord, load_record
from sweepbench.spec import OPTIONS, defaults, ignored, resolve

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schemas", "config.schema.yaml")
ABBREVIATIONS = {"optimizer": "opt", "batch_size": "bs", "schedule": "sched", "sampling": "samp",
                 "weight_decay": "wd", "accum_steps": "accum", "batch_schedule": "bsched",
                 "batch_cycle": "bcycle", "momentum": "mom", "world_size": "ws"}
# tasks: a SLURM job's tasks (sbatch --ntasks), one per data-parallel rank (srun starts them); on one
# machine the job spawns its ranks itself and tasks changes nothing (sweepbench.train.distributed)
DEFAULT_RESOURCES = {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpu": 0, "exclusive": False, "tasks": 1}
# Where a job goes on a SLURM cluster: study resource -> the SLURM executor plugin's resource
# (no default: unset means the profile's default-resources, else the cluster's default).
SLURM_RESOURCES = {"slurm_partition": "slurm_partition", "slurm_account": "slurm_account", "slurm_qos": "qos"}
SLURM_KEYS = tuple(SLURM_RESOURCES)


SMOKE_DATA_DIR = "resources/smoke"
SMOKE_RAW_DIR = "resources/smoke/raw"
SMOKE_REPORT_MARK = '<meta name="sweepbench-smoke" content="true">'  # in a smoke plan's report page (its <head>)
SMOKE_TRAIN = 16


def is_smoke(config: dict) -> bool:
    """`smoke: true` in the config, or `--config smoke=true` on the command line (a string there)."""
    return str(config.get("smoke", False)).lower() == "true"


def seeds_override(config: dict) -> list[int] | None:
    """The top-level `seeds` key: every study runs these seeds instead of its own (a baseline is
    made this way with more seeds than a normal run: `make baseline`). A list of integers, or on
    the command line `--config seeds=10-19` (a range, both ends included) or `seeds=3,5,8`."""
    value = config.get("seeds")
    if value is None:
        return None
    text = str(value).strip("[] ")
    if isinstance(value, list):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        seeds = list(value) if ok else []
    elif re.fullmatch(r"\d+\s*-\s*\d+", text):
        lo, hi = (int(t) for t in text.split("-"))
        seeds = list(range(lo, hi + 1))
    elif re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        seeds = [int(t) for t in text.split(",")]
    else:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise SweepbenchError(f"config error in key seeds: bad value {value!r}; allowed: a list of distinct "
                              f"integers >= 0, or on the command line a range such as 10-19 or a list such as 3,5,8")
    return seeds


def apply_smoke(spec: dict) -> dict:
    """`smoke: true` shrinks a run to about a second while keeping its study's grid and ids:
    prepared datasets come from tiny generated raw files (sweepbench.data.tinydata) in resources/smoke/,
    at most 16 training samples (batch sizes are clipped to them), 2 epochs and 2 steps,
    evaluation on 8 samples per split, noise-scale estimates from 2 small batches; the planner
    also keeps only a cell's first 2 seeds."""
    spec = dict(spec, data_dir=SMOKE_DATA_DIR, raw_dir=SMOKE_RAW_DIR, clip_batch_size=True,
                train_size=min(spec["train_size"] or SMOKE_TRAIN, SMOKE_TRAIN), epochs=min(spec["epochs"], 2),
                max_steps=min(spec["max_steps"] or 2, 2), eval_max_samples=8,
                gns_batches=2 if spec["gns"] else spec["gns_batches"])
    if spec["val_size"]:
        spec["val_size"] = min(spec["val_size"], 16)
    return spec


def load_schema() -> dict:
    """The config schema, with the target metrics filled in from sweepbench.record.METRICS and
    the stack modes from sweepbench.plan.stacks.MODES."""
    import yaml

    with open(SCHEMA_PATH) as f:
        schema = yaml.safe_load(f)
    schema["$defs"]["study"]["properties"]["target"]["properties"]["metric"]["enum"] = list(METRICS)
    stack = schema["$defs"]["study"]["properties"]["stack"]["oneOf"]
    stack[0]["enum"] = stack[1]["properties"]["mode"]["enum"] = [*stacks.MODES, False]  # YAML reads off as false
    return schema


def _numbers(value, where: str):
    """(key path, number) of every float in a nested mapping (the check settings)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _numbers(inner, f"{where}.{key}")
    elif isinstance(value, float):
        yield where, value


def validate_config(config: dict) -> None:
    """JSON-Schema validation; the first error is reported with its place in the config."""
    import jsonschema

    names = config.get("studies") if isinstance(config.get("studies"), dict) else {}
    bad = next((n for n in names if not isinstance(n, str)), "")
    if bad != "":  # YAML reads `1:` or `~:` as a number or null, which no schema pattern checks
        raise SweepbenchError(f"config error in key studies: study name {bad!r} is not text; allowed: names of "
                              "letters, digits, _ and - (quote a number: '1')")
    for key, value in _numbers(config.get("check"), "check"):   # JSON Schema's bounds let NaN through
        if not math.isfinite(value):
            raise SweepbenchError(f"config error in key {key}: {value!r} is not a finite number; allowed: a number "
                                  "in the range config/README.md gives (a NaN threshold would turn the check off)")
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        where = f"study {path[1]!r}, key {'.'.join(map(str, path[2:])) or '(study)'}" \
            if len(path) >= 2 and path[0] == "studies" else f"key {'.'.join(map(str, path)) or '(top level)'}"
        message = err.message
        if err.validator == "additionalProperties":
            message += f"; allowed: {', '.join(sorted(err.schema.get('properties', {})))}"
        if err.validator == "oneOf" and path[-1:] == ["stack"]:
            detail = [e.message for e in err.context if isinstance(err.instance, dict) and e.schema_path[0] == 1]
            message = (f"{err.instance!r} is not a stack setting{f' ({detail[0]})' if detail else ''}; "
                       f"allowed: {stacks.ALLOWED}")
        raise SweepbenchError(f"config error in {where}: {message}")


def value_slug(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "-".join(value_slug(v) for v in value) or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


PATH_PART = re.compile(r"[A-Za-z0-9._+=~-]{1,200}")  # one folder name of a run id (`key~value`: never "..")


PATH_AXES = ("data",)  # options whose values are paths: `/` becomes `+` in a run id (data~images+cats)


def path_slug(value) -> str:
    """A path's text as one folder name: its separators (and a CSV's `:label`) become `+`, a leading
    `./` goes."""
    text = str(value)
    text = text[2:] if text.startswith("./") else text
    return text.strip("/").replace("/", "+").replace(":", "+")


def cell_slug(axes: dict) -> str:
    """The cell's part of a run id, `<abbreviation>~<value>` per axis. A part that could leave its
    folder or confuse Snakemake (a value with `/`, `..`, `<...>`, spaces) is refused, naming it."""
    if not axes:
        return "default"
    parts = [f"{ABBREVIATIONS.get(k, k)}~{path_slug(v) if k in PATH_AXES else value_slug(v)}" for k, v in axes.items()]
    for (key, value), part in zip(axes.items(), parts):
        if not PATH_PART.fullmatch(part):
            raise SweepbenchError(f"bad {key} value {value!r} on an axis: it becomes the folder name {part!r} of its "
                                  "runs; allowed: values whose text uses only letters, digits and . _ + = ~ - "
                                  "(up to 200 characters), e.g. a fixed option instead of an axis for a path")
    return "/".join(parts)


MAX_RUNS = 100_000  # the most runs a plan may have unless the config sets `max_runs` (the default config: 245)


def check_plan_size(config: dict, sp: "StudyPlan", runs_before: int) -> int:
    """The runs planned so far with this study's (at most: equal cells are trained once), counted
    from its grid, rows and seeds before they are expanded; past the config's `max_runs` (default
    MAX_RUNS) the plan is refused, saying its size (a grid of 10^6 cells would otherwise plan for
    minutes without a word)."""
    grid, rows = sp.study.get("grid") or {}, sp.study.get("rows") or []
    total = runs_before + math.prod(len(values) for values in grid.values()) * max(1, len(rows)) * len(sp.seeds)
    limit = config.get("max_runs", MAX_RUNS)
    if total > limit:
        raise sp.error("keys grid/rows/seeds", f"the plan would have up to {total:,} runs, above max_runs "
                       f"{limit:,}; allowed: a smaller grid, or `max_runs: {total}` in the config if you mean it")
    return total


def _axes(study: dict) -> list[str]:
    """The study's axes in the order its points (_points) hold them: the rows' keys, then the grid's."""
    return list(dict.fromkeys([k for row in study.get("rows") or [] for k in row] + list(study.get("grid") or {})))


def _points(study: dict) -> list[dict]:
    grid = study.get("grid") or {}
    keys = list(grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]
    rows = study.get("rows")
    if rows:
        points = [{**row, **p} for row in rows for p in points]
    return points


def _check_keys(name: str, where: str, options: dict) -> None:
    for key in options:
        if key == "seed":
            raise SweepbenchError(f"config error in study {name!r}, key {where}.seed: "
                                  f"seeds go in the study's `seeds` list")
        if key not in OPTIONS or key == "workload":
            raise SweepbenchError(f"config error in study {name!r}, key {where}.{key}: unknown run option; "
                                  f"allowed: {', '.join(k for k in OPTIONS if k not in ('workload', 'seed'))}")


def data_entry(spec: dict):
    """The registry entry of the data a run of `spec` trains on (sweepbench.data.registry, or for local
    data the entry sweepbench.data.datasets.describe reads from its files); None for a user's loader,
    whose data are known only when it runs (the workflow's probe checks them before training)."""
    workload = workloads.effective(spec)
    source = workload.dataset
    if callable(source):
        return None
    if source in registry.DATASETS:
        return registry.DATASETS[source]
    key = json.dumps([spec.get(k) for k in DESCRIBE_KEYS])  # a study's cells often share their data
    if key not in _DESCRIBED:
        local.check_known(source, f"workload {workload.name}")
        _DESCRIBED[key] = local.describe(source, spec, workload.task, f"workload {workload.name}")
    return _DESCRIBED[key]


# what datasets.describe reads of a spec; its answers for one planning process, by those values
DESCRIBE_KEYS = ("data", "val_size", "train_size", "test_fraction", "data_seed", "synthetic", "data_dir", "workload")
_DESCRIBED: dict = {}


def _train_samples(spec: dict, entry) -> int | None:
    """Training samples a run of `spec` will have (sweepbench.data.registry), for the batch-size check
    (None: not known before the run); a val_size that leaves none is bad input."""
    if entry is None:
        return None
    dataset = entry.name
    held_out = (entry.val_default if spec["val_size"] is None else spec["val_size"]) if entry.val_from_train else 0
    if held_out >= entry.n_train:
        raise SweepbenchError(f"bad val_size {spec['val_size']}; allowed: 0..{entry.n_train - 1} (the training set "
                              f"of {dataset} has {entry.n_train} samples before validation is held out)")
    return entry.train_samples(spec)


@dataclass
class StudyPlan:
    """One study while it is planned: its settings, and what the plan holds of it so far."""

    name: str
    study: dict                    # the study's config
    fixed: dict                    # run options of every run (fixed, the target, the defaults)
    seeds: list
    resources: dict
    workload: object               # sweepbench.workloads.Workload
    axes: list                     # the pack_by axes first
    pack_by: list
    entry: dict = field(default_factory=dict)   # what plan()["studies"][name] will be
    cell_ids: set = field(default_factory=set)  # the cells in entry["cells"], to find one planned twice

    def error(self, where: str, message) -> SweepbenchError:
        return SweepbenchError(f"config error in study {self.name!r}, {where}: {message}")


def plan(config: dict) -> dict:
    """Validate `config` and expand it. Returns {"studies", "cells", "jobs", "config", "smoke"}.

    studies[name] = {workload, description, target, axes (names), cells (ids), runs (ids), seeds, reference}
    cells[id] = {study, job, dataset, resources, axes, runs: [{id, seed, spec}]}
    jobs[id] = {study, dataset, resources, batch_cycle_from, runs: [{dir (relative to the job folder), seed, spec,
    stack}]}; a job's run `<job>/<dir>` is a run of one of its cells, with the same spec (the same dict)
    config = the config as given; smoke = is_smoke(config), what every reader of the plan asks
    """
    if "run" in config and config["run"] in (None, "", []):  # --config run= arrives as None
        raise SweepbenchError("config error in key run: empty; allowed: study names separated by commas, "
                              f"from {', '.join(config.get('studies') or {}) or '(no studies)'}")
    validate_config(config)
    check_output_dirs(config)
    selected = selected_studies(config)
    _check_keys("(defaults)", "defaults", config.get("defaults") or {})
    the_plan = {"studies": {}, "cells": {}, "jobs": {}, "config": config, "smoke": is_smoke(config)}
    seen: dict = {}  # a cell's resolved spec and seeds -> its id (an equal cell is trained once)
    n_runs = 0
    for name in selected:
        sp = _study_plan(name, config, selected)
        n_runs = check_plan_size(config, sp, n_runs)
        for point in _points(sp.study):
            spec, same = _cell_spec(sp, point, config)
            _add_cell(the_plan, sp, spec, seen, same)
        # the study's own jobs: a cell it shares with an earlier study trains as that study planned it
        study_jobs = [j for j in dict.fromkeys(the_plan["cells"][c]["job"] for c in sp.entry["cells"])
                      if the_plan["jobs"][j]["study"] == name]
        try:
            stacks.plan_stacks(sp.study, [(j, the_plan["jobs"][j]) for j in study_jobs], data_entry)
        except SweepbenchError as err:
            raise sp.error("key stack", err) from None
        for job_id in study_jobs:
            check_tasks(sp, job_id, the_plan["jobs"][job_id])
            if the_plan["jobs"][job_id]["resources"].get("exclusive"):
                the_plan["jobs"][job_id]["runs"] = timed_order(the_plan["jobs"][job_id]["runs"])
        the_plan["studies"][name] = sp.entry
    check_slurm_keys({job["study"]: job["resources"] for job in the_plan["jobs"].values()})
    return the_plan


def timed_order(runs: list[dict]) -> list[dict]:
    """The order a job timed alone (resources.exclusive: a throughput study) trains its runs in: seed
    by seed over its cells (cell 1 seed 10, cell 2 seed 10, ..., cell 1 seed 11, ...), not cell by
    cell, so each cell's seeds spread over the job's whole time and a baseline's between-seed spread
    includes a shared machine's slower and faster spells. Measured on a VM whose speed switched by
    about 30% every 5-20 s: against a baseline of 10 consecutive seeds per cell, 9 of 10 unchanged
    runs were speed regressions; against one whose seeds spanned two times, none, with every 10%
    slowdown still caught (benchmarks/README.md, "Speed verdicts"). One seed per cell: unchanged."""
    rank = {seed: i for i, seed in enumerate(dict.fromkeys(r["seed"] for r in runs))}
    return sorted(runs, key=lambda r: rank[r["seed"]])  # stable: cells keep their order within a seed


def selected_studies(config: dict) -> list[str]:
    """The studies `run` names (--config run=a,b arrives as a string), or every study."""
    studies = config["studies"]
    selected = config.get("run") or list(studies)
    if isinstance(selected, str):
        selected = [name.strip() for name in selected.strip("[]").split(",") if name.strip()]
    for name in selected:
        if name not in studies:
            raise SweepbenchError(f"config error in key run: unknown study {name!r}; allowed: {', '.join(studies)}")
    return selected


def _plain(value) -> bool:
    """A value JSON keeps as it is: text, a number, a boolean, null, or a list of them."""
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


REFERENCE_RANGES = {"accuracy": (0.0, 1.0, "a number in [0, 1]"), "seconds": (0.0, math.inf, "a number >= 0"),
                    "loss": (-math.inf, math.inf, "a number")}  # by rules.reference_kind; nan (diverged) always


def _point_key(value):
    """A point's axis value, comparable across YAML spellings (16 and 16.0, a list and a tuple)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return tuple(_point_key(v) for v in value) if isinstance(value, list) else value


def _check_reference(name: str, reference: dict | None) -> None:
    """Every printed value of a study's `reference` rows is a number, nan or null (rules.reference_value)
    in its metric's range (REFERENCE_RANGES), and no point of the sweep has a metric in two rows."""
    metrics = list((reference or {}).get("metrics") or {})
    seen = {}
    for i, row in enumerate((reference or {}).get("rows") or []):
        where = f"config error in study {name!r}, key reference.rows[{i}]"
        for key, value in row.items():
            if not _plain(value):
                raise SweepbenchError(f"{where}.{key}: {value!r} is not a number, text or a list of them; allowed: "
                                      "the axis values and printed numbers of one point")
        point = tuple(sorted((k, _point_key(v)) for k, v in row.items() if k not in metrics))
        for metric in (m for m in metrics if m in row):
            try:
                value = rules.reference_value(row[metric])
            except ValueError as err:
                raise SweepbenchError(f"{where}.{metric}: {err}; allowed: a number, nan or null (empty)") from None
            low, high, allowed = REFERENCE_RANGES[rules.reference_kind(metric)]
            if not math.isnan(value) and not low <= value <= high:
                raise SweepbenchError(f"{where}.{metric}: {row[metric]!r} is out of range; allowed: {allowed}, nan or "
                                      "null (empty)")
            if (point, metric) in seen:
                raise SweepbenchError(f"{where}.{metric}: the point {dict(point) or '(no axis)'} has it in "
                                      f"reference.rows[{seen[point, metric]}] too; allowed: one value per point")
            seen[point, metric] = i


def _study_plan(name: str, config: dict, selected: list[str]) -> StudyPlan:
    """A study's checked settings: workload, option keys, target, seeds, resources, axes."""
    study = config["studies"][name]
    batch_cycle.check(name, study, selected, config)
    try:
        workload = workloads.get(study["workload"])
    except SweepbenchError as err:
        raise SweepbenchError(f"config error in study {name!r}, key workload: {err}") from None
    fixed = dict(study.get("fixed") or {})
    _check_keys(name, "fixed", fixed)
    _check_keys(name, "grid", study.get("grid") or {})
    for i, row in enumerate(study.get("rows") or []):
        _check_keys(name, f"rows[{i}]", row)
    _check_reference(name, study.get("reference"))
    target = study.get("target")
    if target:
        fixed.setdefault("target_metric", target["metric"])
        fixed.setdefault("target", float(target["value"]))
        if target.get("stop"):
            fixed.setdefault("stop_at_target", True)
    seeds = seeds_override(config) or study.get("seeds") or [0]
    repeated = sorted(s for s, n in collections.Counter(seeds).items() if n > 1)
    if repeated:
        raise SweepbenchError(f"config error in study {name!r}, key seeds: seed {repeated[0]} appears more than "
                              "once; allowed: distinct seeds (each is one run of every cell)")
    seeds = seeds[:2] if is_smoke(config) else seeds
    axes = _axes(study)  # every cell id names every axis
    pack_by = study.get("pack_by", axes)
    for axis in pack_by:
        if axis not in axes:
            raise SweepbenchError(f"config error in study {name!r}, key pack_by: {axis!r} is not an axis "
                                  f"of the study; allowed: {', '.join(axes) or '(none)'}")
    sp = StudyPlan(name, study, {**(config.get("defaults") or {}), **fixed}, seeds,
                   {**DEFAULT_RESOURCES, **(config.get("resources") or {}), **(study.get("resources") or {})},
                   workload, [a for a in axes if a in pack_by] + [a for a in axes if a not in pack_by], pack_by)
    sp.entry = {"workload": workload.name, "description": study.get("description", workload.description),
                "target": None, "axes": sp.axes, "cells": [], "runs": [], "seeds": seeds,
                "reference": study.get("reference"),  # the seed's printed numbers (sweepbench.aggregate.reproduction)
                "steps_from": study.get("steps_from")}  # data-parallel studies: where steps to target come from
    source = study.get("steps_from")
    if source is not None and source not in selected:
        raise SweepbenchError(f"config error in study {name!r}, key steps_from: {source!r} is not a study of this "
                              f"run; allowed: {', '.join(selected)}")
    return sp


def _cell_spec(sp: StudyPlan, point: dict, config: dict) -> tuple[dict, dict]:
    """One cell's resolved run spec (its first seed), checked against the workload's data, and its
    same_runs_form."""
    try:
        label = cell_slug(point)  # its runs' folder names, checked first
    except SweepbenchError as err:
        raise sp.error("keys grid/rows", err) from None
    options = {**sp.fixed, **point, "workload": sp.workload.name}
    if not sp.resources["gpu"] and options.get("device", "auto") == "auto":
        options["device"] = "cpu"  # a job that asks for no GPU must not take one (resource accounting)
    try:
        spec = resolve(_without_idle_fixed({**options, "seed": sp.seeds[0], "threads": sp.resources["threads"]},
                                           point, sp.workload))
        spec = apply_smoke(spec) if is_smoke(config) else spec
        entry = data_entry(spec)
        n = _train_samples(spec, entry)
    except SweepbenchError as err:
        raise sp.error(f"cell {label}", err) from None
    bs = spec["batch_size"]
    if n is not None and bs != "full" and bs > n and not spec["clip_batch_size"]:
        raise sp.error("key batch_size", f"{bs} is larger than the training set of {sp.workload.name} ({n} "
                                         f"samples); allowed: 1..{n} or full")
    sp.entry["target"] = {"metric": spec["target_metric"], "value": spec["target"]}
    return spec, same_runs_form(spec, entry)


def _without_idle_fixed(options: dict, point: dict, workload) -> dict:
    """`options` without the study's fixed values that do nothing in this cell (spec.ignored: a fixed
    clr_gamma in a study whose rows are triangular and exp_range schedules acts on the exp_range cells
    only), so that cell holds the default; a grid or row value that does nothing is refused (resolve)."""
    base = {**defaults(), **workload.defaults}
    try:
        idle = ignored({**base, **options}, base)
    except (SweepbenchError, KeyError, TypeError):  # a bad value: resolve names it
        return options
    return {k: v for k, v in options.items() if k not in idle or k in point or not _fits(k, v)}


def _fits(key: str, value) -> bool:
    """Whether `value` is one option `key` accepts (a bad one is named by resolve, acting or not)."""
    try:
        OPTIONS[key].check(value)
    except SweepbenchError:
        return False
    return True


def same_runs_form(spec: dict, entry) -> dict:
    """The spec with equal values written one way, for the repeated-cell check: the workload's own model
    named or not (`model: [mlp, null]`), a CSV's default label column named or not (`a.csv` and
    `a.csv:label`), a local path however spelled (`a.csv`, `./a.csv`, its absolute path), a
    train_size at or above the data's training samples and none (all of them), a float option's
    int (`lr: [1, 1.0]`), null where it trains as 0 (`reg_lambda: [null, 0]`, Option.null_is_zero)."""
    form = {k: _as_number(k, v) for k, v in spec.items()}
    form.update({k: 0.0 for k, o in OPTIONS.items() if o.null_is_zero and form.get(k) is None})
    workload = workloads.get(spec["workload"])
    if form["model"] is not None and form["model"] == workloads.label(workload.model):
        form["model"] = None
    if form["data"] is not None and _data_form(form["data"]) == _data_form(workloads.label(workload.dataset)):
        form["data"] = None
    form["data"] = _data_form(form["data"])
    if registry.DATASETS.get(getattr(entry, "name", None)) is entry and spec["train_size"] \
            and spec["train_size"] >= entry.train_samples({**spec, "train_size": 0}):
        form["train_size"] = 0
    return form


def _data_form(data):
    """A data value written one way: a local path resolved (`a.csv`, `./a.csv`, its absolute path, a
    link to it: one file) and without its default label column; a dataset name or None as it is."""
    if not isinstance(data, str) or data in registry.DATASETS:
        return data
    path, column = local.split_label(data)
    path = os.path.realpath(os.path.expanduser(path))  # as the loader reads it (~ expanded)
    return path if column in (None, local.DEFAULT_LABEL) else f"{path}:{column}"


def _add_cell(the_plan: dict, sp: StudyPlan, spec: dict, seen: dict, same: dict | None = None) -> None:
    """Put a cell and its runs in the plan (in its job), or point the study at an equal cell
    that an earlier study already planned (equal in `same`, its same_runs_form)."""
    same = spec if same is None else same
    key = json.dumps({k: _as_number(k, v) for k, v in same.items() if k != "seed"}, sort_keys=True) \
        + json.dumps(sp.seeds) \
        + json.dumps(sp.study.get("batch_cycle_from")) \
        + json.dumps(sp.resources["exclusive"])  # a derived cycle, or a run timed alone, is not the same cell
    cells, point = the_plan["cells"], {k: spec[k] for k in sp.axes}
    if key not in seen:
        packed = {k: v for k, v in point.items() if k in sp.pack_by}
        rest = {k: v for k, v in point.items() if k not in sp.pack_by}
        job_id = f"{sp.name}/{cell_slug(packed) if packed else 'all'}"
        cell_id = f"{job_id}/{cell_slug(rest)}" if rest else job_id
        if cell_id in cells:
            raise SweepbenchError(f"config error in study {sp.name!r}: two cells share the id {cell_id}")
        seen[key] = cell_id
        runs = [{"id": f"{cell_id}/seed~{seed}", "seed": seed, "spec": dict(spec, seed=seed)} for seed in sp.seeds]
        dataset = workloads.label(workloads.effective(spec).dataset)
        cells[cell_id] = {"study": sp.name, "job": job_id, "dataset": dataset,
                          "resources": sp.resources, "axes": point, "runs": runs}
        job = the_plan["jobs"].setdefault(job_id, {"study": sp.name, "dataset": dataset,
                                                   "resources": sp.resources, "runs": [],
                                                   "batch_cycle_from": sp.study.get("batch_cycle_from")})
        if job["dataset"] != dataset:
            raise sp.error("key pack_by", f"job {job_id} would train on {job['dataset']} and {dataset}; allowed: "
                                          "pack_by naming the data axis (a job's runs share their data)")
        job["runs"] += [{"dir": r["id"][len(job_id) + 1:], "seed": r["seed"], "spec": r["spec"]} for r in runs]
    if seen[key] in sp.cell_ids:  # its runs would be tabulated twice
        if the_plan["smoke"]:  # smoke shrinks epochs, train_size, ...: distinct cells may become one, kept once
            return
        raise sp.error("keys grid/rows", f"two points give the same runs, cell {seen[key]} (a repeated grid value or "
                       "row, or values that resolve alike); allowed: each cell once")
    sp.cell_ids.add(seen[key])
    sp.entry["cells"].append(seen[key])
    sp.entry["runs"] += [r["id"] for r in cells[seen[key]]["runs"]]


def _as_number(key: str, value):
    """A float option's value as a float, so that `lr: [1, 1.0]` is seen as one cell twice (YAML reads
    1 as an int); the spec itself keeps what the user wrote."""
    if key in OPTIONS and OPTIONS[key].kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _strict_loader():
    """yaml.SafeLoader that refuses a mapping with a repeated key (YAML would keep the last one:
    a study silently dropped); merge keys (`<<: *anchor`) work as in YAML, an own key overriding a
    merged one."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged by SafeLoader, keys may repeat
                    continue
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise SweepbenchError(f"a key that is a {type(key).__name__} (line {key_node.start_mark.line + 1});"
                                          " allowed: names, numbers")
                if key in seen:
                    raise SweepbenchError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); "
                                          "allowed: each key once per mapping")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def check_tasks(sp: StudyPlan, job_id: str, job: dict) -> None:
    """A job of `tasks` > 1 runs one SLURM task per data-parallel rank: every run of it has
    world_size = tasks, the job's threads are shared out evenly among the tasks (sbatch
    --cpus-per-task = threads / tasks), and it has no GPU or one per task (--gpus-per-task=1)."""
    res = job["resources"]
    tasks = res["tasks"]
    if tasks == 1:
        return
    sizes = sorted({r["spec"]["world_size"] for r in job["runs"]})
    if sizes != [tasks]:
        other = next(w for w in sizes if w != tasks)
        raise sp.error("key resources.tasks", f"{tasks} tasks, but job {job_id} has a run with world_size {other}; "
                                              f"allowed: 1, or the world_size of every run (one SLURM task per rank)")
    if res["threads"] % tasks:
        raise sp.error("key resources.threads", f"{res['threads']} threads cannot be shared out evenly among "
                                                f"{tasks} tasks; allowed: a multiple of tasks ({tasks}, {2 * tasks}, "
                                                "...): each task gets threads / tasks CPUs")
    if res["gpu"] not in (0, tasks):
        raise sp.error("key resources.gpu", f"{res['gpu']} GPUs for {tasks} tasks; allowed: 0, or {tasks} (one GPU "
                                            "per task and rank)")


def check_slurm_keys(resources_by_study: dict) -> None:
    """A SLURM placement key (partition, account, QoS) is set for every study that trains a job,
    or for none: a training job without it would silently go to the cluster's default instead
    of the profile's (the workflow's train rule sets the key for all its jobs or for none)."""
    for key in SLURM_KEYS:
        having = [s for s, res in resources_by_study.items() if key in res]
        lacking = [s for s, res in resources_by_study.items() if key not in res]
        if having and lacking:
            raise SweepbenchError(f"config error in study {lacking[0]!r}, key resources.{key}: missing while study "
                                  f"{having[0]!r} sets it; allowed: set it in every study, or once in the "
                                  f"config's top-level `resources`")


def load_config(path: str) -> dict:
    """A config file, read strictly: not UTF-8, not YAML, repeated keys and a non-mapping are errors."""
    import yaml

    path = os.fspath(path)  # Snakemake's configfiles are PosixPath: messages name the path, not its repr
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.load(f, Loader=_strict_loader())
    except OSError as err:
        raise SweepbenchError(f"cannot read config {path!r}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise SweepbenchError(f"config {path!r} is not UTF-8 text (byte {err.start}); allowed: a UTF-8 YAML file") \
            from None
    except yaml.YAMLError as err:
        raise SweepbenchError(f"config {path!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    except SweepbenchError as err:
        raise SweepbenchError(f"config {path!r}: {err}") from None
    except RecursionError:
        raise _too_deep(path) from None
    if not isinstance(config, dict):
        raise SweepbenchError(f"config {path!r} must be a mapping with a `studies` key")
    if expanded_size(config) > MAX_CONFIG_NODES:
        raise SweepbenchError(f"config {path!r} has more than {MAX_CONFIG_NODES:,} values once its YAML aliases are "
                              "expanded (an alias bomb?); allowed: a config of that size or less")
    try:
        return copy.deepcopy(config)
    except RecursionError:
        raise _too_deep(path) from None


def _too_deep(path: str) -> SweepbenchError:
    """A config nested so deep (thousands of lists in lists) that reading it exhausts Python's stack."""
    return SweepbenchError(f"config {path!r} nests its values too deep to read (RecursionError); allowed: a config "
                           "nested a few levels deep")


MAX_CONFIG_NODES = 1_000_000  # values of a config with its aliases expanded (the largest shipped: 433)


def expanded_size(obj, budget: int = MAX_CONFIG_NODES + 1) -> int:
    """How many values `obj` has with every shared (aliased) part counted each time it appears,
    counted up to `budget` only: a billion-laughs config stops here in milliseconds, instead of
    expanding in the plan or an error message until memory runs out."""
    count, todo = 0, [obj]
    while todo and count < budget:
        item = todo.pop()
        count += 1
        if isinstance(item, dict):
            todo += list(item.keys()) + list(item.values())
        elif isinstance(item, list):
            todo += item
    return count


def check_output_dirs(config: dict) -> None:
    """results_dir and report_dir: a relative path inside the working folder, or an explicit
    absolute path the user names (never empty, never the filesystem root)."""
    for key, default in (("results_dir", "results"), ("report_dir", "report")):
        value = config.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise SweepbenchError(f"config error in key {key}: {value!r}; allowed: a folder such as {default!r}")
        path = os.path.normpath(value)
        if path == os.sep or (os.path.isabs(path) and os.path.dirname(path) == path):
            raise SweepbenchError(f"config error in key {key}: {value!r} is the filesystem root; allowed: a "
                                  f"folder such as {default!r}")
        if not os.path.isabs(path) and (path == os.curdir or path == os.pardir or path.startswith(os.pardir + os.sep)):
            raise SweepbenchError(f"config error in key {key}: {value!r} is not a folder inside the working "
                                  f"folder; allowed: a relative folder such as {default!r}, or an absolute path")


# What the workflow writes directly in its results_dir (results/<entry>), declared once; with
# `sweepbench export tensorboard`'s default --out and `make reproduce`'s folder. Hidden names
# (.gitkeep, which this repository tracks there; .DS_Store) are no one's output and always pass.
RESULTS_ENTRIES = ("plan.json", "runs", "tables", "check", "logs", "benchmarks", "specs", "manifests", "probes",
                   "history.csv", "tensorboard", "reproduce")


def check_results_folder(results_dir: str) -> None:
    """A results_dir that holds no plan.json (no sweepbench workflow started there) holds nothing but
    RESULTS_ENTRIES and hidden files: pointed at a user's folder (a home folder, a project holding its own logs/ or
    specs/), the workflow's job logs, specs, manifests, probes and benchmark files would be written in
    among the user's, some over files of the same name. Refused (one line, before any job) naming
    up to three entries; a results folder the workflow started is its own, whatever a user adds."""
    if os.path.isfile(os.path.join(results_dir, "plan.json")) or not os.path.isdir(results_dir):
        return
    foreign = sorted(n for n in os.listdir(results_dir) if n not in RESULTS_ENTRIES and not n.startswith("."))
    if foreign:
        raise SweepbenchError(f"config error in key results_dir: {results_dir!r} holds {', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''} and no plan.json, so it is not a sweepbench "
                              "results folder; allowed: a new or empty folder, or one a sweepbench workflow wrote")


def check_smoke_results(config: dict) -> None:
    """A smoke run never replaces a real sweep's records or report: refused (one line, before any
    job) when its results_dir holds run records of a real sweep, told by its plan.json (not a smoke
    plan) or, with no plan, by a record that was not trained on the smoke data, or when its
    report_dir holds a report page without SMOKE_REPORT_MARK (a real sweep's, or an older
    sweepbench's). Called by the workflow when it starts; `plan()` itself reads no files."""
    if not is_smoke(config):
        return
    report = os.path.join(config.get("report_dir", "report"), "index.html")
    if _real_report(report):
        raise SweepbenchError(f"config error in key smoke: true, but {report} is a real sweep's report that the "
                              "smoke report would replace; allowed: smoke=true with report_dir=report-smoke (or "
                              "another folder)")
    results = config.get("results_dir", "results")
    plan_path, runs = os.path.join(results, "plan.json"), os.path.join(results, "runs")
    if not os.path.isdir(runs) or not os.listdir(runs):
        return
    real_plan = False
    if os.path.isfile(plan_path):
        try:
            real_plan = not read_plan(plan_path)["smoke"]
        except SweepbenchError:  # a plan of an older sweepbench: its records are real as far as anyone knows
            real_plan = True
    if real_plan or _real_record(runs):
        raise SweepbenchError(f"config error in key smoke: true, but {results}/ holds a real sweep's records that "
                              "smoke runs would replace; allowed: smoke=true with results_dir=results-smoke "
                              "report_dir=report-smoke (or another folder)")


def _real_report(index_html: str) -> bool:
    """Whether a report page is there that is not a smoke report (it lacks SMOKE_REPORT_MARK)."""
    try:
        with open(index_html, "rb") as f:
            return SMOKE_REPORT_MARK.encode() not in f.read()
    except FileNotFoundError:
        return False
    except OSError:  # a folder, unreadable: it may be real
        return True


def _real_record(runs_dir: str) -> bool:
    """Whether the first run record found under runs_dir was trained on real data (not SMOKE_DATA_DIR)."""
    for parent, _, files in os.walk(runs_dir):
        if "run.json" in files:
            try:
                return load_record(parent).spec.get("data_dir") != SMOKE_DATA_DIR
            except BrokenRecord:
                return True  # unreadable: it may be real
    return False


def write_job_specs(the_plan: dict, specs_dir: str) -> int:
    """<specs_dir>/<job>.json for every job: its runs, what `sweepbench train-pack --runs-file`
    reads. Only files whose content changed are rewritten (atomically), so one call at the
    start of a workflow costs about a second for 10,000 jobs. Returns how many were written."""
    written = 0
    for job_id, job in the_plan["jobs"].items():
        path = os.path.join(specs_dir, f"{job_id}.json")
        text = json.dumps(job["runs"], indent=1)
        try:
            with open(path) as f:
                if f.read() == text:
                    continue
        except OSError:
            pass
        atomic.write_file(path, text)
        written += 1
    return written


# results/plan.json: the plan as plan() returns it, with each run spec stored once, in its cell's
# run; a job's run keeps {dir, seed, stack} and trains the spec of run `<job>/<dir>`.
PLAN_KEYS = {"studies": dict, "cells": dict, "jobs": dict, "config": dict, "smoke": bool}
PLAN_ALLOWED = "the plan.json the workflow writes (or `sweepbench plan --json > plan.json`)"


def _check_top(the_plan, where: str) -> None:
    """The plan is a mapping with each of PLAN_KEYS, of its type."""
    if not isinstance(the_plan, dict):
        raise SweepbenchError(f"plan {where!r} is a JSON {type(the_plan).__name__}, not an object; "
                              f"allowed: {PLAN_ALLOWED}")
    missing = [key for key in PLAN_KEYS if key not in the_plan]
    if missing:
        raise SweepbenchError(f"plan {where!r} lacks {', '.join(f'`{key}`' for key in missing)}; allowed: "
                              f"{PLAN_ALLOWED}, with {', '.join(PLAN_KEYS)}")
    for key, kind in PLAN_KEYS.items():
        value = the_plan[key]
        if not isinstance(value, kind):
            shown = repr(value) if len(repr(value)) <= 40 else f"a {type(value).__name__}"
            raise SweepbenchError(f"plan {where!r}: `{key}` is {shown}; allowed: "
                                  f"{'true or false' if kind is bool else 'a mapping'}")


def _run_specs(the_plan: dict) -> dict:
    """{run id: spec} of every cell's runs (where plan.json keeps the specs)."""
    return {run["id"]: run["spec"] for cell in the_plan["cells"].values() for run in cell["runs"]}


def _check_study_links(the_plan: dict, where: str) -> None:
    """Every study's cells and runs are in `cells`."""
    specs = _run_specs(the_plan)
    for name, study in the_plan["studies"].items():
        lost = [c for c in study["cells"] if c not in the_plan["cells"]] + [r for r in study["runs"] if r not in specs]
        if lost:
            raise SweepbenchError(f"plan {where!r}: study {name!r} names {lost[0]!r}, which is no cell or run of "
                                  f"the plan; allowed: {PLAN_ALLOWED}")


def _check_job_links(the_plan: dict, where: str) -> None:
    """Every job's run `<job>/<dir>` is a cell's run with the same spec (so plan.json can store that
    spec once; read_plan's _memory_form makes it so when it reads)."""
    specs = _run_specs(the_plan)
    for job_id, job in the_plan["jobs"].items():
        for run in job["runs"]:
            run_id = f"{job_id}/{run['dir']}"
            if run_id not in specs or specs[run_id] != run["spec"]:
                raise SweepbenchError(f"plan {where!r}: job {job_id!r} run {run['dir']!r} is not cell run {run_id!r} "
                                      f"with the same spec; allowed: {PLAN_ALLOWED}")


def _malformed(check, the_plan, where: str) -> None:
    """Run a check of a plan's links; a plan too broken to walk is one line too."""
    try:
        check(the_plan, where)
    except (KeyError, TypeError, AttributeError) as err:
        raise SweepbenchError(f"plan {where!r} is malformed ({type(err).__name__}: {err}); "
                              f"allowed: {PLAN_ALLOWED}") from None


def check_plan(the_plan, where: str) -> None:
    """A plan as plan() returns it, or a one-line SweepbenchError naming `where`: PLAN_KEYS, and
    the studies, cells and jobs pointing at each other (_check_study_links, _check_job_links)."""
    _check_top(the_plan, where)
    _malformed(_check_study_links, the_plan, where)
    _malformed(_check_job_links, the_plan, where)


def _file_form(the_plan: dict) -> dict:
    """What plan.json holds: the plan without its jobs' run specs (each is its cell run's spec)."""
    jobs = {job_id: {**job, "runs": [{k: v for k, v in run.items() if k != "spec"} for run in job["runs"]]}
            for job_id, job in the_plan["jobs"].items()}
    return {**the_plan, "jobs": jobs}


def _memory_form(stored: dict, where: str) -> dict:
    """plan.json's content -> the plan as plan() returned it: each job run gets its cell run's spec
    (the same dict, as in plan()), placed after `seed` as plan() places it."""
    specs, jobs = _run_specs(stored), {}
    for job_id, job in stored["jobs"].items():
        runs = []
        for run in job["runs"]:
            spec = specs.get(f"{job_id}/{run['dir']}")
            if spec is None or "spec" in run:
                what = "holds a spec" if spec is not None else "is no run of a cell"
                raise SweepbenchError(f"plan {where!r}: job {job_id!r} run {run['dir']!r} {what}; allowed: "
                                      f"{PLAN_ALLOWED}, where a job's run <dir> trains cell run <job>/<dir>")
            runs.append({"dir": run["dir"], "seed": run["seed"], "spec": spec,
                         **{k: v for k, v in run.items() if k not in ("dir", "seed")}})
        jobs[job_id] = {**job, "runs": runs}
    return {**stored, "jobs": jobs}


def plan_json(the_plan: dict, where: str = "(plan)") -> str:
    """The text of plan.json for `the_plan` (as plan() returns it), checked like read_plan checks
    what it reads (check_plan): each run spec once, in its cell's run."""
    check_plan(the_plan, where)
    try:
        return json.dumps(_file_form(the_plan), indent=1)
    except (TypeError, ValueError) as err:
        raise SweepbenchError(f"plan {where!r}: {err}; allowed: JSON values in the config") from None


def write_plan(the_plan: dict, path: str) -> str:
    """Write `the_plan` (as plan() returns it) to `path` atomically as plan_json, recorded in its
    folder's list of what sweepbench wrote (atomic.write_own: a user's plan.json is refused); returns `path`."""
    folder, name = os.path.split(os.path.abspath(path))
    atomic.write_own(folder, {name: plan_json(the_plan, path)}, "plan file")
    return path


def plan_is_written(the_plan: dict, path: str) -> bool:
    """Whether `path` holds exactly plan_json(the_plan): the workflow removes a plan.json that does
    not (written for another config, by an older sweepbench, or by another clone sharing the
    results folder), since Snakemake re-runs write_plan on a changed config only while its own
    metadata (.snakemake/, which `make clean` removes) remembers the old one."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read() == plan_json(the_plan, path)
    except (OSError, UnicodeDecodeError):
        return False


def read_plan(path: str) -> dict:
    """results/plan.json back as plan() returned it (see write_plan), checked as check_plan checks
    (the job links by _memory_form), or a one-line SweepbenchError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
    except OSError as err:
        raise SweepbenchError(f"cannot read plan {path!r}: {err.strerror}; allowed: {PLAN_ALLOWED}") from None
    except ValueError as err:
        raise SweepbenchError(f"plan {path!r} is not valid JSON ({err}); allowed: {PLAN_ALLOWED}") from None
    _check_top(stored, path)
    try:
        the_plan = _memory_form(stored, path)  # links each job run to its cell run, or says why not
    except (KeyError, TypeError, AttributeError) as err:
        raise SweepbenchError(f"plan {path!r} is malformed ({type(err).__name__}: {err}); "
                              f"allowed: {PLAN_ALLOWED}") from None
    _malformed(_check_study_links, the_plan, path)
    return the_plan
