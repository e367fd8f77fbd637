"""Run specs: every training option, its default, and its validation, in one place.

A run spec is a flat dict. It is resolved in three layers: DEFAULTS below, then the
workload's own defaults (sweepbench.workloads), then what the user set. The resolved
spec is written to run.json, so a run can be repeated from its record alone.
"""

from __future__ import annotations

import math

from sweepbench import SweepbenchError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "cosine", "warmup", "triangular", "triangular2", "exp_range")
SAMPLINGS = ("shuffle", "replacement", "sequential")
BATCH_SCHEDULES = ("constant", "cyclic")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "for-loop")

# Every option a run understands, with its default. `None` means "the workload decides".
DEFAULTS: dict = {
    # what to train
    "workload": None,           # name from sweepbench.workloads.WORKLOADS
    "optimizer": "sgd",         # one of OPTIMIZERS
    "lr": 0.01,                 # base learning rate (> 0)
    "batch_size": 32,           # int >= 1, or "full" (gradient descent on the whole training set)
    "clip_batch_size": False,   # clip batch sizes larger than the training set to it instead of failing (smoke runs)
    "epochs": 10,               # maximum number of epochs (>= 1)
    "max_steps": 0,             # stop after this many optimizer steps (0 = no limit)
    "seed": 0,                  # seeds python, numpy and torch (init, sampling, dropout)
    # data
    "synthetic": False,         # random tensors of the dataset's shape and count instead of real data
    "data_seed": 0,             # seed of generated datasets and of the train/val/test split
    "train_size": 0,            # keep only the first N training samples (0 = all)
    "val_size": None,           # samples held out of training for validation (0 = validate on test)
    "data_dir": "resources",    # prepared dataset tensor files (<data_dir>/<dataset>.pt)
    "raw_dir": "data",          # torchvision's raw download folder (used to prepare the tensor file)
    "download": False,          # let torchvision download missing raw files (needs the internet)
    "augment": None,            # random flips and shifts (WideResNet workload)
    # model and loss
    "hidden": None,             # MLP hidden widths, e.g. [20, 20]
    "dropout": None,            # dropout rate (WideResNet)
    "reg_lambda": None,         # L2 penalty 0.5 * reg_lambda * ||W||^2 on weight matrices (softmax regression)
    "entropy_alpha": None,      # weight of the prediction-entropy term (seed 003's composite loss)
    # optimizer
    "momentum": 0.9,            # for momentum and nesterov
    "weight_decay": 0.0,        # decoupled for adamw, L2 for the rest
    "accum_steps": 1,           # gradient accumulation: one update per accum_steps micro-batches
    # sampling and schedules
    "sampling": "shuffle",      # shuffle | replacement | sequential
    "schedule": "constant",     # one of SCHEDULES
    "warmup_steps": 0,          # linear warm-up steps before any schedule
    "step_milestones": [15, 25, 35],  # epochs at which the step schedule multiplies lr by step_gamma
    "step_gamma": 0.1,
    "cosine_min_factor": 0.0,   # cosine ends at lr * cosine_min_factor
    "clr_max_lr": 0.006,        # cyclical schedules: lr cycles between lr and clr_max_lr
    "clr_step_size": 2000,      # steps per half cycle
    "clr_gamma": 1.0,           # exp_range decay per step
    "batch_schedule": "constant",  # constant | cyclic (batch size per epoch from batch_cycle)
    "batch_cycle": [],          # cyclic batch sizes, e.g. [16, 32, 64, 128, 256]
    # stopping and targets
    "target_metric": None,      # e.g. val_accuracy, train_loss
    "target": None,             # value to reach (accuracy: >=, loss: <=)
    "stop_at_target": False,    # stop once the target held for `patience` evaluations
    "patience": 1,
    "save_best": False,         # keep the weights of the best validation evaluation in model.pt (seed 003)
    "converge_tol": 0.0,        # stop when the epoch-mean loss changes by less than this fraction (0 = off)
    "diverge_factor": 10.0,     # diverged when a loss exceeds this x the initial loss
    # measurement
    "eval_every": 0,            # evaluate every N steps (0 = every epoch)
    "eval_batch_size": 4096,
    "eval_max_samples": 0,      # evaluate on at most this many samples of each split (0 = all; for speed studies)
    "steps_cap": 5000,          # steps.csv keeps at most about this many evenly spaced steps
    "gns": False,               # estimate the gradient noise scale at every evaluation
    "gns_batches": 8,           # small batches per estimate (big batch = gns_batches x batch_size)
    "gns_ema": 0.9,             # moving-average factor of the two estimates
    "timing_warmup_steps": 10,  # steps excluded from step-time statistics
    # machine
    "device": "auto",           # auto | cpu | cuda
    "threads": 0,               # torch CPU threads (0 = torch's default)
    # speed (each is recorded in run.json; see the README's "Speed options")
    "precision": "fp32",        # fp32 | bf16 (torch.autocast to bfloat16 for the forward pass; weights stay fp32)
    "channels_last": False,     # image models and batches in channels-last memory format
    "compile": "off",           # torch.compile mode: off | default | reduce-overhead (CUDA graphs) | max-autotune
    "optimizer_impl": "auto",   # auto (fused on CUDA where torch has it, else foreach) | fused | foreach | for-loop
    "deterministic": True,      # CUDA: torch.use_deterministic_algorithms, no cuDNN autotuning (CPU: already deterministic)
}

