"""Run specs: every training option in one table (OPTIONS), with its default, type, bounds and help.

A run spec is a flat dict. It is resolved in three layers: the defaults below, then the
workload's own defaults (sweepbench.workloads), then what the user set. The resolved spec
is written to run.json, so a run can be repeated from its record alone.

OPTIONS is the only place an option is declared: parsing (`--set KEY=VALUE`), validation
(the CLI and the planner call `resolve`), `sweepbench train --help` and the defaults are all
derived from it, so a new option is one new `Option(...)` line (a test adds one and checks
all four). Relations between options (e.g. clr_max_lr >= lr) are checked in `_check_relations`.
Importing this module is cheap (no torch).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sweepbench import SweepbenchError, workloads
from sweepbench.record import METRICS
from sweepbench.train.optimizers import OPTIMIZERS
from sweepbench.workloads import WORKLOADS

SEED_LIMIT = 2**32  # numpy's seeds are 32-bit

# kinds of option value: what `parse_value` turns text into and what `Option.check` accepts
KINDS = ("int", "float", "bool", "choice", "text", "ints", "batch_size")


@dataclass(frozen=True)
class Option:
    """One run option. `low`/`high` bound numbers and the entries of int lists (inclusive, or
    exclusive with `low_open`/`high_open`); `choices` (a tuple or a registry dict, read at
    check time) lists the allowed values of a choice; `nullable` allows None ("the workload
    decides", or "off"). `models` / `tasks`: the only workloads the option acts on (by their
    model, or their task); set (truthy) on any other workload it is refused, since a sweep over
    it would give identical cells under different labels. `acts`: (a test of the spec, its words)
    for an option that acts only with other options' values (momentum only with a momentum
    optimizer): set to anything but its default where the test fails, it is refused the same way."""

    name: str
    default: object
    kind: str
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | dict = ()
    nullable: bool = False
    min_items: int = 0
    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    acts: object = None        # (spec -> bool, "when it acts, in words"): an option that acts only with others'
    null_is_zero: bool = False  # null trains exactly as 0 (no term): `[null, 0]` is one cell twice

    def allowed(self) -> str:
        """What the option accepts, in words (the second half of every error message)."""
        if self.kind == "choice":
            text = ", ".join(self.choices)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "text":
            text = "a non-empty string"
        elif self.kind == "batch_size":
            text = "an integer >= 1 or 'full'"
        else:
            noun = {"int": "an integer", "float": "a finite number",
                    "ints": "a non-empty list of integers" if self.min_items else "a list of integers"}[self.kind]
            text = noun + self._range()
        return text + (" (or empty for none)" if self.nullable else "")

    def _range(self) -> str:
        lo = None if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = None if self.high is None else f"{'<' if self.high_open else '<='} {self.high}"
        if lo and hi:
            return f" with {lo} and {hi}" if self.kind == "ints" else f" {lo} and {hi}"
        if lo or hi:
            return f" {'each ' if self.kind == 'ints' else ''}{lo or hi}"
        return ""

    def check(self, value) -> None:
        """Raise SweepbenchError naming the value and what is allowed unless `value` fits."""
        if value is None and self.nullable:
            return
        if not self._fits(value):
            word = "unknown" if self.kind == "choice" else "bad"
            raise SweepbenchError(f"{word} {self.name} {workloads.short(value)}"
                                  f"{_why(value, self.kind)}; allowed: {self.allowed()}")

    def _fits(self, value) -> bool:
        kind = self.kind
        if kind == "choice":
            return isinstance(value, str) and value in self.choices
        if kind == "bool":
            return isinstance(value, bool)
        if kind == "text":
            return isinstance(value, str) and value != ""
        if kind == "batch_size":
            return value == "full" or (_is_int(value) and value >= 1)
        if kind == "ints":
            return (isinstance(value, list) and len(value) >= self.min_items
                    and all(_is_int(v) and self._in_range(v) for v in value))
        if kind == "int":
            return _is_int(value) and self._in_range(value)
        return _is_number(value) and math.isfinite(value) and self._in_range(value)

    def _in_range(self, v) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


YAML_EXPONENT = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?[eE]([+-]?)(\d+)")


def _why(value, kind: str) -> str:
    """A hint for the commonest surprises: YAML 1.1 reads 1e-3 (no dot) and 1.0e9 (no exponent sign)
    as text, true as a bool. The hint writes this value in the form YAML reads as a number."""
    if isinstance(value, str) and kind in ("int", "float"):
        number = YAML_EXPONENT.fullmatch(value.strip())
        if not number:
            return " (text, not a number)"
        sign, whole, fraction, exp_sign, exponent = number.groups()
        plain = repr(float(value))
        also = "" if "e" in plain or "inf" in plain else f" or {plain}"
        return (" (text, not a number: YAML reads an exponent number without a dot or without its exponent's sign, "
                f"e.g. 1e-3 or 1.0e9, as text; write {sign}{whole}.{fraction or '0'}e{exp_sign or '+'}{exponent}"
                f"{also})")
    if isinstance(value, bool) and kind in ("int", "float", "batch_size"):
        return " (a boolean, not a number)"
    if isinstance(value, float) and not math.isfinite(value):
        return " (not finite)"
    return ""


def _options(*entries: Option) -> dict[str, Option]:
    return {o.name: o for o in entries}


def _may_lack_a_test_split(spec: dict) -> bool:
    """Whether the run's data may have no test split (test_fraction then splits it): a local CSV file or
    image folder, or a user's loader (which may read the option); not a built-in dataset, a .npz or .pt file."""
    from sweepbench.data import registry

    source = workloads.effective(spec).dataset
    if not isinstance(source, str):
        return True
    if source in registry.DATASETS:
        return False
    return not source.lower().endswith((".npz", ".pt"))


