"""The loss a workload trains on, and how a model is evaluated and its gradient noise measured."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sweepbench.data import datasets
from sweepbench.data.augment import random_shift_flip
from sweepbench.train import acceleration, noise_scale


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


@torch.no_grad()
def evaluate(model, objective: Objective, splits: datasets.Splits, spec: dict) -> dict:
    """Loss and accuracy on each split (its first eval_max_samples samples when > 0), in eval
    mode, in no-grad batches of eval_batch_size, with the run's precision and memory format."""
    was_training = model.training
    model.eval()
    result = {}
    parts = [("train", splits.x_train, splits.y_train), ("test", splits.x_test, splits.y_test)]
    if not splits.val_is_test:
        parts.insert(1, ("val", splits.x_val, splits.y_val))
    penalty = float(objective.penalty())
    batch_size, max_samples = spec["eval_batch_size"], spec["eval_max_samples"]
    for name, x, y in parts:
        if max_samples:
            x, y = x[:max_samples], y[:max_samples]
        loss_sum = torch.zeros((), device=y.device, dtype=torch.float64)
        correct = torch.zeros((), device=y.device, dtype=torch.int64)
        for i in range(0, len(y), batch_size):
            xb = splits.inputs(x[i:i + batch_size])
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


def noise_scale_batch(spec: dict, batch_size: int, n: int) -> int:
    """The small batch of a noise-scale estimate: the run's batch size, at most n / gns_batches."""
    return max(1, min(batch_size, n // spec["gns_batches"]))


def gns_sample(splits, b: int, spec: dict, gen):
    """One small batch of a noise-scale estimate: b samples drawn with replacement (and
    augmented as in training) from the run's generator."""
    idx = torch.randint(0, len(splits.y_train), (b,), device=splits.y_train.device, generator=gen)
    xb = splits.inputs(splits.x_train[idx])
    return (random_shift_flip(xb, gen) if spec["augment"] else xb), splits.y_train[idx]


def noise_scale_update(grads: torch.Tensor, b: int, ema: noise_scale.NoiseScaleEMA) -> float:
    """One B_simple update from the gradients (gns_batches, P) of gns_batches small batches of
    size b: mean squared norm of the small-batch gradients, squared norm of their mean."""
    small = float((grads * grads).sum(dim=1).mean())
    mean = grads.mean(dim=0)
    return ema.update(small, b, float((mean * mean).sum()), b * len(grads))


def measure_noise_scale(model, objective: Objective, splits, batch_size: int, spec: dict, gen,
                        ema: noise_scale.NoiseScaleEMA) -> float:
    """One B_simple update from gns_batches independent batches of size b (small) and their mean
    (size gns_batches x b); batch-norm buffers are restored afterwards."""
    b = noise_scale_batch(spec, batch_size, len(splits.y_train))
    params = [p for p in model.parameters() if p.requires_grad]
    buffers = {name: t.clone() for name, t in model.named_buffers()}
    grads = []
    for _ in range(spec["gns_batches"]):
        xb, yb = gns_sample(splits, b, spec, gen)
        loss = objective.data_loss(model(xb), yb)
        g = torch.autograd.grad(loss, params, allow_unused=True)
        grads.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                                for gi, p in zip(g, params)]))
    with torch.no_grad():
        for name, t in model.named_buffers():
            t.copy_(buffers[name])
    return noise_scale_update(torch.stack(grads), b, ema)
