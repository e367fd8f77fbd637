"""Runs trained at once as one model with stacked parameters: a cell's seeds, or whole grids.

A small model (softmax regression, an MLP, LeNet-5) leaves the CPU or GPU mostly idle at
small batch sizes: each step is dominated by per-call overhead, not arithmetic. Stacking K
runs' weights makes one step train all K for little more than the cost of one: each dense
layer is one batched matrix product (torch.baddbmm over (K, B, features)), each convolution one
grouped convolution (groups=K over (B, K x channels, H, W)), each batch norm one batch norm over
K x channels. (torch.func.vmap does the same generically, but its per-call overhead made it
3x slower than these batched products for the MLPs here; benchmarks/README.md.)

The training loop is the engine's (sweepbench.train.engine.train_runs); only the model differs.
Each run stays what it would be alone: its own seed's initial weights, its own sampling order
(its own generator), its own hyper-parameters (learning rate and schedule, momentum, weight
decay, entropy and L2 terms: a stack may mix them; one optimizer kind per stack), the same
update rule (sweepbench.train.optimizers' rules are elementwise, so one update of the stacked
tensors is K independent updates), its own evaluation and its own stopping verdict. A run
that stops keeps its record from that point and leaves the stack at the next epoch, so it
costs no more compute. Batched kernels round differently from unbatched ones, so the metrics
equal those of separate runs to float tolerance, not bit for bit (tests check this).
Timing: a stacked step is timed once and shared by its runs; run.json's speed.batched_runs
says how many runs shared it and speed.stack which stack it was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sweepbench import SweepbenchError
from sweepbench.data import datasets
from sweepbench.plan.stacks import check_stackable
from sweepbench.train import models
from sweepbench.train.engine import Job, current_batch, model_input, seed_everything, train_runs
from sweepbench.train.objective import Objective, gns_sample, noise_scale_batch, noise_scale_update
from sweepbench.train.optimizers import ForeachOptimizer

HYPER = ("momentum", "weight_decay")  # per-run optimizer hyper-parameters a stack may mix (and lr)
EVAL_ELEMENTS = 1 << 24  # inputs (K x samples x features) per stacked evaluation batch: 64 MB of float32


def train_stack(specs: list[dict], out_dirs: list[str], quiet: bool = False, ready_since: float | None = None,
                placement: dict | None = None, stack: str | None = None) -> list[dict]:
    """Train the runs `specs` as one stacked model; write one record per run to the matching
    out_dir. Returns the run.json contents in order."""
    check_stackable(specs)
    return train_runs(specs, Job(out_dirs, ready_since, placement, quiet, stack), StackedModel)



class StackedModel:
    """K runs of one architecture as stacked parameters. A stacked parameter's dim 0 holds the
    runs' rows one run after another (`per_run[name]` rows each): (K, out, in) for a dense
    layer, (K x out, in, kh, kw) for a convolution, (K x C,) for biases and batch norms.
    `rows` says which run each block of rows belongs to."""

    impl = "foreach"

    def __init__(self, specs: list[dict], workload, splits: datasets.Splits, device: torch.device):
        nets = []
        for spec in specs:  # each run's initial weights, exactly as a run alone draws them
            seed_everything(spec["seed"], spec["deterministic"], device)
            nets.append(models.build(workload.model, spec, model_input(splits, workload.task)).to(device))
        self.specs, self.device, self.probe = specs, device, nets[0]
        self.layers = list(self.probe)
        self.rows = list(range(len(specs)))
        self.params, self.buffers, self.per_run = stack_tensors(nets)
        self.objectives = [Objective(workload.task, spec, self.probe) for spec in specs]
        self.weight_names = [n for n in self.params if n.endswith("weight") and self.params[n].dim() > 1]
        self.optimizer = ForeachOptimizer(specs[0]["optimizer"], list(self.params.values()), lr=specs[0]["lr"],
                                          **{h: self.hyper([s[h] for s in specs]) for h in HYPER})
        self._lrs = None

    # -- per-run values ------------------------------------------------------------------
    def hyper(self, values: list):
        """One number when every run in the stack has it, else per-parameter broadcast tensors."""
        if len(set(values)) == 1:
            return values[0]
        col = torch.tensor(values, dtype=torch.float32, device=self.device)
        return [col.repeat_interleave(self.per_run[n]).view(-1, *[1] * (p.dim() - 1))
                for n, p in self.params.items()]

    def keep(self, runs: list[int]) -> None:
        """Drop the rows of runs that stopped (parameters, buffers, optimizer state)."""
        if runs == self.rows:
            return
        pos = torch.tensor([self.rows.index(k) for k in runs], device=self.device)
        index = {n: (pos[:, None] * r + torch.arange(r, device=self.device)).reshape(-1)
                 for n, r in self.per_run.items()}
        self.params = {n: p.detach()[index[n]].clone().requires_grad_() for n, p in self.params.items()}
        self.buffers = {n: b[index[n]].clone() for n, b in self.buffers.items()}
        names = list(self.params)
        opt = self.optimizer
        opt.params = list(self.params.values())
        opt.keep_rows(lambda i: index[names[i]])
        self.rows = list(runs)
        opt.momentum, opt.weight_decay = (self.hyper([self.specs[k][h] for k in runs]) for h in HYPER)
        self._lrs = None

    # -- training ------------------------------------------------------------------------
    def warm_up(self, run) -> float:
        return 0.0

    def epoch_data(self, splits: datasets.Splits, orders: list):
        """Each run's visiting order (K, n); batches are gathered per step."""
        n = len(splits.y_train)
        if orders[0] is None:  # sequential: the stored order for every run
            stacked = torch.arange(n, device=splits.y_train.device).expand(len(orders), n)
        else:
            stacked = torch.stack(orders)
        return (splits, stacked), stacked.shape[1]

    def step(self, data, group: list[slice], n_update: int, lrs: list[float], gen) -> torch.Tensor:
        """One update of the K runs, each at its learning rate; returns their losses (K,) on the device."""
        splits, orders = data
        (sl,) = group  # no gradient accumulation in a stack
        if lrs != self._lrs:
            self.optimizer.param_groups[0]["lr"], self._lrs = self.hyper(lrs), lrs
        idx = orders[:, sl]
        losses = self.losses(splits.inputs(splits.x_train[idx]), splits.y_train[idx])
        self.optimizer.zero_grad()
        losses.sum().backward()  # runs are independent: each gets its own gradient
        self.optimizer.step()
        return losses.detach()

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each run's mean mini-batch loss (K,) on its own batch x (K, B, ...), y (K, B), as
        Objective.data_loss (+ penalty) computes it with that run's entropy and L2 terms."""
        return self.per_sample_losses(self.forward(x, training=True), y).mean(1) + self.penalties()

    def per_sample_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(K, B) cross entropy plus each run's entropy term, for logits out (K, B, C)."""
        k, b = y.shape
        loss = F.cross_entropy(out.reshape(k * b, -1), y.reshape(-1), reduction="none").reshape(k, b)
        alphas = [self.objectives[r].alpha for r in self.rows]
        if any(alphas):
            logp = F.log_softmax(out, dim=2)
            entropy = -(logp.exp() * logp).sum(dim=2)
            loss = loss + torch.tensor(alphas, device=out.device)[:, None] * entropy
        return loss

    def penalties(self):
        """Each run's L2 term 0.5 * reg_lambda * ||W||^2 (K,), or 0."""
        regs = [self.objectives[r].reg for r in self.rows]
        if not any(regs):
            return 0.0
        k = len(self.rows)
        sq = sum((self.params[n] * self.params[n]).reshape(k, -1).sum(1) for n in self.weight_names)
        return 0.5 * torch.tensor(regs, device=sq.device) * sq

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """The layers on each run's inputs x (K, B, ...) with its weights; logits (K, B, classes)."""
        return stacked_forward(self, x, training)

    # -- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, ks: list[int], splits: datasets.Splits) -> list[dict]:
        """Loss and accuracy of runs ks on each split, every run of the stack in one forward pass
        per batch (the same definitions as sweepbench.train.objective.evaluate)."""
        spec = self.specs[ks[0]]
        parts = [("train", splits.x_train, splits.y_train), ("test", splits.x_test, splits.y_test)]
        if not splits.val_is_test:
            parts.insert(1, ("val", splits.x_val, splits.y_val))
        k = len(self.rows)
        penalty = self.penalties()
        penalty = penalty.tolist() if torch.is_tensor(penalty) else [0.0] * k
        # batches of at most eval_batch_size samples, and of at most EVAL_ELEMENTS inputs for all K runs
        chunk = max(1, min(spec["eval_batch_size"], EVAL_ELEMENTS // (k * splits.n_inputs)))
        scores = {r: {} for r in self.rows}
        for name, x, y in parts:
            if spec["eval_max_samples"]:
                x, y = x[:spec["eval_max_samples"]], y[:spec["eval_max_samples"]]
            loss_sum = torch.zeros(k, device=y.device, dtype=torch.float64)
            correct = torch.zeros(k, device=y.device, dtype=torch.int64)
            for i in range(0, len(y), chunk):
                xb, yb = splits.inputs(x[i:i + chunk]), y[i:i + chunk]
                out = self.forward(xb.expand(k, *xb.shape), training=False)
                loss_sum += self.per_sample_losses(out, yb.expand(k, len(yb))).sum(1).double()
                correct += (out.argmax(dim=2) == yb).sum(1)
            for j, r in enumerate(self.rows):
                scores[r][f"{name}_loss"] = float(loss_sum[j]) / len(y) + penalty[j]
                scores[r][f"{name}_accuracy"] = int(correct[j]) / len(y)
        for r in self.rows:
            if splits.val_is_test:
                scores[r]["val_loss"], scores[r]["val_accuracy"] = scores[r]["test_loss"], scores[r]["test_accuracy"]
        return [scores[r] for r in ks]

    def noise_scales(self, ks: list[int], run) -> list[float]:
        """Runs ks' gradient noise scales, each updated by one estimate as
        sweepbench.train.objective.measure_noise_scale makes it for a run alone (the same small batches
        from each run's generator), with every run of the stack in one forward and backward pass
        per small batch; batch-norm statistics are restored afterwards."""
        spec = self.specs[ks[0]]
        b = noise_scale_batch(spec, current_batch(run, ks[0]), len(run.splits.y_train))
        params = list(self.params.values())
        buffers = {name: t.clone() for name, t in self.buffers.items()}
        k_all, grads = len(self.rows), []
        for _ in range(spec["gns_batches"]):
            drawn = {k: gns_sample(run.splits, b, self.specs[k], run.gns_gens[k]) for k in ks}
            filler = drawn[ks[0]]  # runs not measured now get any batch; their gradients are dropped
            x = torch.stack([drawn.get(r, filler)[0] for r in self.rows])
            y = torch.stack([drawn.get(r, filler)[1] for r in self.rows])
            losses = self.per_sample_losses(self.forward(x, training=True), y).mean(1)
            g = torch.autograd.grad(losses.sum(), params)  # runs are independent: each its own gradient
            grads.append(torch.cat([gi.reshape(k_all, -1) for gi in g], dim=1))
        with torch.no_grad():
            for name, t in self.buffers.items():
                t.copy_(buffers[name])
        per_run = torch.stack(grads, dim=1)  # (K, gns_batches, P)
        return [noise_scale_update(per_run[self.rows.index(k)], b, run.gns[k]) for k in ks]

    @torch.no_grad()
    def module_for(self, k: int) -> nn.Module:
        """The probe module holding run k's current weights and batch-norm statistics."""
        j = self.rows.index(k)
        params, buffers = dict(self.probe.named_parameters()), dict(self.probe.named_buffers())
        for name, p in self.params.items():
            r = self.per_run[name]
            params[name].copy_(p[j * r:(j + 1) * r].reshape(params[name].shape))
        for name, b in self.buffers.items():
            r = self.per_run[name]
            buffers[name].copy_(b[j * r:(j + 1) * r].reshape(buffers[name].shape))
        return self.probe

    def trajectory(self):
        return None

    def trajectory_names(self) -> list[str]:
        return []


STACKABLE_LAYERS = (nn.Flatten, nn.Linear, nn.ReLU, nn.Tanh, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d,
                    nn.AvgPool2d)


def stack_tensors(nets: list[nn.Module]) -> tuple[dict, dict, dict]:
    """The K nets' parameters and batch-norm statistics stacked along dim 0 (dense layers' as
    (K, out, in) and (K, out), everything else concatenated), and the rows each run has per tensor."""
    for layer in nets[0]:
        if not isinstance(layer, STACKABLE_LAYERS):
            raise SweepbenchError(f"cannot stack layer {type(layer).__name__}; allowed: "
                                  f"{', '.join(t.__name__ for t in STACKABLE_LAYERS)}")
    params, buffers, per_run = {}, {}, {}
    for name, p in nets[0].named_parameters():
        parts = [dict(m.named_parameters())[name].detach() for m in nets]
        dense = isinstance(nets[0][int(name.split(".")[0])], nn.Linear)  # (K, out, in), (K, out) for baddbmm
        params[name] = (torch.stack(parts) if dense else torch.cat(parts)).clone().requires_grad_()
        per_run[name] = 1 if dense else p.shape[0]
    for name, b in nets[0].named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffers[name] = torch.cat([dict(m.named_buffers())[name] for m in nets]).clone()
            per_run[name] = b.shape[0]
    return params, buffers, per_run


def stacked_forward(model: StackedModel, x: torch.Tensor, training: bool) -> torch.Tensor:
    """The probe's layers applied to x (K, B, ...) with each run's weights. Dense layers work on
    (K, B, features), convolutions and 2-d batch norms on (B, K x channels, H, W)."""
    k, b = x.shape[:2]
    h, dense = x, True
    for i, layer in enumerate(model.layers):
        w, bias = model.params.get(f"{i}.weight"), model.params.get(f"{i}.bias")
        if isinstance(layer, nn.Flatten):
            h = h.reshape(k, b, -1) if dense else h.reshape(b, k, -1).transpose(0, 1)
            dense = True
        elif isinstance(layer, nn.Linear):
            h = torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))
        elif isinstance(layer, (nn.ReLU, nn.Tanh)):
            h = layer(h)
        elif isinstance(layer, nn.Conv2d):
            h = h.transpose(0, 1).reshape(b, -1, *h.shape[-2:]) if dense else h
            dense = False
            h = F.conv2d(h, w, bias, layer.stride, layer.padding, layer.dilation, groups=k)
        elif isinstance(layer, nn.AvgPool2d):
            h = layer(h)
        else:  # batch norm: per run and channel, so over K x channels at once
            h = _batch_norm(model, i, layer, h, training, dense)
            if dense is True and isinstance(layer, nn.BatchNorm2d):
                dense = False
    return h