_STEP = (lambda s: s["schedule"] == "step", "schedule step")
_CYCLICAL = (lambda s: s["schedule"] in ("triangular", "triangular2", "exp_range"),
             "schedule triangular, triangular2 or exp_range")
_GNS = (lambda s: s["gns"], "gns true")
O = Option
OPTIONS: dict[str, Option] = _options(
    # what to train
    O("workload", None, "text", "a built-in workload (sweepbench.workloads.WORKLOADS), or your own as "
      "file.py:function or module:function (required)"),
    O("model", None, "text", "the model instead of the workload's: a built-in model (sweepbench.train.models.BUILT_IN) "
      "or torchvision.<name> (random initialisation), adapted to the data's channels and classes", nullable=True),
    O("data", None, "text", "the data instead of the workload's: a dataset name (sweepbench.data.registry), or a "
      "local .npz, .pt, .csv[:label column] file or image folder (sweepbench.data.local)", nullable=True),
    O("optimizer", "sgd", "choice", "update rule (sweepbench.train.optimizers.OPTIMIZERS)", choices=OPTIMIZERS),
    O("lr", 0.01, "float", "base learning rate", low=0, low_open=True, high=10_000),
    O("batch_size", 32, "batch_size", "samples per micro-batch, or full (gradient descent on the whole set)"),
    O("clip_batch_size", False, "bool", "clip batch sizes larger than the training set instead of failing"),
    O("epochs", 10, "int", "maximum number of epochs", low=1, high=1_000_000),
    O("max_steps", 0, "int", "stop after this many optimizer steps (0 = no limit)", low=0),
    O("seed", 0, "int", "seeds python, numpy and torch (init, sampling, dropout)", low=0, high=SEED_LIMIT,
      high_open=True),
    # data
    O("synthetic", False, "bool", "random tensors of the dataset's shape and count instead of real data"),
    O("data_seed", 0, "int", "seed of generated datasets and of the train/val/test split", low=0,
      high=SEED_LIMIT, high_open=True),
    O("train_size", 0, "int", "keep only the first N training samples (0 = all)", low=0),
    O("val_size", None, "int", "samples held out of training for validation (0 = validate on test)", low=0,
      nullable=True),
    O("test_fraction", 0.2, "float", "local data without a test split (a CSV, an image folder without train/ and "
      "test/): the fraction held out for testing, drawn with data_seed", low=0, high=1, low_open=True, high_open=True,
      acts=(lambda s: _may_lack_a_test_split(s), "data: a local .csv file or image folder")),
    O("data_dir", "resources", "text", "prepared dataset tensor files (<data_dir>/<dataset>.pt)"),
    O("raw_dir", "data", "text", "torchvision's raw download folder (used to prepare the tensor file)"),
    O("download", False, "bool", "let torchvision download missing raw files (needs the internet)"),
    O("augment", None, "bool", "random flips and shifts (image models: LeNet-5, WideResNet)", nullable=True,
      models=("lenet5", "wrn16_10")),
    # model and loss
    O("hidden", None, "ints", "MLP hidden widths, e.g. [20, 20]", low=1, high=100_000, nullable=True,
      min_items=1, models=("mlp",)),
    O("dropout", None, "float", "dropout rate (WideResNet)", low=0, high=1, high_open=True, nullable=True,
      models=("wrn16_10",)),
    O("reg_lambda", None, "float", "L2 penalty 0.5 * reg_lambda * ||W||^2 on weight matrices", low=0,
      nullable=True, null_is_zero=True),
    O("entropy_alpha", None, "float", "weight of the prediction-entropy term (seed 003's composite loss)",
      low=0, nullable=True, tasks=("multiclass",), null_is_zero=True),
    # optimizer
    O("momentum", 0.9, "float", "momentum of momentum and nesterov", low=0, high=1, high_open=True,
      acts=(lambda s: s["optimizer"] in ("momentum", "nesterov"), "optimizer momentum or nesterov")),
    O("weight_decay", 0.0, "float", "decoupled for adamw, L2 for the rest", low=0),
    O("accum_steps", 1, "int", "gradient accumulation: one update per accum_steps micro-batches", low=1),
    # sampling and schedules
    O("sampling", "shuffle", "choice", "order of samples in an epoch",
      choices=("shuffle", "replacement", "sequential")),
    O("schedule", "constant", "choice", "learning-rate schedule (sweepbench.train.schedules)",
      choices=("constant", "step", "cosine", "warmup", "triangular", "triangular2", "exp_range")),
    O("warmup_steps", 0, "int", "linear warm-up steps before any schedule", low=0),
    O("step_milestones", [15, 25, 35], "ints", "epochs at which the step schedule multiplies lr by step_gamma",
      low=1, acts=_STEP),
    O("step_gamma", 0.1, "float", "factor of the step schedule", low=0, low_open=True, acts=_STEP),
    O("cosine_min_factor", 0.0, "float", "cosine ends at lr * cosine_min_factor", low=0, high=1,
      acts=(lambda s: s["schedule"] == "cosine", "schedule cosine")),
    O("clr_max_lr", 0.006, "float", "cyclical schedules: lr cycles between lr and clr_max_lr", low=0,
      low_open=True, acts=_CYCLICAL),
    O("clr_step_size", 2000, "int", "cyclical schedules: steps per half cycle", low=1, acts=_CYCLICAL),
    O("clr_gamma", 1.0, "float", "exp_range decay per step", low=0, high=1, low_open=True,
      acts=(lambda s: s["schedule"] == "exp_range", "schedule exp_range")),
    O("batch_schedule", "constant", "choice", "batch size per epoch: constant, or cyclic from batch_cycle",
      choices=("constant", "cyclic")),
    O("batch_cycle", [], "ints", "cyclic batch sizes, e.g. [16, 32, 64, 128, 256]", low=1,
      acts=(lambda s: s["batch_schedule"] == "cyclic", "batch_schedule cyclic")),
    # stopping and targets
    O("target_metric", None, "choice", "metric with a target, e.g. val_accuracy", choices=METRICS,
      nullable=True),
    O("target", None, "float", "value to reach (accuracy: >=, in [0, 1]; loss: <=, >= 0)", nullable=True,
      acts=(lambda s: s["target_metric"] is not None, "a target_metric")),
    O("stop_at_target", False, "bool", "stop once the target held for `patience` evaluations"),
    O("patience", 1, "int", "evaluations in a row the target must hold", low=1,
      acts=(lambda s: s["stop_at_target"], "stop_at_target true")),
    O("save_best", False, "bool", "keep the weights of the best validation evaluation in model.pt (seed 003)"),
    O("converge_tol", 0.0, "float", "stop when the epoch-mean loss changes by less than this fraction (0 = off)",
      low=0, high=1, high_open=True),
    O("diverge_factor", 10.0, "float", "diverged when a loss exceeds this x the initial loss", low=1,
      low_open=True),
    # measurement
    O("eval_every", 0, "int", "evaluate every N steps (0 = every epoch)", low=0),
    O("eval_batch_size", 4096, "int", "batch size of evaluation", low=1),
    O("eval_max_samples", 0, "int", "evaluate at most this many samples of each split (0 = all)", low=0),
    O("steps_cap", 5000, "int", "steps.csv keeps at most about this many evenly spaced steps", low=1),
    O("gns", False, "bool", "estimate the gradient noise scale at every evaluation"),
    O("gns_batches", 8, "int", "small batches per noise-scale estimate (big batch = gns_batches x batch_size)",
      low=2, high=1024, acts=_GNS),
    O("gns_ema", 0.9, "float", "moving-average factor of the two noise-scale estimates", low=0, high=1,
      high_open=True, acts=_GNS),
    O("timing_warmup_steps", 10, "int", "steps excluded from step-time statistics", low=0),
    O("timing_block_s", 0.05, "float", "timed steps are grouped into consecutive blocks of at least this many "
      "seconds; samples_per_s is the median block's (sweepbench.rules.timing_blocks)", low=0, low_open=True,
      high=60),
    O("timing_ci", 0.0, "float", "a timing study: stop a run once its median block throughput is known to "
      "+- this fraction (95% interval) or timing_budget_s is spent (sweepbench.rules.timing_settled); "
      "0 = train the whole budget", low=0, high=0.5),
    O("timing_budget_s", 10.0, "float", "with timing_ci: the most seconds of timed steps a run spends",
      low=0, low_open=True, high=3600, acts=(lambda s: s["timing_ci"] > 0, "timing_ci above 0")),
    O("debug_slowdown", 0.0, "float", "benchmarks only: sleep this fraction of each step's time inside the step "
      "(a planted slowdown: benchmarks/bench_speed_check.py); 0 = off", low=0, high=10),
    # machine
    O("device", "auto", "choice", "where to train", choices=("auto", "cpu", "cuda")),
    O("threads", 0, "int", "torch CPU threads (0 = torch's default; at most the machine's cores)", low=0,
      high=1024),
    O("world_size", 0, "int", "data-parallel workers: 0 = one process without DDP; N >= 1 = DistributedDataParallel "
      "over N processes (gloo on CPUs, nccl on GPUs), each at batch_size samples, global batch N x batch_size "
      "(1 shows DDP's own cost)", low=0, high=1024),
    O("dist_timeout_s", 600.0, "float", "data-parallel runs: seconds a rank waits for the others (a collective, "
      "rank 0's evaluation) before the run fails", low=0, low_open=True, high=86_400,
      acts=(lambda s: s["world_size"] >= 1, "world_size 1 or more")),
    # speed (each is recorded in run.json `speed`; see the README's "Speed")
    O("precision", "fp32", "choice", "bf16: torch.autocast to bfloat16 for the forward pass; weights stay fp32",
      choices=("fp32", "bf16")),
    O("channels_last", False, "bool", "image models and batches in channels-last memory format"),
    O("compile", "off", "choice", "torch.compile mode (reduce-overhead: CUDA graphs)",
      choices=("off", "default", "reduce-overhead", "max-autotune")),
    O("optimizer_impl", "auto", "choice", "auto: fused on CUDA where torch has it, else foreach",
      choices=("auto", "fused", "foreach", "for-loop")),
    O("deterministic", True, "bool", "CUDA: deterministic algorithms, no cuDNN autotuning (CPU: already so)"),
)
del O