LIST_KEYS = {"step_milestones", "batch_cycle", "hidden"}
CHOICES = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "sampling": SAMPLINGS,
    "batch_schedule": BATCH_SCHEDULES,
    "device": DEVICES,
    "precision": PRECISIONS,
    "compile": COMPILE_MODES,
    "optimizer_impl": OPTIMIZER_IMPLS,
}
BOOL_KEYS = {"synthetic", "download", "augment", "stop_at_target", "gns", "deterministic", "clip_batch_size",
             "save_best", "channels_last"}
INT_KEYS = {"epochs", "max_steps", "seed", "data_seed", "train_size", "val_size", "accum_steps",
            "warmup_steps", "clr_step_size", "patience", "eval_every", "eval_batch_size",
            "steps_cap", "gns_batches", "timing_warmup_steps", "threads", "eval_max_samples"}
FLOAT_KEYS = {"lr", "dropout", "reg_lambda", "entropy_alpha", "momentum", "weight_decay",
              "step_gamma", "cosine_min_factor", "clr_max_lr", "clr_gamma", "target",
              "converge_tol", "diverge_factor", "gns_ema"}
STR_KEYS = {"workload", "target_metric", "data_dir", "raw_dir"} | set(CHOICES)


def parse_value(key: str, text: str):
    """Turn a command-line string into the type of option `key` (for --set KEY=VALUE)."""
    if key not in DEFAULTS:
        raise SweepbenchError(f"unknown option {key!r}; allowed: {', '.join(sorted(DEFAULTS))}")
    if text.lower() in ("none", "null", ""):
        return [] if key in LIST_KEYS else None
    try:
        if key == "batch_size":
            return "full" if text == "full" else int(text)
        if key in LIST_KEYS:
            return [int(v) for v in text.replace(" ", "").strip("[]").split(",") if v]
        if key in BOOL_KEYS:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if key in INT_KEYS:
            return int(text)
        if key in FLOAT_KEYS:
            return float(text)
    except ValueError:
        raise SweepbenchError(f"bad value {text!r} for {key}; expected {_kind(key)}") from None
    return text


def _kind(key: str) -> str:
    if key == "batch_size":
        return "an integer >= 1 or 'full'"
    if key in LIST_KEYS:
        return "a comma-separated list of integers"
    if key in BOOL_KEYS:
        return "true or false"
    if key in INT_KEYS:
        return "an integer"
    if key in FLOAT_KEYS:
        return "a number"
    if key in CHOICES:
        return "one of " + ", ".join(CHOICES[key])
    return "a string"


def resolve(user: dict) -> dict:
    """Layer DEFAULTS, the workload's defaults and the user's settings; validate the result.

    Raises SweepbenchError naming the first bad key and what is allowed. Checks that need
    the dataset (batch size larger than the training set) happen in the engine.
    """
    from sweepbench.workloads import WORKLOADS  # light: no torch import

    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        raise SweepbenchError(f"unknown option {unknown[0]!r}; allowed: {', '.join(sorted(DEFAULTS))}")
    name = user.get("workload")
    if name not in WORKLOADS:
        raise SweepbenchError(f"unknown workload {name!r}; allowed: {', '.join(WORKLOADS)}")
    spec = dict(DEFAULTS)
    spec.update(WORKLOADS[name].defaults)
    spec.update(user)
    validate(spec)
    return spec


