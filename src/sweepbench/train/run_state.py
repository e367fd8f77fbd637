"""The state of one training run as it trains, and the decisions taken on it.

A `RunState` holds everything that changes while a run trains: its progress (step, samples,
epoch, lr, batch size), the loss windows, its rows for metrics.csv and steps.csv, the step
times, its clocks, and its verdict (status, stop reason, divergence, convergence). The
trainer (sweepbench.train.engine) updates it in named sections; the record (sweepbench.record)
is built from it. A stacked group of runs (sweepbench.train.stacked) has one RunState per run.

The decisions (divergence in a read-back window, the verdict after an evaluation and after an
epoch) apply the definitions of sweepbench.rules. Importing this module is cheap (no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sweepbench import SweepbenchError, rules

FLUSH_EVERY = 64  # steps between read-backs of the mini-batch losses (one host sync per window)
TIMING_FLUSH_EVERY = 4  # a timing run (timing_ci > 0) reads back this often, so it stops near its budget


@dataclass
class PendingStep:
    """One update whose loss (a device tensor: a scalar, or one value per run of a stack) and
    time mark are not yet read back; `lrs` has each stacked run's learning rate (one for a
    single run). `params` is the trajectory of two-parameter models."""

    step: int
    epoch: float
    lrs: list
    samples: int
    loss: object
    mark: object
    params: dict | None = None


@dataclass
class RunState:
    spec: dict
    lr: float
    step: int = 0
    samples: int = 0
    epoch_float: float = 0.0
    batch: int | None = None
    window_losses: list = field(default_factory=list)   # mini-batch losses since the last evaluation
    epoch_losses: list = field(default_factory=list)    # mini-batch losses of this epoch
    prev_epoch_loss: float | None = None
    initial_loss: float = math.nan
    met_target: int = 0                                 # evaluations in a row at or past the target
    status: str = "completed"
    stop_reason: str = "budget exhausted"
    diverged_at: int | None = None
    diverge_reason: str | None = None
    convergence_epoch: int | None = None
    active: bool = True                                 # still training
    metrics_rows: list = field(default_factory=list)
    step_rows: list = field(default_factory=list)
    step_times: list = field(default_factory=list)
    step_samples: list = field(default_factory=list)
    train_s: float = 0.0                                # training clock when the run stopped
    eval_s: float = 0.0

    def stop(self, status: str | None, reason: str | None) -> None:
        """The run stops training; `status`/`reason` None keep what was set."""
        self.active = False
        if status is not None:
            self.status = status
        if reason is not None:
            self.stop_reason = reason


def row_head(state: RunState, wall_s: float) -> dict:
    """The first columns of a metrics.csv row; empties the evaluation window of mini-batch losses."""
    losses = state.window_losses
    state.window_losses = []
    return {"step": state.step, "epoch": round(state.epoch_float, 6), "samples": state.samples,
            "wall_s": wall_s, "lr": state.lr, "batch_size": state.batch,
            "epoch_loss": sum(losses) / len(losses) if losses else None}


def set_initial_loss(state: RunState, first_row: dict, workload_name: str) -> None:
    """The step-0 training loss, which divergence is measured against; it must be finite."""
    state.initial_loss = first_row["train_loss"]
    if not math.isfinite(first_row["train_loss"]):
        raise SweepbenchError(f"initial training loss of {workload_name} is not finite; check the data")


def take_window(state: RunState, window: list[PendingStep], column: int, losses: list[float],
                seconds: list[float], stride: int) -> bool:
    """Take in a window of steps read back from the device (`column`: this run's place in the
    stack, `losses` its mini-batch losses): progress up to its last step,
    steps.csv rows (every `stride`-th step, and every step that carries parameters), the losses
    into the evaluation and epoch windows, and the divergence check: a non-finite mini-batch
    loss, or the window's mean loss above diverge_factor x the initial loss
    (sweepbench.rules.is_diverged). Sets the divergence fields; True when diverged."""
    last = window[-1]
    state.step, state.epoch_float, state.lr = last.step, last.epoch, last.lrs[column]
    state.samples += sum(p.samples for p in window)
    state.step_times.extend(seconds)
    state.step_samples.extend(p.samples for p in window)
    diverged = False
    for p, loss, sec in zip(window, losses, seconds):
        if p.params is not None or (p.step - 1) % stride == 0:
            row = {"step": p.step, "epoch": p.epoch, "lr": p.lrs[column], "batch_size": p.samples, "loss": loss,
                   "step_time_s": sec}
            if p.params is not None:
                row.update({k: float(v) for k, v in p.params.items()})
            state.step_rows.append(row)
        if not math.isfinite(loss) and not diverged:
            diverged = True
            state.diverged_at, state.diverge_reason = p.step, f"non-finite mini-batch loss ({loss})"
    state.window_losses.extend(losses)
    state.epoch_losses.extend(losses)
    window_mean = sum(losses) / len(losses)
    spec = state.spec
    if not diverged and rules.is_diverged(window_mean, state.initial_loss, spec["diverge_factor"]):
        diverged = True
        state.diverged_at = last.step
        state.diverge_reason = (f"mean mini-batch loss {window_mean:.4g} above {spec['diverge_factor']:g} x "
                                f"initial loss {state.initial_loss:.4g}")
    return diverged


def after_eval(state: RunState, row: dict) -> bool:
    """Seed 000's StopAtAccuracy: stop once the target held for `patience` evaluations in a row.
    Sets the status; True when the run stops."""
    spec = state.spec
    metric, target = spec["target_metric"], spec["target"]
    if not (spec["stop_at_target"] and metric and target is not None):
        return False
    state.met_target = state.met_target + 1 if rules.reaches(row.get(metric), target, metric) else 0
    if state.met_target >= spec["patience"]:
        state.stop("target_reached", f"{metric} reached {target:g} for {spec['patience']} evaluation(s)")
        return True
    return False


def epoch_verdict(state: RunState, row: dict, epoch: int) -> bool:
    """After an epoch's evaluation `row`: stop when the training loss diverged, the target held
    (`after_eval`) or the epoch-mean loss converged (sweepbench.rules). Sets the status and
    stop reason; True when the run stops."""
    spec = state.spec
    epoch_loss = sum(state.epoch_losses) / max(len(state.epoch_losses), 1)
    if rules.is_diverged(row["train_loss"], state.initial_loss, spec["diverge_factor"]):
        state.diverged_at = state.step
        state.diverge_reason = f"training loss {row['train_loss']:.4g} above {spec['diverge_factor']:g} x initial loss"
        state.stop("diverged", state.diverge_reason)
        return True
    if after_eval(state, row):
        return True
    previous, state.prev_epoch_loss = state.prev_epoch_loss, epoch_loss
    if previous is not None and rules.is_converged(previous, epoch_loss, spec["converge_tol"]):
        state.convergence_epoch = epoch + 1
        state.stop("converged", f"epoch-mean loss changed by less than {spec['converge_tol']:g} "
                                "relative to the previous epoch")
        return True
    return False
