"""One training run: a resolved spec in, a run record out (sweepbench.record).

The data live on the device as tensors; each epoch gathers them once into visiting order and
batches are slices of that (airbench style): no DataLoader, no worker processes, no
per-sample Python. Mini-batch losses stay on the
device and are read back in windows of FLUSH_EVERY steps, where divergence is checked.
Training time is measured around training only; evaluation is timed separately.
"""

from __future__ import annotations

import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from sweepbench import SweepbenchError, acceleration, datasets, models, noise_scale, provenance, record, rules, schedules
from sweepbench.optimizers import ForeachOptimizer
from sweepbench.workloads import get as get_workload

FLUSH_EVERY = 64  # steps between reads of the mini-batch losses (one host sync per window)

# run.json `placement` of a run started by hand: nothing says whether it had its device alone.
# Workflow jobs pass {"scheduler": "snakemake", "exclusive": bool, "gpu_slots": n, "threads": n}.
PLACEMENT_UNKNOWN = {"scheduler": None, "exclusive": None, "gpu_slots": None, "threads": None}


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


def make_optimizer(spec: dict, params, impl: str = "for-loop"):
    """The seven optimizers, torch defaults except momentum (0.9) and weight decay from the spec.
    `impl` (sweepbench.acceleration.optimizer_impl): foreach is sweepbench.optimizers (same
    update rules, no torch.optim import cost); fused and for-loop are torch.optim's kernels."""
    name, lr, wd = spec["optimizer"], spec["lr"], spec["weight_decay"]
    if impl == "foreach":
        return ForeachOptimizer(name, params, lr=lr, weight_decay=wd, momentum=spec["momentum"])
    kw = {"fused": True} if impl == "fused" else {"foreach": False}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, **kw)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=spec["momentum"], nesterov=name == "nesterov",
                               weight_decay=wd, **kw)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **kw)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **kw)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, **kw)
    return torch.optim.Adagrad(params, lr=lr, weight_decay=wd, **kw)


class Objective:
    """The workload's loss: MSE, sigmoid + BCE, or softmax + CE with seed 003's entropy term
    (alpha * mean prediction entropy) and seed 004's L2 term (0.5 * reg_lambda * ||W||^2)."""

    def __init__(self, task: str, spec: dict, model: torch.nn.Module):
        self.task = task
        self.alpha = spec["entropy_alpha"] or 0.0
        self.reg = spec["reg_lambda"] or 0.0
        self.weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]

    def data_loss(self, out, y, reduction="mean"):
        if self.task == "regression":  # in float64: float32 cannot resolve the last 0.1% of an MSE plateau
            return F.mse_loss(out.double(), y.double(), reduction=reduction)
        if self.task == "binary":
            return F.binary_cross_entropy_with_logits(out, y, reduction=reduction)
        loss = F.cross_entropy(out, y, reduction=reduction)
        if self.alpha:
            logp = F.log_softmax(out, dim=1)
            entropy = -(logp.exp() * logp).sum(dim=1)
            if reduction != "none":
                entropy = entropy.mean() if reduction == "mean" else entropy.sum()
            loss = loss + self.alpha * entropy
        return loss

    def penalty(self):
        if not self.reg:
            return 0.0
        return 0.5 * self.reg * sum((w * w).sum() for w in self.weights)

    def correct(self, out, y):
        if self.task == "regression":
            return None
        pred = (out >= 0).to(y.dtype) if self.task == "binary" else out.argmax(dim=1)
        return (pred == y).sum()