def defaults() -> dict:
    """Every option with its default (a fresh copy: list defaults may be changed by the caller)."""
    return {name: (list(o.default) if isinstance(o.default, list) else o.default) for name, o in OPTIONS.items()}


def help_text() -> str:
    """`sweepbench train --help`'s list: one line per option, `  name = default  help; allowed: ...`."""
    return "\n".join(f"  {o.name} = {o.default!r}  {o.help}; allowed: {o.allowed()}" for o in OPTIONS.values())


def parse_value(key: str, text: str):
    """Turn a command-line string into option `key`'s value (for --set KEY=VALUE); the value is
    checked against the option's bounds later, in `validate`."""
    option = OPTIONS.get(key)
    if option is None:
        raise SweepbenchError(f"unknown option {key!r}; allowed: {', '.join(sorted(OPTIONS))}")
    if text.lower() in ("none", "null", ""):
        return [] if option.kind == "ints" and not option.nullable else None
    try:
        return _parse(option.kind, text)
    except ValueError:
        raise SweepbenchError(f"bad value {text!r} for {key}; expected {option.allowed()}") from None


def _parse(kind: str, text: str):
    if kind == "batch_size":
        return "full" if text == "full" else int(text)
    if kind == "ints":
        return [int(v) for v in text.replace(" ", "").strip("[]").split(",") if v]
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def resolve(user: dict) -> dict:
    """Layer the defaults, the workload's defaults and the user's settings; validate the result.

    Raises SweepbenchError naming the first bad key and what is allowed. Checks that need
    the dataset (batch size larger than the training set) happen when training starts.
    """
    unknown = sorted(set(user) - set(OPTIONS))
    if unknown:
        raise SweepbenchError(f"unknown option {unknown[0]!r}; allowed: {', '.join(sorted(OPTIONS))}")
    OPTIONS["workload"].check(user.get("workload"))
    workload = workloads.get(user["workload"])
    spec = defaults()
    bad = sorted(set(workload.defaults) - set(OPTIONS) | set(workload.defaults) & {"workload", "seed"})
    if bad:
        raise SweepbenchError(f"bad workload {workload.name!r}: its defaults set {bad[0]!r}, not a run option; "
                              f"allowed: {', '.join(k for k in OPTIONS if k not in ('workload', 'seed'))}")
    spec.update(workload.defaults)
    spec.update(user)
    validate(spec)
    return spec


