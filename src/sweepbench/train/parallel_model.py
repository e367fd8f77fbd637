"""One rank's model of a data-parallel run: DistributedDataParallel around the run's module.

Every rank draws the same epoch order (same seed) and the engine cuts it into global batches of
N x batch_size samples, exactly the batches one process would take at batch N x batch_size.
Each rank trains on its contiguous share of every global batch (rank r of N: samples
[len x r / N, len x (r + 1) / N) of it, so b each when the batch is full). Its loss is weighted by
its share of the update's samples, times N, so DDP's average of the ranks' gradients is the mean
gradient over the whole global batch, also for a shorter last batch. A rank whose share is empty
(a last batch shorter than N) runs one sample at weight 0, so it still joins the all-reduce.
Models with batch norm normalise each rank's share by its own statistics (as DDP does without
SyncBatchNorm), so only models without batch norm equal the one-process run.

Across ranks, at each read-back: the mini-batch losses are summed (each rank's share of the global
mean) and each step's time is the slowest rank's (all-gathered, maximum). Evaluation runs on
rank 0 alone, outside the training clock, and its scores are sent to the others, so every rank
takes the same stop decisions. The record keeps each rank's median step time.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sweepbench.train.engine import SingleModel


def shard(idx: slice, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous share of a global batch."""
    n = idx.stop - idx.start
    return slice(idx.start + n * rank // world, idx.start + n * (rank + 1) // world)


class DataParallelModel(SingleModel):
    """SingleModel's module wrapped in DistributedDataParallel (the process group is up)."""

    def __init__(self, specs: list[dict], workload, splits, device: torch.device):
        super().__init__(specs, workload, splits, device)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = device
        ids = [torch.cuda.current_device()] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.module, device_ids=ids)
        self.step_model = self.ddp
        self.rank_times: list[list[float]] = [[] for _ in range(self.world)]

    def step(self, data, group: list[slice], n_update: int, lrs: list[float], gen: torch.Generator):
        """This rank's share of each micro-batch of `group` (gradients synchronised on the last),
        then one update; returns this rank's share of the update's mean loss."""
        x_epoch, y_epoch = data
        (lr,) = lrs
        optimizer = self.optimizer
        if lr != optimizer.param_groups[0]["lr"]:
            for g in optimizer.param_groups:
                g["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        total = None
        for i, idx in enumerate(group):
            part = shard(idx, self.rank, self.world)
            n_part = part.stop - part.start
            if n_part == 0:
                part = slice(idx.start, idx.start + 1)   # joins the all-reduce at weight 0
            xb, yb = self._inputs(x_epoch[part], gen), y_epoch[part]
            sync = contextlib.nullcontext() if i + 1 == len(group) else self.ddp.no_sync()
            with sync:
                with self.cast:
                    loss = self.objective.data_loss(self.ddp(xb), yb)
                if self.objective.reg:
                    loss = loss + self.objective.penalty()
                share = n_part / n_update
                (loss * (share * self.world)).backward()
            contribution = loss.detach() * share
            total = contribution if total is None else total + contribution
        optimizer.step()
        return total

    def evaluate(self, ks: list[int], splits) -> list[dict]:
        """Rank 0 evaluates (every rank holds the same weights); the others receive its scores."""
        box = [super().evaluate(ks, splits) if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def across_ranks(self, losses: torch.Tensor, seconds: list[float]) -> tuple[torch.Tensor, list[float]]:
        """A read-back window over all ranks: the global batch's losses (the ranks' shares summed) and
        each step's slowest rank's time."""
        losses = losses.to(torch.float64)
        dist.all_reduce(losses)
        mine = torch.tensor(seconds, dtype=torch.float64, device=self.device)
        every = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(every, mine)
        for r, t in enumerate(every):
            self.rank_times[r].extend(t.tolist())
        return losses, torch.stack(every).max(dim=0).values.tolist()

    def slowest(self, seconds: float) -> float:
        """The largest of every rank's value (the training clock: the slowest rank's)."""
        t = torch.tensor([seconds], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def describe(self, spec: dict, threads: int) -> dict:
        """run.json's `distributed` section of this run."""
        warm = min(spec["timing_warmup_steps"], len(self.rank_times[0]) // 2)
        timed = [t[warm:] for t in self.rank_times]
        pooled = np.concatenate([np.asarray(t) for t in timed]) if timed and len(timed[0]) else np.array([])
        return {"world_size": self.world, "backend": dist.get_backend(), "per_worker_batch": spec["batch_size"],
                "global_batch": self.world * spec["batch_size"] * spec["accum_steps"], "threads_per_rank": threads,
                "step_time": "slowest rank per step (all-gathered maximum)",
                "rank_step_time_median_s": [float(np.median(t)) if len(t) else None for t in timed],
                "all_ranks_step_time_p50_s": float(np.percentile(pooled, 50)) if len(pooled) else None,
                "all_ranks_step_time_p90_s": float(np.percentile(pooled, 90)) if len(pooled) else None,
                "timeout_s": spec["dist_timeout_s"]}
