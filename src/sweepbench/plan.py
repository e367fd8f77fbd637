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

from sweepbench import SweepbenchError, atomic, batch_range, dataset_registry, stacking
from sweepbench.spec import OPTIONS, resolve

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schemas", "config.schema.yaml")
ABBREVIATIONS = {"optimizer": "opt", "batch_size": "bs", "schedule": "sched", "sampling": "samp",
                 "weight_decay": "wd", "accum_steps": "accum", "batch_schedule": "bsched",
                 "batch_cycle": "bcycle", "momentum": "mom"}
DEFAULT_RESOURCES = {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpu": 0, "exclusive": False}
# Where a job goes on a SLURM cluster: study resource -> the SLURM executor plugin's resource
# (no default: unset means the profile's default-resources, else the cluster's default).
SLURM_RESOURCES = {"slurm_partition": "slurm_partition", "slurm_account": "slurm_account", "slurm_qos": "qos"}
SLURM_KEYS = tuple(SLURM_RESOURCES)


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
    prepared datasets come from tiny generated raw files (sweepbench.tinydata) in resources/smoke/,
    at most 32 training samples (batch sizes are clipped to them), 2 epochs and 2 steps,
    evaluation on 16 samples per split; the planner also keeps only a cell's first 2 seeds."""
    spec = dict(spec, data_dir=SMOKE_DATA_DIR, raw_dir=SMOKE_RAW_DIR, clip_batch_size=True,
                train_size=min(spec["train_size"] or SMOKE_TRAIN, SMOKE_TRAIN), epochs=min(spec["epochs"], 2),
                max_steps=min(spec["max_steps"] or 2, 2), eval_max_samples=16)
    if spec["val_size"]:
        spec["val_size"] = min(spec["val_size"], 16)
    return spec


def load_schema() -> dict:
    """The config schema, with the target metrics filled in from sweepbench.record.METRICS and
    the stack modes from sweepbench.stacking.MODES."""
    import yaml

    from sweepbench.record import METRICS

    with open(SCHEMA_PATH) as f:
        schema = yaml.safe_load(f)
    schema["$defs"]["study"]["properties"]["target"]["properties"]["metric"]["enum"] = list(METRICS)
    stack = schema["$defs"]["study"]["properties"]["stack"]["oneOf"]
    stack[0]["enum"] = stack[1]["properties"]["mode"]["enum"] = [*stacking.MODES, False]  # YAML reads off as false
    return schema


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
        if key not in OPTIONS or key == "workload":
            raise SweepbenchError(f"config error in study {name!r}, key {where}.{key}: unknown run option; "
                                  f"allowed: {', '.join(k for k in OPTIONS if k not in ('workload', 'seed'))}")


def _train_samples(spec: dict, dataset: str) -> int:
    """Training samples a run of `spec` will have (sweepbench.dataset_registry), for the
    batch-size check; a val_size that leaves none is bad input."""
    entry = dataset_registry.get(dataset)
    held_out = (entry.val_default if spec["val_size"] is None else spec["val_size"]) if entry.val_from_train else 0
    if held_out >= entry.n_train:
        raise SweepbenchError(f"bad val_size {spec['val_size']}; allowed: 0..{entry.n_train - 1} (the training set "
                              f"of {dataset} has {entry.n_train} samples before validation is held out)")
    return entry.train_samples(spec)


def plan(config: dict) -> dict:
    """Validate `config` and expand it. Returns {"studies": {...}, "cells": {...}}.

    studies[name] = {workload, description, target, axes (names), cells (ids), runs (ids)}
    cells[id] = {study, job, dataset, resources, axes, runs: [{id, seed, spec}]}
    jobs[id] = {study, dataset, resources, runs: [{dir (relative to the job folder), seed, spec}]}
    """
    if "run" in config and config["run"] in (None, "", []):  # --config run= arrives as None
        raise SweepbenchError("config error in key run: empty; allowed: study names separated by commas, "
                              f"from {', '.join(config.get('studies') or {}) or '(no studies)'}")
    validate_config(config)
    check_output_dirs(config)
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
        batch_range.check(name, study, selected, config)
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
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise SweepbenchError(f"config error in study {name!r}, key seeds: seed {repeated[0]} appears more than "
                                  "once; allowed: distinct seeds (each is one run of every cell)")
        if is_smoke(config):
            seeds = seeds[:2]
        resources = {**DEFAULT_RESOURCES, **(config.get("resources") or {}), **(study.get("resources") or {})}
        workload = WORKLOADS[study["workload"]]
        entry = {"workload": workload.name, "description": study.get("description", workload.description),
                 "target": None, "axes": [], "cells": [], "runs": [], "seeds": seeds,
                 "reference": study.get("reference")}  # the seed's printed numbers (sweepbench.reproduction)
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
            try:
                n = _train_samples(spec, workload.dataset)
            except SweepbenchError as err:
                raise SweepbenchError(f"config error in study {name!r}, cell {cell_slug(point)}: {err}") from None
            if bs != "full" and bs > n and not spec["clip_batch_size"]:
                raise SweepbenchError(f"config error in study {name!r}, key batch_size: {bs} is larger than the "
                                      f"training set of {workload.name} ({n} samples); allowed: 1..{n} or full")
            entry["axes"] = axes
            point = {k: spec[k] for k in axes}
            entry["target"] = {"metric": spec["target_metric"], "value": spec["target"]}
            key = json.dumps({k: v for k, v in spec.items() if k != "seed"}, sort_keys=True) + json.dumps(seeds) \
                + json.dumps(study.get("batch_cycle_from"))  # a derived cycle is not the configured one
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
                job = jobs.setdefault(job_id, {"study": name, "dataset": workload.dataset,
                                               "resources": resources, "runs": [],
                                               "batch_cycle_from": study.get("batch_cycle_from")})
                job["runs"] += [{"dir": r["id"][len(job_id) + 1:], "seed": r["seed"], "spec": r["spec"]}
                                for r in runs]
            entry["cells"].append(cell_id)
            entry["runs"] += [r["id"] for r in cells[cell_id]["runs"]]
        study_jobs = dict.fromkeys(cells[c]["job"] for c in entry["cells"])
        try:
            stacking.plan_stacks(study, [(j, jobs[j]) for j in study_jobs], workload.model,
                                 dataset_registry.get(workload.dataset))
        except SweepbenchError as err:
            raise SweepbenchError(f"config error in study {name!r}, key stack: {err}") from None
        studies[name] = entry
    check_slurm_keys({job["study"]: job["resources"] for job in jobs.values()})
    return {"studies": studies, "cells": cells, "jobs": jobs, "config": config}


def _strict_loader():
    """yaml.SafeLoader that refuses a mapping with a repeated key (YAML would keep the last one:
    a study silently dropped)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise SweepbenchError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); "
                                          "allowed: each key once per mapping")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


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
    if not isinstance(config, dict):
        raise SweepbenchError(f"config {path!r} must be a mapping with a `studies` key")
    return copy.deepcopy(config)


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


def image_datasets(the_plan: dict) -> list[str]:
    """Datasets that need a prepared tensor file (one prepare_data job each)."""
    from sweepbench.dataset_registry import needs_tensor_file

    return sorted({c["dataset"] for c in the_plan["jobs"].values()
                   if needs_tensor_file(c["dataset"], c["runs"][0]["spec"])})


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