def validate(spec: dict) -> None:
    """Check every value of a resolved spec against its option, then the relations between
    options; raise SweepbenchError on the first bad one."""
    missing = [name for name in OPTIONS if name not in spec]
    if missing:
        raise SweepbenchError(f"run spec lacks option {missing[0]!r}; allowed: a spec resolved by sweepbench")
    for name, option in OPTIONS.items():
        option.check(spec[name])
    _check_relations(spec)
    _check_acts_on_workload(spec)


def _check_acts_on_workload(spec: dict) -> None:
    """Refuse an option set on a workload it does not act on (Option.models / Option.tasks), by the
    model it trains (the option `model` or the workload's)."""
    workload = workloads.effective(spec)
    model = workloads.label(workload.model)
    for name, option in OPTIONS.items():
        if not spec[name] or not (option.models or option.tasks):
            continue
        if model not in option.models and workload.task not in option.tasks:
            users = sorted(w.name for w in WORKLOADS.values() if w.model in option.models or w.task in option.tasks)
            raise SweepbenchError(f"bad {name} {spec[name]!r} for workload {workload.name} (model {model}, "
                                  f"task {workload.task}), which ignores it; allowed: leave {name} unset, or a "
                                  f"workload or model that uses it: {', '.join(users + list(option.models))}")
    base = {**defaults(), **workloads.get(spec["workload"]).defaults}
    for name in ignored(spec, base):
        option = OPTIONS[name]
        raise SweepbenchError(f"bad {name} {spec[name]!r} with {_shown_context(spec, option)}, which ignores it; "
                              f"allowed: leave {name} unset ({base[name]!r}), or {option.acts[1]}")
    if spec["model"] is not None:
        workloads.check_model_name(spec["model"])


