"""Which runs of a job train together as one stacked model (sweepbench.train.stacked).

A study's `stack` setting says how (a mode, or a mapping with `mode`, `max_runs`, `max_mb`):

    auto   (default) grid stacks where they pay off: the softmax and MLP workloads, and LeNet-5
           in studies that ask for a GPU (on a CPU its grouped convolutions gain nothing,
           benchmarks/README.md); never a study that measures throughput (`exclusive`), whose
           runs must each be timed alone
    grid   every run of the job that differs from another only in hyper-parameters
           (STACK_VARIES below: seed, lr and schedule, momentum, weight decay,
           entropy and L2 terms) shares its stack; an error when the study cannot stack
    seeds  each cell's seeds form a stack
    off    every run trains alone

A stack holds at most `max_runs` runs (default 32) and at most `max_mb` MB (default 1024) by
the estimate of `run_mb`; a larger group is split. The planner writes each run's stack id into
the job's runs ("stack"); run.json's speed.stack repeats it.
"""

from __future__ import annotations

import json
import math

from sweepbench import SweepbenchError, workloads

MODES = ("auto", "grid", "seeds", "off")
ALLOWED = f"{', '.join(MODES)}, or a mapping {{mode, max_runs (an integer >= 1), max_mb (a number > 0)}}"
DEFAULTS = {"mode": "auto", "max_runs": 32, "max_mb": 1024}
LENET5 = (546_044, 70_000)  # parameters; activations per sample (conv, tanh and batch-norm outputs, ~70k floats)
# WideResNet-16-10 on 28x28: 17.1M parameters; per sample ~3.3M floats kept for backward (each block's
# convolution, batch-norm and ReLU outputs at 160x28x28, 320x14x14, 640x7x7); an estimate, not a count
WRN16_10 = (17_100_000, 3_300_000)


# sweepbench.train.stacked trains several runs as one model with stacked parameters: a cell's seeds, or
# cells of a grid that differ only in STACK_VARIES (each run keeps its own values of those).
# Every option of sweepbench.spec.OPTIONS is in exactly one of the three classes below (a test
# checks it), so a new option must be classified before any stack trains with it.
ESTIMATED_MODELS = ("softmax", "mlp", "lenet5", "wrn16_10")  # the models run_mb estimates; others: unknown
STACKABLE_MODELS = ("softmax", "mlp", "lenet5")  # plain layer stacks: no residual blocks, no dropout
STACK_VARIES = ("seed", "lr", "momentum", "weight_decay", "entropy_alpha", "reg_lambda", "schedule", "warmup_steps",
                "step_milestones", "step_gamma", "cosine_min_factor", "clr_max_lr", "clr_step_size", "clr_gamma")
STACK_SHARED = (  # equal in every run of a stack, and the stacked training implements them as a run alone does
    "workload", "model", "data", "test_fraction", "optimizer", "batch_size", "clip_batch_size", "epochs", "max_steps",
    "synthetic", "data_seed", "train_size", "val_size", "data_dir", "raw_dir", "download",
    "hidden", "dropout", "sampling", "batch_schedule", "batch_cycle",
    "target_metric", "target", "stop_at_target", "patience", "converge_tol", "diverge_factor",
    "eval_every", "eval_batch_size", "eval_max_samples", "steps_cap", "gns", "gns_batches", "gns_ema",
    "timing_warmup_steps", "timing_block_s", "timing_budget_s", "debug_slowdown", "device", "threads",
    "deterministic", "dist_timeout_s",
)
STACK_REQUIRES = {  # spec key: the values a stacked run may have (what a stack cannot do is refused)
    "accum_steps": (1,), "save_best": (False,), "compile": ("off",), "precision": ("fp32",),
    "channels_last": (False,),
    "augment": (False, None),  # a stack's step draws no per-run augmentation; None: off unless set
    "optimizer_impl": ("auto", "foreach"),  # the stack's update is sweepbench's foreach rule
    "world_size": (0,),  # a data-parallel run trains alone, over its own processes
    "timing_ci": (0.0,),  # a timing run stops on its own clock, a stack's runs would share it
}


def stack_key(spec: dict) -> str:
    """What runs must share to train as one stack: everything but STACK_VARIES."""
    return json.dumps({k: v for k, v in spec.items() if k not in STACK_VARIES}, sort_keys=True)


def check_stackable(specs: list[dict]) -> None:
    """Raise SweepbenchError unless the specs can train as one stack: they differ only in
    STACK_VARIES, their model stacks, and every STACK_REQUIRES option has an allowed value."""
    first = specs[0]
    for spec in specs[1:]:
        key = next((k for k in first if k not in STACK_VARIES and first[k] != spec.get(k)), None)
        if key is not None:
            raise SweepbenchError(f"cannot stack runs that differ in {key} ({first[key]!r} vs {spec.get(key)!r}); "
                                  f"allowed: runs that differ only in {', '.join(STACK_VARIES)}")
    model = workloads.label(workloads.effective(first).model)
    if model not in STACKABLE_MODELS:
        raise SweepbenchError(f"cannot stack workload {first['workload']} (model {model}); allowed: workloads "
                              f"whose model is {', '.join(STACKABLE_MODELS)} (a plain layer stack)")
    for key, allowed in STACK_REQUIRES.items():
        if first[key] not in allowed:
            raise SweepbenchError(f"cannot stack runs with {key}={first[key]!r}; allowed: "
                                  f"{' or '.join(f'{key}={v!r}' for v in allowed)}")


