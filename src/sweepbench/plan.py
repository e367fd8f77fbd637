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

import copy
import itertools
import json
import os
import re

from sweepbench import SweepbenchError
from sweepbench.spec import DEFAULTS, check_batchable, resolve

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schemas", "config.schema.yaml")
ABBREVIATIONS = {"optimizer": "opt", "batch_size": "bs", "schedule": "sched", "sampling": "samp",
                 "weight_decay": "wd", "accum_steps": "accum", "batch_schedule": "bsched",
                 "batch_cycle": "bcycle", "momentum": "mom"}
DEFAULT_RESOURCES = {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpu": 0, "exclusive": False}
# Training samples of each dataset before val_size / train_size (for the batch-size check).
TRAIN_SAMPLES = {"linreg": 100, "logreg2d": 500, "digits": 1797 - 1797 // 5, "mnist": 60000, "fmnist": 60000}
DIGITS_TEST = 1797 // 5  # sweepbench.datasets._digits: test 20%, validation 20% unless val_size says otherwise


SMOKE_DATA_DIR = "resources/smoke"
SMOKE_RAW_DIR = "resources/smoke/raw"
SMOKE_TRAIN = 32


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
    image data come from tiny generated IDX files (sweepbench.tinydata) in resources/smoke/,
    at most 32 training samples (batch sizes are clipped to them), 2 epochs and 2 steps,
    evaluation on 16 samples per split; the planner also keeps only a cell's first 2 seeds."""
    spec = dict(spec, data_dir=SMOKE_DATA_DIR, raw_dir=SMOKE_RAW_DIR, clip_batch_size=True,
                train_size=min(spec["train_size"] or SMOKE_TRAIN, SMOKE_TRAIN), epochs=min(spec["epochs"], 2),
                max_steps=min(spec["max_steps"] or 2, 2), eval_max_samples=16)
    if spec["val_size"]:
        spec["val_size"] = min(spec["val_size"], 16)
    return spec


def load_schema() -> dict:
    import yaml

    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def validate_config(config: dict) -> None:
    """JSON-Schema validation; the first error is reported with its place in the config."""
    import jsonschema

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
        raise SweepbenchError(f"config error in {where}: {message}")


def value_slug(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "-".join(value_slug(v) for v in value) or "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cell_slug(axes: dict) -> str:
    if not axes:
        return "default"
    return "/".join(f"{ABBREVIATIONS.get(k, k)}~{value_slug(v)}" for k, v in axes.items())


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
            raise SweepbenchError(f"config error in study {name!r}, key {where}.seed: seeds go in the study's `seeds` list")
        if key not in DEFAULTS or key == "workload":
            raise SweepbenchError(f"config error in study {name!r}, key {where}.{key}: unknown run option; "
                                  f"allowed: {', '.join(k for k in DEFAULTS if k not in ('workload', 'seed'))}")


def _train_samples(spec: dict, dataset: str) -> int:
    n = TRAIN_SAMPLES[dataset]
    if dataset in ("mnist", "fmnist"):
        n -= spec["val_size"] or 0
    elif dataset == "digits":
        n -= DIGITS_TEST if spec["val_size"] is None else spec["val_size"]
    return min(n, spec["train_size"]) if spec["train_size"] else n


def plan(config: dict) -> dict:
    """Validate `config` and expand it. Returns {"studies": {...}, "cells": {...}}.

    studies[name] = {workload, description, target, axes (names), cells (ids), runs (ids)}
    cells[id] = {study, job, dataset, resources, axes, runs: [{id, seed, spec}]}
    jobs[id] = {study, dataset, resources, runs: [{dir (relative to the job folder), seed, spec}]}
    """
    validate_config(config)
    from sweepbench.workloads import WORKLOADS

    selected = config.get("run") or list(config["studies"])
    if isinstance(selected, str):  # --config run=a,b (or run=[a,b]) arrives as a string
        selected = [name.strip() for name in selected.strip("[]").split(",") if name.strip()]
    for name in selected:
        if name not in config["studies"]:
            raise SweepbenchError(f"config error in key run: unknown study {name!r}; "
                                  f"allowed: {', '.join(config['studies'])}")
    base = config.get("defaults") or {}
    _check_keys("(defaults)", "defaults", base)
    studies, cells, jobs, seen = {}, {}, {}, {}
    for name in selected:
        study = config["studies"][name]
        if study["workload"] not in WORKLOADS:
            raise SweepbenchError(f"config error in study {name!r}, key workload: unknown workload "
                                  f"{study['workload']!r}; allowed: {', '.join(WORKLOADS)}")
        fixed = dict(study.get("fixed") or {})
        _check_keys(name, "fixed", fixed)
        _check_keys(name, "grid", study.get("grid") or {})
        for i, row in enumerate(study.get("rows") or []):
            _check_keys(name, f"rows[{i}]", row)
        target = study.get("target")
        if target:
            fixed.setdefault("target_metric", target["metric"])
            fixed.setdefault("target", float(target["value"]))
            if target.get("stop"):
                fixed.setdefault("stop_at_target", True)
        seeds = seeds_override(config) or study.get("seeds") or [0]
        if is_smoke(config):
            seeds = seeds[:2]
        resources = {**DEFAULT_RESOURCES, **(study.get("resources") or {})}
        workload = WORKLOADS[study["workload"]]
        entry = {"workload": workload.name, "description": study.get("description", workload.description),
                 "target": None, "axes": [], "cells": [], "runs": [], "seeds": seeds}
        points = _points(study)
        axes = list(dict.fromkeys(k for p in points for k in p))  # every cell id names every axis
        pack_by = study.get("pack_by", axes)
        for axis in pack_by:
            if axis not in axes:
                raise SweepbenchError(f"config error in study {name!r}, key pack_by: {axis!r} is not an axis "
                                      f"of the study; allowed: {', '.join(axes) or '(none)'}")
        axes = [a for a in axes if a in pack_by] + [a for a in axes if a not in pack_by]
        for point in points:
            options = {**base, **fixed, **point, "workload": workload.name}
            if not resources["gpu"] and options.get("device", "auto") == "auto":
                options["device"] = "cpu"  # a job that asks for no GPU must not take one (resource accounting)
            try:
                spec = resolve({**options, "seed": seeds[0], "threads": resources["threads"]})
            except SweepbenchError as err:
                raise SweepbenchError(f"config error in study {name!r}, cell {cell_slug(point)}: {err}") from None
            if is_smoke(config):
                spec = apply_smoke(spec)
            bs = spec["batch_size"]
            n = _train_samples(spec, workload.dataset)
            if bs != "full" and bs > n and not spec["clip_batch_size"]:
                raise SweepbenchError(f"config error in study {name!r}, key batch_size: {bs} is larger than the "
                                      f"training set of {workload.name} ({n} samples); allowed: 1..{n} or full")
            entry["axes"] = axes
            point = {k: spec[k] for k in axes}
            entry["target"] = {"metric": spec["target_metric"], "value": spec["target"]}
            key = json.dumps({k: v for k, v in spec.items() if k != "seed"}, sort_keys=True) + json.dumps(seeds)
            if key in seen:
                cell_id = seen[key]
            else:
                packed = {k: v for k, v in point.items() if k in pack_by}
                rest = {k: v for k, v in point.items() if k not in pack_by}
                job_id = f"{name}/{cell_slug(packed) if packed else 'all'}"
                cell_id = f"{job_id}/{cell_slug(rest)}" if rest else job_id
                if cell_id in cells:
                    raise SweepbenchError(f"config error in study {name!r}: two cells share the id {cell_id}")
                seen[key] = cell_id
                runs = []
                for seed in seeds:
                    run_spec = dict(spec, seed=seed)
                    runs.append({"id": f"{cell_id}/seed~{seed}", "seed": seed, "spec": run_spec})
                cells[cell_id] = {"study": name, "job": job_id, "dataset": workload.dataset,
                                  "resources": resources, "axes": point, "runs": runs}
                if study.get("batch_seeds"):
                    try:
                        check_batchable([r["spec"] for r in runs])
                    except SweepbenchError as err:
                        raise SweepbenchError(f"config error in study {name!r}, key batch_seeds: {err}") from None
                job = jobs.setdefault(job_id, {"study": name, "dataset": workload.dataset,
                                               "resources": resources, "runs": [],
                                               "batch_seeds": bool(study.get("batch_seeds"))})
                job["runs"] += [{"dir": r["id"][len(job_id) + 1:], "seed": r["seed"], "spec": r["spec"]}
                                for r in runs]
            entry["cells"].append(cell_id)
            entry["runs"] += [r["id"] for r in cells[cell_id]["runs"]]
        studies[name] = entry
    return {"studies": studies, "cells": cells, "jobs": jobs, "config": config}


def load_config(path: str) -> dict:
    import yaml

    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except OSError as err:
        raise SweepbenchError(f"cannot read config {path!r}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SweepbenchError(f"config {path!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise SweepbenchError(f"config {path!r} must be a mapping with a `studies` key")
    return copy.deepcopy(config)


def image_datasets(the_plan: dict) -> list[str]:
    """Datasets that need a prepared tensor file (one prepare_data job each)."""
    return sorted({c["dataset"] for c in the_plan["jobs"].values()
                   if c["dataset"] in ("mnist", "fmnist") and not c["runs"][0]["spec"]["synthetic"]})