def ignored(spec: dict, base: dict) -> list[str]:
    """The options with a condition on other options (Option.acts) that `spec` sets to something else
    than `base` (the defaults, with the workload's) where they do nothing."""
    return [name for name, option in OPTIONS.items()
            if option.acts and spec[name] != base[name] and not option.acts[0](spec)]


def _shown_context(spec: dict, option: Option) -> str:
    """The options an Option.acts test reads, with their values, e.g. "optimizer adam"."""
    words = option.acts[1]
    keys = [k for k in OPTIONS if k != option.name and re.search(rf"(?<!\w){k}(?!\w)", words) or
            (k == "workload" and words.startswith("data"))]
    shown = [k for k in keys if spec.get(k) is not None or k != "data"]  # no data option: the workload's
    return ", ".join(f"{k} {_word(spec[k])}" for k in shown) or "this spec"


def _word(value) -> str:
    """A value as the config writes it: true, false, null, 0.5, adam."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_relations(spec: dict) -> None:
    if spec["batch_schedule"] == "cyclic" and not spec["batch_cycle"]:
        raise SweepbenchError("bad batch_cycle []; allowed: a non-empty list of integers >= 1 "
                              "(needed by batch_schedule=cyclic)")
    if spec["schedule"] in ("triangular", "triangular2", "exp_range") and spec["clr_max_lr"] < spec["lr"]:
        raise SweepbenchError(f"bad clr_max_lr {spec['clr_max_lr']!r}; allowed: a value >= lr ({spec['lr']})")
    metric, target = spec["target_metric"], spec["target"]
    if metric and metric.endswith("accuracy") and not workloads.get(spec["workload"]).has_accuracy:
        raise SweepbenchError(f"bad target_metric {metric!r} for regression workload {spec['workload']}; "
                              "allowed: train_loss, val_loss, test_loss")
    if metric and target is not None:
        if metric.endswith("accuracy") and not 0 <= target <= 1:
            raise SweepbenchError(f"bad target {target!r} for {metric}; allowed: a number in [0, 1]")
        if metric.endswith("loss") and target < 0:
            raise SweepbenchError(f"bad target {target!r} for {metric}; allowed: a number >= 0")
    _check_data_parallel(spec)
    if spec["stop_at_target"] and (metric is None or target is None):
        raise SweepbenchError("bad stop_at_target True without a target; allowed: set target_metric and target "
                              "(or stop_at_target=false)")


def _check_data_parallel(spec: dict) -> None:
    """What a data-parallel run (world_size >= 1) cannot do: a whole-set batch (batch_size is per worker),
    the noise-scale estimate and torch.compile (neither is implemented over ranks)."""
    world = spec["world_size"]
    if not world:
        return
    if spec["batch_size"] == "full":
        raise SweepbenchError(f"bad batch_size 'full' with world_size {world}; allowed: an integer >= 1 (the "
                              "per-worker batch; the global batch is world_size x batch_size)")
    for key, off in (("gns", False), ("compile", "off")):
        if spec[key] != off:
            raise SweepbenchError(f"bad {key} {spec[key]!r} with world_size {world}; allowed: {key}={off!r} "
                                  "(data-parallel runs do not implement it), or world_size=0")