def validate(spec: dict) -> None:
    """Check every value of a resolved spec; raise SweepbenchError on the first bad one."""
    for key, allowed in CHOICES.items():
        if spec[key] not in allowed:
            raise SweepbenchError(f"unknown {key} {spec[key]!r}; allowed: {', '.join(allowed)}")
    lr = spec["lr"]
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise SweepbenchError(f"bad lr {lr!r}; allowed: a finite number > 0")
    bs = spec["batch_size"]
    if bs != "full" and (not isinstance(bs, int) or isinstance(bs, bool) or bs < 1):
        raise SweepbenchError(f"bad batch_size {bs!r}; allowed: an integer >= 1 or 'full'")
    _at_least(spec, "epochs", 1)
    for key in ("max_steps", "train_size", "warmup_steps", "eval_every", "threads", "eval_max_samples"):
        _at_least(spec, key, 0)
    for key in ("accum_steps", "patience", "eval_batch_size", "steps_cap", "clr_step_size"):
        _at_least(spec, key, 1)
    _at_least(spec, "gns_batches", 2)
    if spec["val_size"] is not None:
        _at_least(spec, "val_size", 0)
    if spec["batch_schedule"] == "cyclic":
        cycle = spec["batch_cycle"]
        if not cycle or any((not isinstance(b, int)) or b < 1 for b in cycle):
            raise SweepbenchError(f"bad batch_cycle {cycle!r}; allowed: a non-empty list of integers >= 1 "
                                  "(needed by batch_schedule=cyclic)")
    if spec["schedule"] in ("triangular", "triangular2", "exp_range") and spec["clr_max_lr"] < lr:
        raise SweepbenchError(f"bad clr_max_lr {spec['clr_max_lr']!r}; allowed: a value >= lr ({lr})")
    for key in ("momentum", "weight_decay", "converge_tol", "step_gamma", "cosine_min_factor"):
        if spec[key] < 0:
            raise SweepbenchError(f"bad {key} {spec[key]!r}; allowed: a number >= 0")
    if spec["diverge_factor"] <= 1:
        raise SweepbenchError(f"bad diverge_factor {spec['diverge_factor']!r}; allowed: a number > 1")
    if not 0 <= spec["gns_ema"] < 1:
        raise SweepbenchError(f"bad gns_ema {spec['gns_ema']!r}; allowed: 0 <= gns_ema < 1")
    metric = spec["target_metric"]
    if metric is not None and metric not in TARGET_METRICS:
        raise SweepbenchError(f"unknown target_metric {metric!r}; allowed: {', '.join(TARGET_METRICS)}")


TARGET_METRICS = tuple(f"{split}_{m}" for split in ("train", "val", "test") for m in ("loss", "accuracy"))


def _at_least(spec: dict, key: str, low: int) -> None:
    value = spec[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise SweepbenchError(f"bad {key} {value!r}; allowed: an integer >= {low}")


# sweepbench.batched trains a cell's seeds as one vmapped model; these runs qualify.
BATCHABLE_MODELS = ("softmax", "mlp")  # no batch norm, no dropout, no parameter trajectory
BATCH_REQUIRES = {  # spec key: the value a batched run must have
    "batch_schedule": "constant", "accum_steps": 1, "gns": False, "save_best": False, "compile": "off",
    "precision": "fp32", "channels_last": False, "eval_every": 0,
}


def check_batchable(specs: list[dict]) -> None:
    """Raise SweepbenchError unless the specs differ only in seed and can train as one batch."""
    first = {k: v for k, v in specs[0].items() if k != "seed"}
    for spec in specs[1:]:
        other = {k: v for k, v in spec.items() if k != "seed"}
        if other != first:
            key = next(k for k in first if first[k] != other.get(k))
            raise SweepbenchError(f"cannot batch runs that differ in {key} ({first[key]!r} vs {other[key]!r}); "
                                  "allowed: runs of one cell, differing only in seed")
    from sweepbench.workloads import get as get_workload  # light: no torch import

    model = get_workload(specs[0]["workload"]).model
    if model not in BATCHABLE_MODELS:
        raise SweepbenchError(f"cannot batch workload {specs[0]['workload']} (model {model}); allowed: workloads "
                              f"whose model is {' or '.join(BATCHABLE_MODELS)}")
    for key, needed in BATCH_REQUIRES.items():
        value = specs[0][key]
        if value != needed:
            raise SweepbenchError(f"cannot batch runs with {key}={value!r}; allowed: {key}={needed!r}")
    if specs[0]["optimizer_impl"] not in ("auto", "foreach"):
        raise SweepbenchError(f"cannot batch runs with optimizer_impl={specs[0]['optimizer_impl']!r}; "
                              "allowed: auto or foreach")