class Clock:
    """Training-time stopwatch and per-step timer; synchronises CUDA only where it reads."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.total = 0.0
        self._start = None

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def start(self):
        self.sync()
        self._start = time.perf_counter()

    def stop(self):
        self.sync()
        self.total += time.perf_counter() - self._start
        self._start = None

    def step_begin(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def step_end(self, begin):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return (begin, ev)
        return time.perf_counter() - begin

    def resolve(self, mark) -> float:
        if self.cuda:
            begin, end = mark
            end.synchronize()
            return begin.elapsed_time(end) / 1000.0
        return mark


def _random_shift_flip(x: torch.Tensor, gen: torch.Generator, max_frac: float = 0.2) -> torch.Tensor:
    """Seed 000's augmentation on the device: random horizontal flip and integer shifts up to
    max_frac of the size in each direction, filling with the nearest edge pixel (Keras's
    fill_mode='nearest'). Keras shifts by fractional pixels with interpolation; this does not."""
    n, _, h, w = x.shape
    s_h, s_w = int(max_frac * h), int(max_frac * w)
    dy = torch.randint(-s_h, s_h + 1, (n, 1), device=x.device, generator=gen)
    dx = torch.randint(-s_w, s_w + 1, (n, 1), device=x.device, generator=gen)
    rows = (torch.arange(h, device=x.device) - dy).clamp_(0, h - 1)
    cols = (torch.arange(w, device=x.device) - dx).clamp_(0, w - 1)
    flip = torch.rand(n, 1, device=x.device, generator=gen) < 0.5
    cols = torch.where(flip, (w - 1) - cols, cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x[batch, :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


@torch.no_grad()
def evaluate(model, objective: Objective, splits: datasets.Splits, batch_size: int, max_samples: int = 0,
             spec: dict | None = None) -> dict:
    """Loss and accuracy on each split (its first max_samples samples when > 0), in eval mode,
    in large no-grad batches, with the run's precision and memory format when `spec` is given."""
    was_training = model.training
    model.eval()
    result = {}
    parts = [("train", splits.x_train, splits.y_train), ("test", splits.x_test, splits.y_test)]
    if not splits.val_is_test:
        parts.insert(1, ("val", splits.x_val, splits.y_val))
    penalty = float(objective.penalty())
    for name, x, y in parts:
        if max_samples:
            x, y = x[:max_samples], y[:max_samples]
        loss_sum = torch.zeros((), device=y.device, dtype=torch.float64)
        correct = torch.zeros((), device=y.device, dtype=torch.int64)
        for i in range(0, len(y), batch_size):
            xb = splits.inputs(x[i:i + batch_size])
            if spec is None:
                out = model(xb)
            else:
                with acceleration.autocast(spec, xb.device):
                    out = model(acceleration.format_batch(spec, xb))
            yb = y[i:i + batch_size]
            loss_sum += objective.data_loss(out, yb, reduction="sum").double()
            c = objective.correct(out, yb)
            if c is not None:
                correct += c
        result[f"{name}_loss"] = float(loss_sum) / len(y) + penalty
        result[f"{name}_accuracy"] = None if objective.task == "regression" else int(correct) / len(y)
    if splits.val_is_test:
        result["val_loss"], result["val_accuracy"] = result["test_loss"], result["test_accuracy"]
    model.train(was_training)
    return result


def measure_noise_scale(model, objective, splits, batch_size, k, gen, ema: noise_scale.NoiseScaleEMA, augment):
    """One B_simple update from k independent batches of size b (small) and their mean (size k*b)."""
    n = len(splits.y_train)
    b = max(1, min(batch_size, n // k))
    params = [p for p in model.parameters() if p.requires_grad]
    buffers = {name: t.clone() for name, t in model.named_buffers()}
    grads = []
    for _ in range(k):
        idx = torch.randint(0, n, (b,), device=splits.y_train.device, generator=gen)
        xb = splits.inputs(splits.x_train[idx])
        if augment:
            xb = _random_shift_flip(xb, gen)
        loss = objective.data_loss(model(xb), splits.y_train[idx])
        g = torch.autograd.grad(loss, params, allow_unused=True)
        grads.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                                for gi, p in zip(g, params)]))
    with torch.no_grad():
        for name, t in model.named_buffers():
            t.copy_(buffers[name])
    stacked = torch.stack(grads)
    small = float((stacked * stacked).sum(dim=1).mean())
    mean = stacked.mean(dim=0)
    big = float((mean * mean).sum())
    return ema.update(small, b, big, b * k)