def _batch_norm(model: StackedModel, i: int, layer, h: torch.Tensor, training: bool, dense: bool):
    k = len(model.rows)
    if isinstance(layer, nn.BatchNorm2d) and dense:  # the input itself: (K, B, C, H, W) -> (B, K x C, H, W)
        h = h.transpose(0, 1).reshape(h.shape[1], -1, *h.shape[-2:])
    flat = h.transpose(0, 1).reshape(h.shape[1], -1) if isinstance(layer, nn.BatchNorm1d) else h
    mean, var = model.buffers[f"{i}.running_mean"], model.buffers[f"{i}.running_var"]
    w, bias = model.params[f"{i}.weight"], model.params[f"{i}.bias"]
    if training and flat.shape[0] == 1 and isinstance(layer, models.KerasBatchNorm1d):
        with torch.no_grad():  # Keras's batch of one: the output is the shift (models.KerasBatchNorm1d)
            mean.mul_(1 - layer.momentum).add_(flat[0].detach(), alpha=layer.momentum)
            var.mul_(1 - layer.momentum)
        out = bias.expand_as(flat) + 0.0 * (flat * w)
    else:
        out = F.batch_norm(flat, mean, var, w, bias, training, layer.momentum, layer.eps)
    return out.reshape(out.shape[0], k, -1).transpose(0, 1) if isinstance(layer, nn.BatchNorm1d) else out
