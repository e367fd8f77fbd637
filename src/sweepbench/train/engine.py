"""Training: resolved run specs in, run records out (sweepbench.record).

One loop trains one run, or a stack of runs that step together as one model with stacked
parameters (sweepbench.train.stacked). It reads top to bottom in named sections:

    set-up       data on the device, the model, the optimizer, one RunState per run
    epoch order  one gather per epoch puts samples in each run's visiting order
    step         forward, backward and update; the loss stays on the device
    read-back    every FLUSH_EVERY steps the losses and step times come back: divergence
    evaluate     every epoch (or eval_every steps): loss and accuracy on each split
    stop         target, convergence, divergence, max_steps: each run has its own verdict
    record       each run's record is built from its state and written atomically

No DataLoader, no worker processes, no per-sample Python (airbench style). Training time is
measured around training only; evaluation and compile warm-up are timed apart.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sweepbench import SweepbenchError, envlock, provenance, rules, workloads
from sweepbench.data import datasets
from sweepbench.data.augment import random_shift_flip
from sweepbench.plan import stacks, user_inputs
from sweepbench.record import RecordWriter, RunContext
from sweepbench.train import (
    acceleration,
    allocator,
    distributed,
    environment,
    models,
    noise_scale,
    optimizers,
    schedules,
)
from sweepbench.train.clock import Clock
from sweepbench.train.objective import Objective, evaluate, measure_noise_scale
from sweepbench.train.run_state import (
    FLUSH_EVERY,
    TIMING_FLUSH_EVERY,
    PendingStep,
    RunState,
    after_eval,
    epoch_verdict,
    row_head,
    set_initial_loss,
    take_window,
)

# run.json `placement` of a run started by hand: nothing says whether it had its device alone.
# Workflow jobs pass {"scheduler": "train-pack", "exclusive": bool, "gpu_slots": n, "threads": n}.
PLACEMENT_UNKNOWN = {"scheduler": None, "exclusive": None, "gpu_slots": None, "threads": None}


@dataclass
class Job:
    """How a training was started: its output folders, where start-up is counted from (a pack's
    previous run end, or None for the process start), placement, and whether to print progress."""

    out_dirs: list[str]
    ready_since: float | None = None
    placement: dict | None = None
    quiet: bool = False
    stack: str | None = None       # the stack's id when several runs train as one model
    rank: int = 0                  # a data-parallel run's rank (sweepbench.train.distributed); rank 0 writes


@dataclass
class Training:
    """One training: a single run, or a stack of runs stepping together (one RunState each)."""

    specs: list[dict]
    workload: object
    device: torch.device
    splits: datasets.Splits
    model: object                  # SingleModel or batched.StackedModel: the step, the weights, evaluation
    states: list[RunState]
    writers: list[RecordWriter]
    gens: list[torch.Generator]    # each run's sampling order (and augmentation)
    clock: Clock
    total_planned: int
    stride: int                    # steps.csv keeps every stride-th step
    quiet: bool
    timing: dict                   # startup_s, data_load_s, compile_s
    step: int = 0
    pending: list = field(default_factory=list)
    gns: list | None = None        # gns=true: each run's NoiseScaleEMA and its generator
    gns_gens: list | None = None
    best: dict | None = None       # save_best: the best evaluation's weights

    @property
    def spec(self) -> dict:
        """The first run's spec, read for what a stack's runs share: they may differ in
        everything in sweepbench.plan.stacks.STACK_VARIES (seed, lr and its schedule, momentum,
        weight decay, entropy and L2 terms), which are read from each run's own spec
        (run.states[k].spec, or the stacked model's specs[k])."""
        return self.specs[0]

    def active(self) -> list[int]:
        return [k for k, st in enumerate(self.states) if st.active]


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SweepbenchError("bad device 'cuda': no CUDA device is available; allowed here: auto, cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    """Seed python, numpy and torch. With deterministic=True on CUDA, also switch on
    torch.use_deterministic_algorithms and switch off cuDNN autotuning. On the CPU the
    kernels sweepbench uses are deterministic already (a test checks byte-identical
    metrics), and that switch imports torch._dynamo, about 1.5 s per process, so it is left
    off there; run.json records the actual state."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cuda":
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not deterministic


def usable_threads(threads: int) -> int:
    """The torch threads a run uses: `threads`, at most the cores this process may run on (more only
    slow it down). Capping is said on stderr, and run.json's provenance.torch_threads records the
    number used."""
    cores = provenance.usable_cores()
    if threads > cores:
        print(f"sweepbench: threads {threads} capped at the {cores} cores this process may use", file=sys.stderr)
    return min(threads, cores)


def make_optimizer(spec: dict, params, impl: str = "for-loop"):
    """The spec's optimizer (sweepbench.train.optimizers.make)."""
    return optimizers.make(spec, params, impl)


def train(spec: dict, out_dir: str, quiet: bool = False, ready_since: float | None = None,
          placement: dict | None = None) -> dict:
    """Run one resolved spec and write its record to out_dir. Returns run.json's content.

    Raises SweepbenchError (nothing written) for input that is only known to be bad once the
    data are loaded, e.g. a batch size larger than the training set. `ready_since` is the
    time.perf_counter() value from which start-up is counted (a pack's previous run end);
    by default start-up counts from the process start. `placement` says how the scheduler
    placed the run (see PLACEMENT_UNKNOWN); it is copied into run.json. A run with world_size >= 1
    trains over that many processes (sweepbench.train.distributed).
    """
    job = Job([out_dir], ready_since, placement, quiet)
    if spec["world_size"]:
        from sweepbench.train import distributed

        return distributed.train(spec, job)
    return train_runs([spec], job, SingleModel)[0]


def train_runs(specs: list[dict], job: Job, model_kind) -> list[dict]:
    """Train `specs` with the model kind (SingleModel for one run, batched.StackedModel for a
    stack) and write each run's record to its folder; returns the run.json contents in order.
    A failure leaves no record behind."""
    t_entry = time.perf_counter()
    envlock.state()  # the record's env_lock, read first: a bad requirements.lock stops here, not after training
    age = provenance.process_age_s() if job.ready_since is None else t_entry - job.ready_since
    writers = [RecordWriter(d) for d in job.out_dirs] if job.rank == 0 else []  # rank 0 writes the record
    try:
        run = set_up(specs, writers, model_kind, job.quiet)
        run.timing["startup_s"] = (age or 0.0) + (time.perf_counter() - t_entry) if age is not None else None
        run.timing["compile_s"] = run.model.warm_up(run)
        train_loop(run)
        if run.spec["world_size"]:
            for st in run.states:  # the training clock of a data-parallel run: its slowest rank's
                st.train_s = run.model.slowest(st.train_s)
        return write_records(run, job, t_entry) if job.rank == 0 else []
    except BaseException:
        for w in writers:
            w.discard()
        raise


# ---------------------------------------------------------------- set-up

def set_up(specs: list[dict], writers: list[RecordWriter], model_kind, quiet: bool) -> Training:
    """Data on the device, the model and optimizer (model_kind), one RunState per run."""
    spec = specs[0]
    workload = workloads.effective(spec)
    device = pick_device(spec["device"])
    if spec["world_size"]:
        torch.set_num_threads(distributed.threads_per_rank(spec))
    elif spec["threads"]:
        torch.set_num_threads(usable_threads(spec["threads"]))
    allocator.keep_large_blocks()
    seed_everything(spec["seed"], spec["deterministic"], device)
    t0 = time.perf_counter()
    splits = datasets.load(workload.dataset, spec, task=workload.task, who=f"workload {workload.name}")
    if spec["augment"]:
        datasets.featurewise_normalise(splits)
    n_train = len(splits.y_train)
    check_batch_sizes(spec, n_train, workload.name)
    check_memory(specs, workloads.label(workload.model), splits.n_inputs, n_train, device)
    splits = splits.to(device).as_float()
    data_load_s = time.perf_counter() - t0
    model = model_kind(specs, workload, splits, device)
    total_planned = schedules.planned_steps(spec, n_train)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run = Training(
        specs=specs, workload=workload, device=device, splits=splits, model=model,
        states=[RunState(s, schedules.lr_at(s, 0, 0, total_planned)) for s in specs], writers=writers,
        gens=[torch.Generator(device=device).manual_seed(s["seed"]) for s in specs], clock=Clock(device),
        total_planned=total_planned, stride=max(1, math.ceil(total_planned / spec["steps_cap"])), quiet=quiet,
        timing={"data_load_s": data_load_s})
    if spec["gns"]:
        run.gns = [noise_scale.NoiseScaleEMA(s["gns_ema"]) for s in specs]
        run.gns_gens = [torch.Generator(device=device).manual_seed(s["seed"] + 1_000_003) for s in specs]
    if spec["save_best"]:
        run.best = {"metric": "val_accuracy" if workload.has_accuracy else "val_loss", "value": None,
                    "step": None, "state": None}
    return run


def check_memory(specs: list[dict], model: str, n_inputs: int, n_train: int, device: torch.device) -> None:
    """Refuse, before the model is built, CPU runs whose weights, gradients, optimizer state and
    largest batch's activations (plan.stacks.run_mb's estimate: MLPs, softmax regression, LeNet-5,
    WideResNet-16-10; per run of a stack) exceed the memory this process can still have (an MLP of hidden [10^9]
    allocated until it crashed). GPU runs are not checked here (their memory is the GPU's), nor models
    the estimate does not know (torchvision's, the user's own)."""
    if device.type != "cpu" or model not in stacks.ESTIMATED_MODELS:  # a user's model: its size is unknown here
        return
    need = sum(stacks.run_mb(model, s, n_inputs, stacks.largest_batch(s, n_train)) for s in specs)
    have = provenance.available_mb()
    if have is not None and need > have:
        spec, who = specs[0], "the stack needs" if len(specs) > 1 else "the run needs"
        gns = f" / gns_batches {spec['gns_batches']}" if spec["gns"] else ""
        parts = ", the noise-scale gradients" if gns else ""
        raise SweepbenchError(f"bad hidden {spec['hidden']!r} / batch_size {spec['batch_size']!r}{gns} for this "
                              f"machine: {who} about {need:,.0f} MB (weights, gradients, optimizer state, the "
                              f"largest batch's activations{parts}), {have:,.0f} MB is available; allowed: a smaller "
                              f"model (hidden), batch size{' or gns_batches' if gns else ''}")


def check_batch_sizes(spec: dict, n_train: int, workload_name: str) -> None:
    """Batch sizes above the training set are bad input, unless clip_batch_size clips them; so is a
    data-parallel run's global batch (world_size x batch_size) above it."""
    world = max(1, spec["world_size"])
    if world > 1 and world * schedules.batch_size_at(spec, 0, n_train) > n_train and not spec["clip_batch_size"]:
        raise SweepbenchError(f"bad batch_size {spec['batch_size']} with world_size {world}: the global batch "
                              f"{world} x {spec['batch_size']} exceeds the {n_train} training samples of "
                              f"{workload_name}; allowed: batch_size 1..{n_train // world}")
    if spec["clip_batch_size"]:
        return
    if spec["batch_size"] != "full" and spec["batch_size"] > n_train:
        raise SweepbenchError(f"bad batch_size {spec['batch_size']}; allowed: 1..{n_train} "
                              f"(the training set of {workload_name} has {n_train} samples) or 'full'")
    for b in spec["batch_cycle"] if spec["batch_schedule"] == "cyclic" else []:
        if b > n_train:
            raise SweepbenchError(f"bad batch_cycle entry {b}; allowed: 1..{n_train} (training set size)")


# ---------------------------------------------------------------- the loop

def train_loop(run: Training) -> None:
    """Step 0's evaluation, then epochs until every run has stopped or the budget is spent."""
    for st, row in zip(run.states, evaluate_runs(run, range(len(run.states)))):
        set_initial_loss(st, row, run.workload.name)
    _log(run.quiet, f"[{run.workload.name}] " + ("" if len(run.states) == 1 else f"{len(run.states)} runs stacked; ")
         + "step 0: train_loss " + " ".join(f"{st.initial_loss:.4g}" for st in run.states))
    for epoch in range(run.spec["epochs"]):
        last_step = train_epoch(run, epoch)
        end_epoch(run, epoch, last_step)
        if not run.active():
            break
    for st in run.states:
        if st.active:
            st.train_s = run.clock.total


def train_epoch(run: Training, epoch: int) -> bool:
    """One epoch's steps, reading back every FLUSH_EVERY steps (TIMING_FLUSH_EVERY in a timing run,
    outside its step marks) and evaluating every eval_every steps. Returns True when max_steps was
    reached."""
    spec, n_train = run.spec, len(run.splits.y_train)
    batch = global_batch(spec, epoch, n_train)
    for k in run.active():
        run.states[k].batch, run.states[k].epoch_losses = batch * spec["accum_steps"], []
    run.model.keep(run.active())  # runs that stopped leave the stack: they cost no more compute
    run.clock.start()  # the epoch's sampling and gather are training time
    orders = [epoch_order(spec, n_train, batch, run.gens[k]) for k in run.model.rows]
    data, n_epoch = run.model.epoch_data(run.splits, orders)
    micro = [slice(i, min(i + batch, n_epoch)) for i in range(0, n_epoch, batch)]
    updates = [micro[i:i + spec["accum_steps"]] for i in range(0, len(micro), spec["accum_steps"])]
    for i, group in enumerate(updates):
        train_step(run, data, group, epoch, epoch + (i + 1) / len(updates))
        last_step = bool(spec["max_steps"]) and run.step >= spec["max_steps"]
        eval_now = spec["eval_every"] and run.step % spec["eval_every"] == 0 and i + 1 < len(updates)
        flush = TIMING_FLUSH_EVERY if spec["timing_ci"] else FLUSH_EVERY
        if len(run.pending) >= flush or eval_now or last_step or i + 1 == len(updates):
            run.clock.stop()
            read_back(run)
            if eval_now:
                for k, row in zip(run.active(), evaluate_runs(run, run.active())):
                    if after_eval(run.states[k], row):
                        run.states[k].train_s = run.clock.total
            if last_step or i + 1 == len(updates) or not run.active():
                return last_step
            run.clock.start()
    return False


def global_batch(spec: dict, epoch: int, n_train: int) -> int:
    """Samples per micro-batch over all ranks: world_size x the per-worker batch (clipped, with
    clip_batch_size, so that the global batch fits in the training set)."""
    world = max(1, spec["world_size"])
    return min(schedules.batch_size_at(spec, epoch, n_train), max(1, n_train // world)) * world


def epoch_order(spec: dict, n_train: int, batch: int, gen: torch.Generator):
    """The sample indices of one epoch in visiting order, drawn from the run's generator: a
    permutation (shuffle), n_batches x batch uniform draws (replacement), or None for
    sequential (the stored order)."""
    if spec["sampling"] == "shuffle":
        return torch.randperm(n_train, device=gen.device, generator=gen)
    if spec["sampling"] == "replacement":
        return torch.randint(0, n_train, (math.ceil(n_train / batch) * batch,), device=gen.device, generator=gen)
    return None


def train_step(run: Training, data, group: list[slice], epoch: int, epoch_float: float) -> None:
    """One update of every run in the stack, each at its own learning rate; the losses and the
    time mark wait for the read-back."""
    lrs = [schedules.lr_at(run.states[k].spec, run.step, epoch, run.total_planned) for k in run.model.rows]
    n_update = sum(s.stop - s.start for s in group)
    mark = run.clock.step_begin()
    loss = run.model.step(data, group, n_update, lrs, run.gens[0])
    if run.spec["debug_slowdown"]:
        run.clock.stall(run.spec["debug_slowdown"])
    mark = run.clock.step_end(mark)
    params = run.model.trajectory() if run.step % run.stride == 0 else None  # after the update
    run.step += 1
    run.pending.append(PendingStep(run.step, epoch_float, lrs, n_update, loss, mark, params))


def read_back(run: Training) -> None:
    """Read the pending losses and step times back from the device (one sync), take each active
    run's column into its state, and stop (and evaluate) each run that diverged."""
    if not run.pending:
        return
    window, run.pending = run.pending, []
    losses = torch.stack([p.loss for p in window]).reshape(len(window), -1)
    seconds = [run.clock.resolve(p.mark) for p in window]
    if run.spec["world_size"]:  # the global batch's losses, each step's slowest rank
        losses, seconds = run.model.across_ranks(losses, seconds)
    losses = losses.tolist()
    diverged = []
    for j, k in enumerate(run.model.rows):
        st = run.states[k]
        if st.active and take_window(st, window, j, [row[j] for row in losses], seconds, run.stride):
            st.stop("diverged", st.diverge_reason)
            st.train_s = run.clock.total
            diverged.append(k)
    settled = [k for k in run.active() if timing_settled(run.states[k])]
    if diverged or settled:
        for k in settled:
            run.states[k].train_s = run.clock.total
        evaluate_runs(run, diverged + settled)


def timing_settled(st) -> bool:
    """A timing run (timing_ci > 0) whose throughput is known well enough, or whose timing budget is
    spent (sweepbench.rules.timing_settled), stops with that reason."""
    spec = st.spec
    if not spec["timing_ci"]:
        return False
    times, samples = rules.timed_steps(st.step_times, st.step_samples, spec["timing_warmup_steps"])
    reason = rules.timing_settled(rules.timing_blocks(times, samples, spec["timing_block_s"]), sum(times),
                                  spec["timing_ci"], spec["timing_budget_s"])
    if reason:
        st.stop(None, reason)
    return reason is not None


def end_epoch(run: Training, epoch: int, last_step: bool) -> None:
    """Each run still training is evaluated (unless it just was) and gets its verdict; at
    max_steps it stops with that reason."""
    due = [k for k in run.active() if run.states[k].metrics_rows[-1]["step"] != run.states[k].step]
    if due:  # not evaluated at this step yet
        evaluate_runs(run, due)
    for k in run.active():
        st = run.states[k]
        row = st.metrics_rows[-1]
        if last_step:
            st.train_s = run.clock.total
            st.stop(None, f"max_steps={run.spec['max_steps']} reached")
        elif epoch_verdict(st, row, epoch):
            st.train_s = run.clock.total
        if len(run.states) == 1:
            epoch_loss = sum(st.epoch_losses) / max(len(st.epoch_losses), 1)
            _log(run.quiet, f"[{run.workload.name}] epoch {epoch + 1}: step {st.step} loss {epoch_loss:.4g} "
                            f"train_loss {row['train_loss']:.4g}"
                            + (f" val_acc {row['val_accuracy']:.4f}" if row.get("val_accuracy") is not None else ""))
    if len(run.states) > 1:
        _log(run.quiet, f"[{run.workload.name}] epoch {epoch + 1}: step {run.step}, {len(run.active())} of "
                        f"{len(run.states)} runs still training")


# ---------------------------------------------------------------- evaluate

def current_batch(run: Training, k: int) -> int:
    """Run k's batch size now (before its first step: the schedule's first), for the noise scale."""
    st = run.states[k]
    return st.batch or schedules.batch_size_at(st.spec, 0, len(run.splits.y_train))


def evaluate_runs(run: Training, ks) -> list[dict]:
    """Evaluate runs `ks` on every split (a stack evaluates them at once) and append each run's
    metrics.csv row to its state; each run's eval_s counts the whole evaluation it waited for."""
    t = time.perf_counter()
    ks = list(ks)
    rows = []
    noise = run.model.noise_scales(ks, run) if run.gns is not None else None
    for i, (k, scores) in enumerate(zip(ks, run.model.evaluate(ks, run.splits))):
        st = run.states[k]
        row = row_head(st, run.clock.total)
        row.update(scores)
        if noise is not None:
            row["grad_noise_scale"] = noise[i]
        if run.best is not None:
            keep_if_best(run.best, row, run.model.module_for(k), run.workload.has_accuracy)
        rows.append(row)
    elapsed = time.perf_counter() - t
    for k, row in zip(ks, rows):
        st = run.states[k]
        st.eval_s += elapsed
        row["eval_s"] = st.eval_s
        st.metrics_rows.append(row)
    return rows


def keep_if_best(best: dict, row: dict, model, higher_is_better: bool) -> None:
    """seed 003: keep the weights of the best validation evaluation (first one on ties)."""
    value = row.get(best["metric"])
    if value is None or not math.isfinite(value):
        return
    if best["value"] is None or (value > best["value"] if higher_is_better else value < best["value"]):
        best.update(value=value, step=row["step"], state={k: v.detach().clone() for k, v in model.state_dict().items()})


# ---------------------------------------------------------------- record

def write_records(run: Training, job: Job, t_entry: float) -> list[dict]:
    """Build and write each run's record (the first run carries the shared start-up and data load)."""
    placement = job.placement or PLACEMENT_UNKNOWN
    memory = peak_memory(run.device)
    counts = models.count_parameters(run.model.module_for(run.model.rows[0]))  # every run: one architecture
    results = []
    for k, (st, writer) in enumerate(zip(run.states, run.writers)):
        first = k == 0
        timing = {"startup_s": run.timing["startup_s"] if first else 0.0,
                  "data_load_s": run.timing["data_load_s"] if first else 0.0,
                  "compile_s": run.timing["compile_s"], "total_s": time.perf_counter() - t_entry}
        ctx = RunContext(
            workload={"name": run.workload.name, "dataset": workloads.label(run.workload.dataset),
                      "model": workloads.label(run.workload.model),
                      "task": run.workload.task, **counts, **run.splits.counts,
                      "val_is_test": run.splits.val_is_test, "synthetic": st.spec["synthetic"]},
            timing=timing, memory=memory, placement=placement,
            speed=acceleration.record(st.spec, run.model.impl, run.timing["compile_s"],
                                      batched_runs=len(run.states), stack=job.stack),
            provenance=environment.collect(run.device, st.spec),
            grad_noise_scale=run.gns[k].value() if run.gns is not None else None,
            best_model=reload_best(run) if run.best is not None else None,
            distributed=data_parallel(run, st.spec))
        if run.gns is not None:
            ctx.metric_columns.append("grad_noise_scale")
        ctx.step_columns += list(run.model.trajectory_names())
        results.append(writer.write(st, ctx))
    return results


def data_parallel(run: Training, spec: dict) -> dict:
    """run.json's `distributed` section: the workers, per-worker and global batch (one process
    without DDP: world_size 0, the two batches equal)."""
    if spec["world_size"]:
        return run.model.describe(spec, distributed.threads_per_rank(spec))
    micro = schedules.batch_size_at(spec, 0, len(run.splits.y_train))
    return {"world_size": 0, "backend": None, "per_worker_batch": spec["batch_size"],
            "global_batch": micro * spec["accum_steps"]}


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_mb": torch.cuda.max_memory_allocated(device) / 2**20, "kind": "cuda_max_allocated"}
    import resource

    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "kind": "process_max_rss"}


def reload_best(run: Training) -> dict | None:
    """Save the best weights as model.pt, load them into a fresh model and evaluate it on every
    split (seed 003: keep the best model, re-load it, evaluate it on the test set)."""
    best, spec = run.best, run.spec
    if best["state"] is None:
        return None
    path = os.path.join(run.writers[0].tmp, "model.pt")
    torch.save(best["state"], path)
    fresh = models.build(run.workload.model, spec, model_input(run.splits, run.workload.task)).to(run.device)
    fresh.load_state_dict(torch.load(path, map_location=run.device, weights_only=True))
    fresh = acceleration.memory_format(spec, fresh)
    scores = evaluate(fresh, Objective(run.workload.task, spec, fresh), run.splits, spec)
    return {"file": "model.pt", "selected_by": best["metric"], "value": best["value"], "step": best["step"],
            **{f"reloaded_{k}": v for k, v in scores.items()}}


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, flush=True)


# ---------------------------------------------------------------- one run's model

class SingleModel:
    """The model of one run: forward, backward and update of one module (with gradient
    accumulation, augmentation, bf16 autocast, channels-last and torch.compile as the spec
    says), and the module itself for evaluation."""

    def __init__(self, specs: list[dict], workload, splits: datasets.Splits, device: torch.device):
        (spec,) = specs
        self.spec = spec
        inputs = model_input(splits, workload.task)
        self.module = models.build(workload.model, spec, inputs).to(device)
        if not user_inputs.is_built_in(workload):  # a model or data of the user's: checked against each other first
            models.check_output(self.module, splits.inputs(splits.x_train[:2]), splits.y_train[:2], inputs,
                                f"{workloads.label(workload.model)} (workload {workload.name})")
        self.module = acceleration.memory_format(spec, self.module)
        self.module.train()
        self.objective = Objective(workload.task, spec, self.module)
        self.impl = acceleration.optimizer_impl(spec, device)
        self.optimizer = make_optimizer(spec, [p for p in self.module.parameters() if p.requires_grad], self.impl)
        self.step_model = acceleration.compiled(spec, self.module)
        self.cast = acceleration.autocast(spec, device)  # entered once per micro-batch, made once
        self.graphs = spec["compile"] == "reduce-overhead"
        self._trajectory = getattr(self.module, "trajectory", None)
        self.inputs = splits.inputs  # stored samples -> model inputs (uint8 images become float)
        self.rows = [0]  # the run each row of the model belongs to: one run, one row

    def keep(self, runs: list[int]) -> None:
        """A single run is never compacted."""

    def noise_scales(self, ks: list[int], run: Training) -> list[float]:
        """The run's gradient noise scale, updated by one estimate (sweepbench.train.objective)."""
        return [measure_noise_scale(self.module, self.objective, run.splits, current_batch(run, 0),
                                    run.states[0].spec, run.gns_gens[0], run.gns[0])]

    def warm_up(self, run: Training) -> float:
        """Compile every batch size before the training clock starts (compile only)."""
        return acceleration.warm_up(self.spec, self.step_model, self.module,
                                    warmup_batches(self.spec, run.splits, len(run.splits.y_train)),
                                    self.objective.data_loss)

    def epoch_data(self, splits: datasets.Splits, orders: list):
        """One gather per epoch puts the samples in visiting order; batches are then slices
        (views), which costs less per step than gathering each batch (airbench)."""
        (order,) = orders
        if order is None:
            return (splits.x_train, splits.y_train), len(splits.y_train)
        return (splits.x_train[order], splits.y_train[order]), len(order)

    def step(self, data, group: list[slice], n_update: int, lrs: list[float], gen: torch.Generator):
        """Forward and backward of each micro-batch of `group` (gradient accumulation), then one
        update at the run's learning rate. Returns the update's mean mini-batch loss as a device tensor."""
        x_epoch, y_epoch = data
        (lr,) = lrs
        optimizer, accum = self.optimizer, self.spec["accum_steps"] > 1
        if lr != optimizer.param_groups[0]["lr"]:
            for g in optimizer.param_groups:
                g["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        if self.graphs:
            acceleration.new_step(self.spec)
        total = None
        for idx in group:
            xb, yb = x_epoch[idx], y_epoch[idx]
            xb = self._inputs(xb, gen)
            with self.cast:
                loss = self.objective.data_loss(self.step_model(xb), yb)
            if self.objective.reg:
                loss = loss + self.objective.penalty()
            share = len(yb) / n_update
            (loss * share).backward() if accum else loss.backward()
            part = loss.detach() * share if accum else loss.detach()
            total = part if total is None else total + part
        optimizer.step()
        return total

    def _inputs(self, xb, gen):
        xb = self.inputs(xb)
        if self.spec["augment"]:
            xb = random_shift_flip(xb, gen)
        if self.spec["channels_last"]:
            xb = acceleration.format_batch(self.spec, xb)
        return xb

    def module_for(self, k: int):
        return self.module

    def evaluate(self, ks: list[int], splits: datasets.Splits) -> list[dict]:
        return [evaluate(self.module, self.objective, splits, self.spec)]

    def trajectory(self) -> dict | None:
        """Two-parameter models: the parameters now (for steps.csv)."""
        if self._trajectory is None:
            return None
        return {k: v.detach().clone() for k, v in self._trajectory().items()}

    def trajectory_names(self) -> list[str]:
        return list(self._trajectory().keys()) if self._trajectory is not None else []


def model_input(splits: datasets.Splits, task: str) -> models.ModelInput:
    """What the model is sized to: the data's sample shape and classes, the task, one target's shape."""
    return models.ModelInput(tuple(splits.sample_shape), splits.n_classes, task, tuple(splits.y_train.shape[1:]))


def warmup_batches(spec, splits, n_train) -> list:
    """One batch of every micro-batch size training will use (each compiles once); none
    without torch.compile."""
    if spec["compile"] == "off":
        return []
    epochs = len(spec["batch_cycle"]) if spec["batch_schedule"] == "cyclic" else 1
    sizes = set()
    for epoch in range(min(epochs, spec["epochs"])):
        b = schedules.batch_size_at(spec, epoch, n_train)
        sizes.add(b)
        if n_train % b and spec["sampling"] != "replacement":
            sizes.add(n_train % b)
    batches = []
    for b in sorted(sizes):
        xb = splits.inputs(splits.x_train[:b])
        batches.append((acceleration.format_batch(spec, xb), splits.y_train[:b]))
    return batches