def train(spec: dict, out_dir: str, quiet: bool = False, ready_since: float | None = None,
          placement: dict | None = None) -> dict:
    """Run one resolved spec and write its record to out_dir. Returns run.json's content.

    Raises SweepbenchError (nothing written) for input that is only known to be bad once the
    data are loaded, e.g. a batch size larger than the training set. `ready_since` is the
    time.perf_counter() value from which start-up is counted (a pack's previous run end);
    by default start-up counts from the process start. `placement` says how the scheduler
    placed the run (see PLACEMENT_UNKNOWN); it is copied into run.json.
    """
    t_entry = time.perf_counter()
    age = provenance.process_age_s() if ready_since is None else t_entry - ready_since
    workload = get_workload(spec["workload"])
    device = pick_device(spec["device"])
    writer = record.RecordWriter(out_dir)
    try:
        result = _train(spec, workload, device, writer, quiet, t_entry, age, placement or PLACEMENT_UNKNOWN)
    except BaseException:
        writer.discard()
        raise
    return result


def _log(quiet, msg):
    if not quiet:
        print(msg, flush=True)


def _train(spec, workload, device, writer, quiet, t_entry, process_age, placement):
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    seed_everything(spec["seed"], spec["deterministic"], device)

    t0 = time.perf_counter()
    splits = datasets.load(workload.dataset, spec)
    if spec["augment"]:
        datasets.featurewise_normalise(splits)
    n_train = len(splits.y_train)
    check_batch_sizes(spec, n_train, workload.name)
    splits = splits.to(device).as_float()
    data_load_s = time.perf_counter() - t0

    n_in = splits.n_inputs
    model = acceleration.memory_format(spec, models.build(workload.model, spec, n_in).to(device))
    model.train()
    objective = Objective(workload.task, spec, model)
    impl = acceleration.optimizer_impl(spec, device)
    optimizer = make_optimizer(spec, [p for p in model.parameters() if p.requires_grad], impl)
    step_model = acceleration.compiled(spec, model)
    target_metric = spec["target_metric"]
    if target_metric and target_metric.endswith("accuracy") and not workload.has_accuracy:
        raise SweepbenchError(f"bad target_metric {target_metric!r} for regression workload {workload.name}; "
                              "allowed: train_loss, val_loss, test_loss")

    gen = torch.Generator(device=device).manual_seed(spec["seed"])
    gns_gen = torch.Generator(device=device).manual_seed(spec["seed"] + 1_000_003)
    gns_ema = noise_scale.NoiseScaleEMA(spec["gns_ema"]) if spec["gns"] else None
    trajectory = getattr(model, "trajectory", None)
    accum = spec["accum_steps"]
    total_planned = schedules.planned_steps(spec, n_train)
    stride = max(1, math.ceil(total_planned / spec["steps_cap"]))
    clock = Clock(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    metrics_rows, step_rows = [], []
    step_times, step_samples = [], []
    pending = []  # (step, epoch, lr, batch, loss tensor, time mark, params) not yet read back
    eval_time = 0.0
    state = initial_state(spec, total_planned)

    def do_eval():
        nonlocal eval_time
        t = time.perf_counter()
        row = row_head(state, clock.total)
        row.update(evaluate(model, objective, splits, spec["eval_batch_size"], spec["eval_max_samples"], spec))
        if gns_ema is not None:
            row["grad_noise_scale"] = measure_noise_scale(model, objective, splits, state["batch"] or
                                                          schedules.batch_size_at(spec, 0, n_train),
                                                          spec["gns_batches"], gns_gen, gns_ema, spec["augment"])
        if spec["save_best"]:
            keep_if_best(row)
        eval_time += time.perf_counter() - t
        row["eval_s"] = eval_time
        metrics_rows.append(row)
        return row

    best_model = {"metric": "val_accuracy" if workload.has_accuracy else "val_loss", "value": None, "step": None,
                  "state": None}

    def keep_if_best(row):
        """seed 003: keep the weights of the best validation evaluation (first one on ties)."""
        value = row.get(best_model["metric"])
        if value is None or not math.isfinite(value):
            return
        if best_model["value"] is None or (value > best_model["value"] if workload.has_accuracy
                                           else value < best_model["value"]):
            best_model.update(value=value, step=row["step"],
                              state={k: v.detach().clone() for k, v in model.state_dict().items()})

    def flush():
        """Read back pending losses and times; check divergence. Returns True when diverged."""
        if not pending:
            return False
        losses = torch.stack([p[4] for p in pending]).tolist()
        seconds = [clock.resolve(p[5]) for p in pending]
        step_times.extend(seconds)
        diverged = read_window([(p[0], p[1], p[2], p[3], p[6]) for p in pending], losses, seconds, state, spec,
                               stride, step_rows)
        pending.clear()
        return diverged

    t_ready = time.perf_counter()
    startup_s = (process_age or 0.0) + (t_ready - t_entry) if process_age is not None else None
    compile_s = acceleration.warm_up(spec, step_model, model, _warmup_batches(spec, splits, n_train),
                                     objective.data_loss)
    first = do_eval()
    set_initial_loss(state, first, workload.name)
    _log(quiet, f"[{workload.name}] step 0: train_loss {first['train_loss']:.4g}")

    cast = acceleration.autocast(spec, device)  # entered once per micro-batch, made once
    graphs = spec["compile"] == "reduce-overhead"
    prev_epoch_loss = None
    convergence_epoch = None
    stop = False
    epoch = 0
    for epoch in range(spec["epochs"]):
        batch = schedules.batch_size_at(spec, epoch, n_train)
        clock.start()  # the epoch's sampling and gather are training time
        # One gather per epoch puts the samples in visiting order; batches are then slices (views),
        # which costs less per step than gathering each batch (airbench).
        order = visiting_order(spec, n_train, batch, gen)
        if order is None:
            x_epoch, y_epoch = splits.x_train, splits.y_train
        else:
            x_epoch, y_epoch = splits.x_train[order], splits.y_train[order]
        n_epoch = len(y_epoch)
        micro = [slice(i, min(i + batch, n_epoch)) for i in range(0, n_epoch, batch)]
        groups = [micro[i:i + accum] for i in range(0, len(micro), accum)]
        state["epoch_losses"] = []
        for gi, group in enumerate(groups):
            step = state["step"]
            lr = schedules.lr_at(spec, step, epoch, total_planned)
            if lr != optimizer.param_groups[0]["lr"]:
                for g in optimizer.param_groups:
                    g["lr"] = lr
            n_update = sum(m.stop - m.start for m in group)
            mark = clock.step_begin()
            optimizer.zero_grad(set_to_none=True)
            total = None
            if graphs:
                acceleration.new_step(spec)
            for idx in group:
                xb = splits.inputs(x_epoch[idx])
                if spec["augment"]:
                    xb = _random_shift_flip(xb, gen)
                if spec["channels_last"]:
                    xb = acceleration.format_batch(spec, xb)
                yb = y_epoch[idx]
                with cast:
                    loss = objective.data_loss(step_model(xb), yb)
                if objective.reg:
                    loss = loss + objective.penalty()
                share = len(yb) / n_update
                (loss * share).backward() if accum > 1 else loss.backward()
                part = loss.detach() * share if accum > 1 else loss.detach()
                total = part if total is None else total + part
            optimizer.step()
            mark = clock.step_end(mark)
            state["step"] = step + 1
            state["samples"] += n_update
            state["lr"], state["batch"] = lr, batch * accum
            state["epoch_float"] = epoch + (gi + 1) / len(groups)
            step_samples.append(n_update)
            params = None
            if trajectory is not None and step % stride == 0:
                params = {k: v.detach().clone() for k, v in trajectory().items()}
            pending.append((step + 1, epoch + (gi + 1) / len(groups), lr, n_update, total, mark, params))
            last_step = spec["max_steps"] and state["step"] >= spec["max_steps"]
            eval_now = spec["eval_every"] and state["step"] % spec["eval_every"] == 0 and gi + 1 < len(groups)
            if len(pending) >= FLUSH_EVERY or eval_now or last_step or gi + 1 == len(groups):
                clock.stop()
                if flush():
                    state["status"], state["stop_reason"] = "diverged", state["diverge_reason"]
                    stop = True
                    break
                if eval_now:
                    row = do_eval()
                    if _after_eval(row, spec, state):
                        stop = True
                        break
                if last_step:
                    state["stop_reason"] = f"max_steps={spec['max_steps']} reached"
                    stop = True
                    break
                clock.start()
        else:
            clock.stop()
        if stop and state["status"] == "diverged":
            do_eval()
            break
        epoch_loss = sum(state["epoch_losses"]) / max(len(state["epoch_losses"]), 1)
        row = metrics_rows[-1] if metrics_rows[-1]["step"] == state["step"] else do_eval()
        _log(quiet, f"[{workload.name}] epoch {epoch + 1}: step {state['step']} loss {epoch_loss:.4g} "
                    f"train_loss {row['train_loss']:.4g}"
                    + (f" val_acc {row['val_accuracy']:.4f}" if row.get("val_accuracy") is not None else ""))
        if stop:
            break
        stop, convergence_epoch = epoch_verdict(row, epoch_loss, prev_epoch_loss, spec, state, epoch)
        if stop:
            break
        prev_epoch_loss = epoch_loss

    best = reload_best(spec, workload, device, writer, splits, best_model, n_in) if spec["save_best"] else None
    return _finish(spec, workload, device, writer, splits, model, metrics_rows, step_rows, step_times,
                   step_samples, state, clock, eval_time, convergence_epoch, target_metric,
                   {"startup_s": startup_s, "data_load_s": data_load_s, "compile_s": compile_s,
                    "total_s": time.perf_counter() - t_entry}, gns_ema, best,
                   acceleration.record(spec, impl, compile_s), placement)


def _warmup_batches(spec, splits, n_train) -> list:
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


def reload_best(spec, workload, device, writer, splits, best_model, n_in) -> dict | None:
    """Save the best weights as model.pt, load them into a fresh model and evaluate it on every
    split (seed 003: keep the best model, re-load it, evaluate it on the test set)."""
    if best_model["state"] is None:
        return None
    path = os.path.join(writer.tmp, "model.pt")
    torch.save(best_model["state"], path)
    fresh = models.build(workload.model, spec, n_in).to(device)
    fresh.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    fresh = acceleration.memory_format(spec, fresh)
    scores = evaluate(fresh, Objective(workload.task, spec, fresh), splits, spec["eval_batch_size"],
                      spec["eval_max_samples"], spec)
    return {"file": "model.pt", "selected_by": best_model["metric"], "value": best_model["value"],
            "step": best_model["step"], **{f"reloaded_{k}": v for k, v in scores.items()}}


def check_batch_sizes(spec: dict, n_train: int, workload_name: str) -> None:
    """Batch sizes above the training set are bad input, unless clip_batch_size clips them."""
    if spec["clip_batch_size"]:
        return
    if spec["batch_size"] != "full" and spec["batch_size"] > n_train:
        raise SweepbenchError(f"bad batch_size {spec['batch_size']}; allowed: 1..{n_train} "
                              f"(the training set of {workload_name} has {n_train} samples) or 'full'")
    for b in spec["batch_cycle"] if spec["batch_schedule"] == "cyclic" else []:
        if b > n_train:
            raise SweepbenchError(f"bad batch_cycle entry {b}; allowed: 1..{n_train} (training set size)")


def visiting_order(spec: dict, n_train: int, batch: int, gen: torch.Generator):
    """The sample indices of one epoch in visiting order, drawn from the run's generator: a
    permutation (shuffle), n_batches x batch uniform draws (replacement), or None for
    sequential (the stored order)."""
    if spec["sampling"] == "shuffle":
        return torch.randperm(n_train, device=gen.device, generator=gen)
    if spec["sampling"] == "replacement":
        return torch.randint(0, n_train, (math.ceil(n_train / batch) * batch,), device=gen.device, generator=gen)
    return None


def set_initial_loss(state: dict, first_row: dict, workload_name: str) -> None:
    """The step-0 training loss, which divergence is measured against; it must be finite."""
    state["initial_loss"] = first_row["train_loss"]
    if not math.isfinite(first_row["train_loss"]):
        raise SweepbenchError(f"initial training loss of {workload_name} is not finite; check the data")


def initial_state(spec: dict, total_planned: int) -> dict:
    """A run's progress and verdict, updated as it trains (read by _finish)."""
    return {"step": 0, "samples": 0, "lr": schedules.lr_at(spec, 0, 0, total_planned), "batch": None,
            "window_losses": [], "epoch_losses": [], "status": "completed", "stop_reason": "budget exhausted",
            "diverged_at": None, "diverge_reason": None, "initial_loss": math.nan, "met_target": 0,
            "epoch_float": 0.0}


def row_head(state: dict, wall_s: float) -> dict:
    """The first columns of a metrics.csv row; empties the evaluation window of mini-batch losses."""
    losses = state["window_losses"]
    state["window_losses"] = []
    return {"step": state["step"], "epoch": round(state["epoch_float"], 6), "samples": state["samples"],
            "wall_s": wall_s, "lr": state["lr"], "batch_size": state["batch"],
            "epoch_loss": sum(losses) / len(losses) if losses else None}


def read_window(steps: list, losses: list, seconds: list, state: dict, spec: dict, stride: int,
                step_rows: list) -> bool:
    """Take in a window of steps read back from the device: steps.csv rows (every `stride`-th
    step, and every step that carries parameters), the losses into the evaluation and epoch
    windows, and the divergence check: a non-finite mini-batch loss, or the window's mean loss
    above diverge_factor x the initial loss (sweepbench.rules.is_diverged). `steps` holds
    (step, epoch, lr, batch, params or None). Sets state's divergence fields; True when diverged."""
    diverged = False
    for (step, epoch, lr, batch, params), loss, sec in zip(steps, losses, seconds):
        if params is not None or (step - 1) % stride == 0:
            row = {"step": step, "epoch": epoch, "lr": lr, "batch_size": batch, "loss": loss, "step_time_s": sec}
            if params is not None:
                row.update({k: float(v) for k, v in params.items()})
            step_rows.append(row)
        if not math.isfinite(loss) and not diverged:
            diverged = True
            state["diverged_at"], state["diverge_reason"] = step, f"non-finite mini-batch loss ({loss})"
    state["window_losses"].extend(losses)
    state["epoch_losses"].extend(losses)
    window_mean = sum(losses) / len(losses)
    if not diverged and rules.is_diverged(window_mean, state["initial_loss"], spec["diverge_factor"]):
        diverged = True
        state["diverged_at"] = steps[-1][0]
        state["diverge_reason"] = (f"mean mini-batch loss {window_mean:.4g} above {spec['diverge_factor']:g} x "
                                   f"initial loss {state['initial_loss']:.4g}")
    return diverged


def epoch_verdict(row: dict, epoch_loss: float, prev_epoch_loss, spec: dict, state: dict, epoch: int):
    """After an epoch's evaluation `row`: stop when the training loss diverged, the target held
    (seed 000's rule, `_after_eval`) or the epoch-mean loss converged (sweepbench.rules).
    Sets state's status and stop_reason; returns (stop, convergence_epoch or None)."""
    if rules.is_diverged(row["train_loss"], state["initial_loss"], spec["diverge_factor"]):
        state["status"] = "diverged"
        state["diverged_at"] = state["step"]
        state["stop_reason"] = state["diverge_reason"] = (
            f"training loss {row['train_loss']:.4g} above {spec['diverge_factor']:g} x initial loss")
        return True, None
    if _after_eval(row, spec, state):
        return True, None
    if prev_epoch_loss is not None and rules.is_converged(prev_epoch_loss, epoch_loss, spec["converge_tol"]):
        state["status"] = "converged"
        state["stop_reason"] = (f"epoch-mean loss changed by less than {spec['converge_tol']:g} "
                                f"relative to the previous epoch")
        return True, epoch + 1
    return False, None


def _after_eval(row, spec, state) -> bool:
    """Seed 000's StopAtAccuracy: stop once the target held for `patience` evaluations in a row."""
    metric, target = spec["target_metric"], spec["target"]
    if not (spec["stop_at_target"] and metric and target is not None):
        return False
    state["met_target"] = state["met_target"] + 1 if rules.reaches(row.get(metric), target, metric) else 0
    if state["met_target"] >= spec["patience"]:
        state["status"] = "target_reached"
        state["stop_reason"] = f"{metric} reached {target:g} for {spec['patience']} evaluation(s)"
        return True
    return False


def _best(metrics_rows, metric):
    values = [(r.get(metric), r["step"]) for r in metrics_rows if r.get(metric) is not None
              and math.isfinite(r[metric])]
    if not values:
        return None, None
    pick = max if rules.higher_is_better(metric) else min
    return pick(values, key=lambda v: v[0])


def _finish(spec, workload, device, writer, splits, model, metrics_rows, step_rows, step_times, step_samples,
            state, clock, eval_time, convergence_epoch, target_metric, timing, gns_ema, best_model, speed,
            placement):
    metric_names = [f"{s}_{m}" for s in ("train", "val", "test") for m in ("loss", "accuracy")]
    final_row = metrics_rows[-1]
    final = {k: final_row.get(k) for k in ["step", "epoch", "samples"] + metric_names}
    best = {}
    for m in metric_names:
        value, step = _best(metrics_rows, m)
        best[m] = value
        best[f"{m}_step"] = step

    to_target = {"metric": target_metric, "target": spec["target"], "reached": False,
                 "step": None, "epoch": None, "samples": None, "wall_s": None}
    if target_metric and spec["target"] is not None:
        i = rules.first_crossing([r.get(target_metric) for r in metrics_rows], spec["target"], target_metric)
        if i is not None:
            hit = metrics_rows[i]
            to_target.update(reached=True, step=hit["step"], epoch=hit["epoch"], samples=hit["samples"],
                             wall_s=hit["wall_s"])

    warm = min(spec["timing_warmup_steps"], len(step_times) // 2)
    timed, timed_samples = np.array(step_times[warm:]), sum(step_samples[warm:])
    throughput = {
        "samples_per_s": float(timed_samples / timed.sum()) if len(timed) and timed.sum() > 0 else None,
        "step_time_median_s": float(np.median(timed)) if len(timed) else None,
        "step_time_p10_s": float(np.percentile(timed, 10)) if len(timed) else None,
        "step_time_p90_s": float(np.percentile(timed, 90)) if len(timed) else None,
        "warmup_steps": warm,
        "timed_steps": int(len(timed)),
        "samples_per_s_wall": state["samples"] / clock.total if clock.total > 0 else None,
    }
    if device.type == "cuda":
        memory = {"peak_mb": torch.cuda.max_memory_allocated(device) / 2**20, "kind": "cuda_max_allocated"}
    else:
        import resource

        memory = {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "kind": "process_max_rss"}

    counts = models.count_parameters(model)
    record_dict = {
        "schema_version": record.SCHEMA_VERSION,
        "status": state["status"],
        "stop_reason": state["stop_reason"],
        "spec": spec,
        "workload": {"name": workload.name, "dataset": workload.dataset, "model": workload.model,
                     "task": workload.task, **counts, **splits.counts, "val_is_test": splits.val_is_test,
                     "synthetic": spec["synthetic"]},
        "final": final,
        "best": best,
        "to_target": to_target,
        "convergence": {"tol": spec["converge_tol"], "converged": convergence_epoch is not None,
                        "epoch": convergence_epoch},
        "divergence": {"diverged": state["status"] == "diverged", "step": state["diverged_at"],
                       "reason": state["diverge_reason"], "initial_loss": state["initial_loss"],
                       "factor": spec["diverge_factor"]},
        "throughput": throughput,
        "timing": {"train_s": clock.total, "eval_s": eval_time, **timing,
                   "steps": state["step"], "epochs": final_row["epoch"]},
        "memory": memory,
        "speed": speed,
        "placement": placement,
        "grad_noise_scale": gns_ema.value() if gns_ema is not None else None,
        "best_model": best_model,
        "provenance": provenance.collect(device, spec),
    }
    metric_columns = list(record.METRIC_COLUMNS) + (["grad_noise_scale"] if gns_ema is not None else [])
    step_columns = list(record.STEP_COLUMNS)
    if getattr(model, "trajectory", None) is not None:
        step_columns += list(model.trajectory().keys())
    writer.write(metrics_rows, metric_columns, step_rows, step_columns, record_dict)
    return record_dict