def settings(value) -> dict:
    """A study's `stack` value (a mode or a mapping) with the defaults filled in."""
    given = dict(value) if isinstance(value, dict) else {} if value is None else {"mode": value}
    chosen = {**DEFAULTS, **given}
    if chosen["mode"] is False:  # YAML 1.1 reads an unquoted `off` as false
        chosen["mode"] = "off"
    return chosen


def run_mb(model: str, spec: dict, n_inputs: int, batch: int) -> float:
    """Memory one run needs (and adds to a stack), estimated: 4 bytes x (4 x parameters: weights,
    gradients and two optimizer states; plus 3 x batch x activations: forward outputs kept for
    backward; with gns, 2 x gns_batches x parameters: each estimate keeps one gradient per small
    batch, then stacks them). Models other than LeNet-5 and WideResNet-16-10 count as MLPs
    (softmax: no hidden)."""
    if model == "lenet5":
        params, acts = LENET5
    elif model == "wrn16_10":
        params, acts = WRN16_10
    else:
        widths = [n_inputs, *(spec.get("hidden") or [] if model == "mlp" else []), 10]
        params = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
        acts = 2 * sum(widths[1:])
    gns = 2 * spec["gns_batches"] * params if spec.get("gns") else 0
    return 4 * (4 * params + 3 * batch * acts + gns) / 2**20


def mode_for(study_settings: dict, model: str, resources: dict) -> str:
    """The mode a job trains with: `auto` resolved (see the module docstring)."""
    mode = study_settings["mode"]
    if mode != "auto":
        return mode
    if resources.get("exclusive") or model not in STACKABLE_MODELS or (model == "lenet5" and not resources.get("gpu")):
        return "off"
    return "grid"


def form_stacks(job_id: str, runs: list[dict], mode: str, limits: dict, size, strict: bool,
                seeds_per_stack: int = 0) -> None:
    """Give each run of a job its stack id (run["stack"], None alone). `size(spec)` is run_mb's
    estimate for a run; runs stack by cell (seeds) or by stack_key (grid). A group that cannot
    stack (check_stackable) is an error when `strict` (the study asked for this mode by
    name), else its runs train alone. `seeds_per_stack` (> 0): the job's seeds, in order, go into
    stacks in groups of that many, as a normal run of the study stacks its own seeds (`make
    baseline` runs more seeds than the study has, and its stacks must be timed like a normal run's)."""
    for run in runs:
        run["stack"] = None
    if mode == "off":
        return
    seeds = sorted({run["spec"]["seed"] for run in runs})
    group_of = (lambda seed: seeds.index(seed) // seeds_per_stack) if seeds_per_stack else (lambda seed: 0)
    groups: dict = {}
    for run in runs:
        key = run["dir"].rpartition("/")[0] if mode == "seeds" else stack_key(run["spec"])
        groups.setdefault((key, group_of(run["spec"]["seed"])), []).append(run)
    n = 0
    for group in groups.values():
        try:
            check_stackable([r["spec"] for r in group])
        except SweepbenchError:
            if strict:
                raise
            continue
        per_stack = max(1, min(limits["max_runs"], math.floor(limits["max_mb"] / max(size(group[0]["spec"]), 1e-9))))
        for i in range(0, len(group), per_stack):
            chunk = group[i:i + per_stack]
            if len(chunk) > 1:
                for run in chunk:
                    run["stack"] = f"{job_id}#{n}"
                n += 1


def largest_batch(spec: dict, n_train: int) -> int:
    """The most samples one step of the run takes (full batch, or the largest of a batch cycle)."""
    sizes = [spec["batch_size"], *(spec["batch_cycle"] if spec["batch_schedule"] == "cyclic" else [])]
    return max(n_train if b == "full" else min(b, n_train) for b in sizes)


def plan_stacks(study: dict, jobs: list[tuple[str, dict]], data_entry) -> None:
    """Assign stacks in the jobs of one study (the planner calls this once per study); each job by the
    model its runs train and their data (`data_entry(spec)`: its sweepbench.data.registry entry, or
    None when unknown before training). With `auto`, a model that cannot stack (a user's, torchvision's)
    trains its runs alone; a study that asks for a mode by name and cannot have it is refused with
    the reason (never trained differently than asked)."""
    chosen = settings(study.get("stack"))
    for job_id, job in jobs:
        spec = job["runs"][0]["spec"]
        model, dataset = workloads.label(workloads.effective(spec).model), data_entry(spec)
        mode = mode_for(chosen, model, job["resources"])
        if mode != "off" and job["resources"].get("exclusive"):
            raise SweepbenchError(f"stack {mode!r} with resources.exclusive: a throughput study times each run "
                                  "alone; allowed: stack: off (or auto)")
        if mode != "off" and dataset is None:
            if chosen["mode"] != "auto":
                raise SweepbenchError(f"cannot stack runs of workload {spec['workload']}: its data come from a "
                                      "loader, unknown before training; allowed: stack: off (or auto)")
            mode = "off"
        n_inputs = math.prod(dataset.shape) if dataset is not None else 0

        def size(spec, dataset=dataset, n_inputs=n_inputs, model=model):
            return run_mb(model, spec, n_inputs, largest_batch(spec, dataset.train_samples(spec)))

        form_stacks(job_id, job["runs"], mode, chosen, size, strict=chosen["mode"] != "auto",
                    seeds_per_stack=len(study.get("seeds") or [0]))
