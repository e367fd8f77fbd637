"""The seeds of one cell trained at once as one model with stacked parameters.

A tiny model (an MLP or softmax regression) leaves the CPU or GPU mostly idle at small batch
sizes: each step is dominated by per-call overhead, not arithmetic. Stacking the K seeds'
weights along a new first dimension and running each dense layer as one batched matrix
product (torch.baddbmm) makes one step train all K runs for little more than the cost of
one. (torch.func.vmap over the model does the same generically, but its per-call overhead
made it 3x slower than these batched products for the models here; benchmarks/README.md.)

Each run stays what it would be alone: its own seed's initial weights, its own sampling
order (its own generator), the same update rule (sweepbench.optimizers' rules are
elementwise, so one update of the stacked tensors is K independent updates), the same
evaluation code (sweepbench.engine.evaluate on a module holding that run's weights) and its
own stopping verdict. A run that stops keeps its record from that point; the batch trains
on until every run has stopped. Batched kernels round differently from unbatched ones, so
the metrics equal those of separate runs to float tolerance, not bit for bit (a test
checks this). Timing: a batched step is timed once and shared by its runs; run.json's
speed.batched_runs says how many runs shared it.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import torch

from sweepbench import SweepbenchError, acceleration, datasets, models, provenance, record, schedules
from sweepbench.engine import (FLUSH_EVERY, PLACEMENT_UNKNOWN, Clock, Objective, _finish, _log, check_batch_sizes,
                               epoch_verdict, evaluate, initial_state, pick_device, read_window, row_head,
                               seed_everything, set_initial_loss, visiting_order)
from sweepbench.optimizers import ForeachOptimizer
from sweepbench.spec import check_batchable
from sweepbench.workloads import get as get_workload

class Member:
    """One run of the batch: its record writer, state and rows."""

    def __init__(self, spec, out_dir, total_planned):
        self.spec = spec
        self.writer = record.RecordWriter(out_dir)
        self.state = initial_state(spec, total_planned)
        self.metrics_rows, self.step_rows, self.step_times, self.step_samples = [], [], [], []
        self.active = True
        self.prev_epoch_loss = None
        self.convergence_epoch = None
        self.train_s = 0.0
        self.eval_s = 0.0


def train_seeds(specs: list[dict], out_dirs: list[str], quiet: bool = False, ready_since: float | None = None,
                placement: dict | None = None) -> list[dict]:
    """Train the runs `specs` (one cell's seeds) as one batched model; write one record per run
    to the matching out_dir. Returns the run.json contents in order."""
    check_batchable(specs)
    t_entry = time.perf_counter()
    age = provenance.process_age_s() if ready_since is None else t_entry - ready_since
    spec0 = specs[0]
    workload = get_workload(spec0["workload"])
    device = pick_device(spec0["device"])
    if spec0["threads"]:
        torch.set_num_threads(spec0["threads"])

    t0 = time.perf_counter()
    splits = datasets.load(workload.dataset, spec0)
    n_train = len(splits.y_train)
    check_batch_sizes(spec0, n_train, workload.name)
    batch = schedules.batch_size_at(spec0, 0, n_train)
    splits = splits.to(device).as_float()
    data_load_s = time.perf_counter() - t0
    n_in = splits.n_inputs

    nets = []
    for spec in specs:  # each run's initial weights, exactly as the engine draws them
        seed_everything(spec["seed"], spec["deterministic"], device)
        nets.append(models.build(workload.model, spec, n_in).to(device))
    names = [n for n, _ in nets[0].named_parameters()]
    stacked = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in nets]).requires_grad_()
               for n in names}
    probe = nets[0]  # holds one run's weights for evaluation
    objective = Objective(workload.task, spec0, probe)
    layers = list(probe)
    weight_names = [n for n in names if n.endswith("weight") and stacked[n].dim() > 2]
    reg = spec0["reg_lambda"] or 0.0

    def batched_loss(params, x, y):
        """Each run's mean mini-batch loss (K,), as Objective.data_loss (+ penalty) computes it."""
        out = stacked_forward(layers, params, x)
        k, b = y.shape
        loss = objective.data_loss(out.reshape(k * b, -1), y.reshape(-1), reduction="none").reshape(k, b).mean(1)
        if reg:
            loss = loss + 0.5 * reg * sum((params[n] * params[n]).sum(dim=(1, 2)) for n in weight_names)
        return loss
    optimizer = ForeachOptimizer(spec0["optimizer"], [stacked[n] for n in names], lr=spec0["lr"],
                                 weight_decay=spec0["weight_decay"], momentum=spec0["momentum"])
    gens = [torch.Generator(device=device).manual_seed(s["seed"]) for s in specs]
    total_planned = schedules.planned_steps(spec0, n_train)
    stride = max(1, math.ceil(total_planned / spec0["steps_cap"]))
    members = [Member(s, d, total_planned) for s, d in zip(specs, out_dirs)]
    clock = Clock(device)
    try:
        startup_s = (age or 0.0) + (time.perf_counter() - t_entry) if age is not None else None
        _run(spec0, workload, splits, stacked, names, probe, objective, batched_loss, optimizer, gens, members,
             clock, n_train, batch, total_planned, stride, device, quiet)
        results = []
        for k, m in enumerate(members):
            _load(probe, stacked, names, k)
            run_clock = SimpleNamespace(total=m.train_s)  # _finish reads the training time from it
            timing = {"startup_s": startup_s if k == 0 else 0.0, "data_load_s": data_load_s if k == 0 else 0.0,
                      "compile_s": 0.0, "total_s": time.perf_counter() - t_entry}
            speed = acceleration.record(m.spec, "foreach", 0.0, batched_runs=len(members))
            results.append(_finish(m.spec, workload, device, m.writer, splits, probe, m.metrics_rows, m.step_rows,
                                   m.step_times, m.step_samples, m.state, run_clock, m.eval_s, m.convergence_epoch,
                                   m.spec["target_metric"], timing, None, None, speed,
                                   placement or PLACEMENT_UNKNOWN))
    except BaseException:
        for m in members:
            m.writer.discard()
        raise
    return results


def stacked_forward(layers: list, params: dict, x: torch.Tensor) -> torch.Tensor:
    """The MLP `layers` (Flatten, Linear, ReLU) applied to x of shape (K, B, ...) with run k's
    weights params[name][k]; returns (K, B, outputs)."""
    h = x.reshape(x.shape[0], x.shape[1], -1)
    for i, layer in enumerate(layers):
        if isinstance(layer, torch.nn.Linear):
            h = torch.baddbmm(params[f"{i}.bias"].unsqueeze(1), h, params[f"{i}.weight"].transpose(1, 2))
        elif isinstance(layer, torch.nn.ReLU):
            h = torch.relu(h)
        elif not isinstance(layer, torch.nn.Flatten):
            raise SweepbenchError(f"cannot batch layer {type(layer).__name__}; allowed: Flatten, Linear, ReLU")
    return h


@torch.no_grad()
def _load(probe, stacked, names, k):
    params = dict(probe.named_parameters())
    for n in names:
        params[n].copy_(stacked[n][k])


def _evaluate(m: Member, k, probe, stacked, names, objective, splits, clock_total):
    t = time.perf_counter()
    _load(probe, stacked, names, k)
    row = row_head(m.state, clock_total)
    row.update(evaluate(probe, objective, splits, m.spec["eval_batch_size"], m.spec["eval_max_samples"], m.spec))
    m.eval_s += time.perf_counter() - t
    row["eval_s"] = m.eval_s
    m.metrics_rows.append(row)
    return row


def _run(spec, workload, splits, stacked, names, probe, objective, batched_loss, optimizer, gens, members, clock,
         n_train, batch, total_planned, stride, device, quiet):
    K = len(members)
    for k, m in enumerate(members):
        set_initial_loss(m.state, _evaluate(m, k, probe, stacked, names, objective, splits, 0.0), workload.name)
    _log(quiet, f"[{workload.name}] {K} runs batched; step 0: train_loss "
                + " ".join(f"{m.state['initial_loss']:.4g}" for m in members))
    pending = []  # (step, epoch, lr, n, losses (K,), mark)

    def flush():
        """Read back a window for all K runs at once; bring each active run's state up to its
        last step, then take in its losses and check its divergence."""
        if not pending:
            return
        losses = torch.stack([p[4] for p in pending]).tolist()
        seconds = [clock.resolve(p[5]) for p in pending]
        steps = [(p[0], p[1], p[2], p[3], None) for p in pending]
        end_step, end_epoch, end_lr = steps[-1][:3]
        n_window = sum(p[3] for p in pending)
        for k, m in enumerate(members):
            if not m.active:
                continue
            st = m.state
            st["step"], st["epoch_float"], st["lr"], st["batch"] = end_step, end_epoch, end_lr, batch
            st["samples"] += n_window
            m.step_times.extend(seconds)
            m.step_samples.extend(p[3] for p in pending)
            if read_window(steps, [row[k] for row in losses], seconds, m.state, m.spec, stride, m.step_rows):
                m.state["status"], m.state["stop_reason"] = "diverged", m.state["diverge_reason"]
                stop(m, k)
        pending.clear()

    def stop(m, k):
        m.active = False
        m.train_s = clock.total
        _evaluate(m, k, probe, stacked, names, objective, splits, clock.total)

    step = 0
    for epoch in range(spec["epochs"]):
        clock.start()
        if spec["sampling"] == "sequential":
            orders = torch.arange(n_train, device=device).expand(K, n_train)
        else:  # each run draws its order from its own generator, as it would alone
            orders = torch.stack([visiting_order(spec, n_train, batch, g) for g in gens])
        n_epoch = orders.shape[1]
        bounds = [(i, min(i + batch, n_epoch)) for i in range(0, n_epoch, batch)]
        for m in members:
            m.state["epoch_losses"] = []
        last_step = False
        for gi, (lo, hi) in enumerate(bounds):
            lr = schedules.lr_at(spec, step, epoch, total_planned)
            optimizer.param_groups[0]["lr"] = lr
            mark = clock.step_begin()
            idx = orders[:, lo:hi]
            losses = batched_loss(stacked, splits.x_train[idx], splits.y_train[idx])  # (K,)
            optimizer.zero_grad()
            losses.sum().backward()  # runs are independent: each gets its own gradient
            optimizer.step()
            mark = clock.step_end(mark)
            step += 1
            pending.append((step, epoch + (gi + 1) / len(bounds), lr, hi - lo, losses.detach(), mark))
            last_step = bool(spec["max_steps"]) and step >= spec["max_steps"]
            if len(pending) >= FLUSH_EVERY or last_step or gi + 1 == len(bounds):
                clock.stop()
                flush()
                if last_step:
                    break
                clock.start()
        for k, m in enumerate(members):
            if not m.active:
                continue
            m.train_s = clock.total
            epoch_loss = sum(m.state["epoch_losses"]) / max(len(m.state["epoch_losses"]), 1)
            row = _evaluate(m, k, probe, stacked, names, objective, splits, clock.total)
            if last_step:
                m.state["stop_reason"] = f"max_steps={spec['max_steps']} reached"
                m.active = False
                continue
            done, m.convergence_epoch = epoch_verdict(row, epoch_loss, m.prev_epoch_loss, m.spec, m.state, epoch)
            if done:
                m.active = False
            m.prev_epoch_loss = epoch_loss
        _log(quiet, f"[{workload.name}] epoch {epoch + 1}: step {step}, {sum(m.active for m in members)} of {K} "
                    "runs still training")
        if last_step or not any(m.active for m in members):
            break
    for m in members:
        if m.active:
            m.train_s = clock.total
