"""The seeds of one cell trained at once as one model with stacked parameters.

A tiny model (an MLP or softmax regression) leaves the CPU or GPU mostly idle at small batch
sizes: each step is dominated by per-call overhead, not arithmetic. Stacking the K seeds'
weights along a new first dimension and running each dense layer as one batched matrix
product (torch.baddbmm) makes one step train all K runs for little more than the cost of
one. (torch.func.vmap over the model does the same generically, but its per-call overhead
made it 3x slower than these batched products for the models here; benchmarks/README.md.)

The training loop is the engine's (sweepbench.engine.train_runs); only the model differs:
`StackedModel` steps the K runs at once and hands the engine one run's weights to evaluate.
Each run stays what it would be alone: its own seed's initial weights, its own sampling
order (its own generator), the same update rule (sweepbench.optimizers' rules are
elementwise, so one update of the stacked tensors is K independent updates), the same
evaluation code and its own stopping verdict. A run that stops keeps its record from that
point; the stack trains on until every run has stopped. Batched kernels round differently
from unbatched ones, so the metrics equal those of separate runs to float tolerance, not bit
for bit (a test checks this). Timing: a stacked step is timed once and shared by its runs;
run.json's speed.batched_runs says how many runs shared it.
"""

from __future__ import annotations

import torch

from sweepbench import SweepbenchError, datasets, models
from sweepbench.engine import Job, Objective, seed_everything, train_runs
from sweepbench.optimizers import ForeachOptimizer
from sweepbench.spec import check_batchable


def train_seeds(specs: list[dict], out_dirs: list[str], quiet: bool = False, ready_since: float | None = None,
                placement: dict | None = None) -> list[dict]:
    """Train the runs `specs` (one cell's seeds) as one stacked model; write one record per run
    to the matching out_dir. Returns the run.json contents in order."""
    check_batchable(specs)
    return train_runs(specs, Job(out_dirs, ready_since, placement, quiet), StackedModel)


class StackedModel:
    """K runs of an MLP / softmax regression as stacked parameters (K, ...): one step trains all
    K; `module_for(k)` loads run k's weights into a plain module for evaluation."""

    impl = "foreach"

    def __init__(self, specs: list[dict], workload, splits: datasets.Splits, device: torch.device):
        nets = []
        for spec in specs:  # each run's initial weights, exactly as a run alone draws them
            seed_everything(spec["seed"], spec["deterministic"], device)
            nets.append(models.build(workload.model, spec, splits.n_inputs).to(device))
        self.names = [n for n, _ in nets[0].named_parameters()]
        self.params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in nets]).requires_grad_()
                       for n in self.names}
        self.probe = nets[0]  # holds one run's weights for evaluation
        self.layers = list(self.probe)
        self.objective = Objective(workload.task, specs[0], self.probe)
        self.weight_names = [n for n in self.names if n.endswith("weight") and self.params[n].dim() > 2]
        spec = specs[0]
        self.optimizer = ForeachOptimizer(spec["optimizer"], [self.params[n] for n in self.names], lr=spec["lr"],
                                          weight_decay=spec["weight_decay"], momentum=spec["momentum"])

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

    def step(self, data, group: list[slice], n_update: int, lr: float, gen) -> torch.Tensor:
        """One update of all K runs; returns their mini-batch losses (K,) on the device."""
        splits, orders = data
        (sl,) = group  # no gradient accumulation in a stack
        self.optimizer.param_groups[0]["lr"] = lr
        idx = orders[:, sl]
        losses = self.losses(splits.x_train[idx], splits.y_train[idx])
        self.optimizer.zero_grad()
        losses.sum().backward()  # runs are independent: each gets its own gradient
        self.optimizer.step()
        return losses.detach()

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each run's mean mini-batch loss (K,), as Objective.data_loss (+ penalty) computes it."""
        out = stacked_forward(self.layers, self.params, x)
        k, b = y.shape
        loss = self.objective.data_loss(out.reshape(k * b, -1), y.reshape(-1), reduction="none").reshape(k, b).mean(1)
        reg = self.objective.reg
        if reg:
            loss = loss + 0.5 * reg * sum((self.params[n] * self.params[n]).sum(dim=(1, 2)) for n in self.weight_names)
        return loss

    @torch.no_grad()
    def module_for(self, k: int):
        """The probe module holding run k's current weights."""
        params = dict(self.probe.named_parameters())
        for n in self.names:
            params[n].copy_(self.params[n][k])
        return self.probe

    def trajectory(self):
        return None

    def trajectory_names(self) -> list[str]:
        return []


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
