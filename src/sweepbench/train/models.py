"""Models of the seed workloads, as plain nn.Modules (pytorch/examples style).

Keras-born models (LeNet-5, the MLPs, softmax regression) use Keras's initialisation
(Glorot-uniform weights, zero biases) and Keras's BatchNorm settings, so they start where
the seeds started.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearNeuron(nn.Module):
    """Seeds 000/001: y = w * x + b with w = b = 0 at start."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.w * x + self.b

    def trajectory(self) -> dict:
        return {"w": self.w, "b": self.b}


class LogReg2D(nn.Module):
    """Seed 003 part I: logit = x @ W, no bias, W = [-1, 1] at start."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.tensor([-1.0, 1.0]))

    def forward(self, x):
        return x @ self.W

    def trajectory(self) -> dict:
        return {"w1": self.W[0], "w2": self.W[1]}


def mlp(n_in: int, hidden: list[int], n_out: int = 10) -> nn.Sequential:
    """Dense ReLU layers; hidden=[] is softmax regression. Logits out (softmax is in the loss)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _keras_bn2d(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class KerasBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that accepts a batch of one sample in training, as Keras does.

    With one sample the batch mean is the sample and the batch variance 0, so the output
    is the shift (beta) and the running statistics move towards (sample, 0). PyTorch's
    BatchNorm1d raises instead, which would make B=1 and a last batch of one impossible.
    """

    def forward(self, x):
        if not (self.training and x.shape[0] == 1):
            return super().forward(x)
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(x[0].detach(), alpha=m)
            self.running_var.mul_(1 - m)
            self.num_batches_tracked.add_(1)
        return self.bias.expand_as(x) + 0.0 * (x * self.weight)  # zero gradients to x and gamma


def lenet5() -> nn.Sequential:
    """Seed 002's LeNet-5: BatchNorm after every layer, tanh, average pooling.

    546,542 parameters in Keras's count (546,044 trainable + 498 BatchNorm running statistics).
    """
    return nn.Sequential(
        _keras_bn2d(1),
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), _keras_bn2d(6),
        nn.AvgPool2d(2, stride=1), _keras_bn2d(6),
        nn.Conv2d(6, 16, 5), nn.Tanh(), _keras_bn2d(16),
        nn.AvgPool2d(2, stride=2), _keras_bn2d(16),
        nn.Conv2d(16, 120, 5), nn.Tanh(), _keras_bn2d(120),
        nn.Flatten(),
        nn.Linear(120 * 7 * 7, 84), nn.Tanh(), KerasBatchNorm1d(84, eps=1e-3, momentum=0.01),
        nn.Linear(84, 10),
    )


class WideBlock(nn.Module):
    """Pre-activation wide residual block (BN-ReLU-conv x2, dropout between)."""

    def __init__(self, c_in, c_out, stride, dropout):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, eps=1e-5, momentum=0.1)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if (c_in == c_out and stride == 1) else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.drop(torch.relu(self.bn2(y))))
        return y + (x if self.shortcut is None else self.shortcut(o))


def wide_resnet(depth: int = 16, width: int = 10, dropout: float = 0.01, n_in: int = 1, n_out: int = 10):
    """WideResNet-depth-width (Zagoruyko & Komodakis), seed 000's WRN-16-10 with BN momentum 0.9."""
    n = (depth - 4) // 6
    widths = [16, 16 * width, 32 * width, 64 * width]
    layers: list[nn.Module] = [nn.Conv2d(n_in, widths[0], 3, 1, 1, bias=False)]
    c = widths[0]
    for group, stride in zip(widths[1:], (1, 2, 2)):
        for i in range(n):
            layers.append(WideBlock(c, group, stride if i == 0 else 1, dropout))
            c = group
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_out)]
    return nn.Sequential(*layers)


def build(name: str, spec: dict, n_in: int) -> nn.Module:
    """The model of a workload; `n_in` is the flattened input size."""
    if name == "linear_neuron":
        return LinearNeuron()
    if name == "logreg2d":
        return LogReg2D()
    if name == "softmax":
        return _keras_init(mlp(n_in, []))
    if name == "mlp":
        return _keras_init(mlp(n_in, list(spec["hidden"] or [])))
    if name == "lenet5":
        return _keras_init(lenet5())
    if name == "wrn16_10":
        return wide_resnet(16, 10, dropout=spec["dropout"] or 0.0)
    raise ValueError(f"unknown model {name!r}")


def _keras_init(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def count_parameters(model: nn.Module) -> dict:
    """Trainable parameters, and the total as Keras counts it (plus BatchNorm running mean/var)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return {"n_params": trainable + stats, "n_trainable": trainable}
