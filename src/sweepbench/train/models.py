"""Models: the seed workloads' as plain nn.Modules (pytorch/examples style), torchvision's by name,
and the user's own factory; each sized to the data it trains on (ModelInput) and checked once
against it before training (check_output).

Keras-born models (LeNet-5, the MLPs, softmax regression) use Keras's initialisation
(Glorot-uniform weights, zero biases) and Keras's BatchNorm settings, so they start where
the seeds started.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

from sweepbench import SweepbenchError, workloads


@dataclass(frozen=True)
class ModelInput:
    """What a model is sized to: one sample's shape, the class count (multiclass), the task and one
    target's shape (regression: () for one number per sample)."""

    sample_shape: tuple
    n_classes: int = 10
    task: str = "multiclass"
    target_shape: tuple = ()

    @property
    def n_inputs(self) -> int:
        n = 1
        for d in self.sample_shape:
            n *= d
        return n

    @property
    def n_outputs(self) -> int:
        """Output units: a logit per class (multiclass), one logit (binary), one per target value."""
        if self.task == "multiclass":
            return self.n_classes
        n = 1
        for d in self.target_shape:
            n *= d
        return n


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


def mlp(n_in: int, hidden: list[int], n_out: int = 10, scalar_out: bool = False) -> nn.Sequential:
    """Dense ReLU layers; hidden=[] is softmax regression. Logits out (softmax is in the loss);
    scalar_out: one number per sample, shape (batch,) like its targets (binary, regression)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    if scalar_out:
        layers.append(nn.Flatten(0))
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


def build(model, spec: dict, inputs: ModelInput) -> nn.Module:
    """The model to train: a built-in name (workloads.MODELS), "torchvision.<name>", or the user's
    factory (spec) -> nn.Module, sized to `inputs` (the user's factory sizes its own)."""
    if callable(model):
        module = model(spec)
        if not isinstance(module, nn.Module):
            raise SweepbenchError(f"bad model {workloads.label(model)}: it returned {type(module).__name__}; "
                                  "allowed: a torch.nn.Module")
        return module
    if model.startswith(workloads.TORCHVISION):
        return torchvision_model(model[len(workloads.TORCHVISION):], inputs)
    return _built_in(model, spec, inputs)


def _built_in(name: str, spec: dict, inputs: ModelInput) -> nn.Module:
    if name == "linear_neuron":
        return LinearNeuron()
    if name == "logreg2d":
        return LogReg2D()
    scalar = inputs.task != "multiclass" and inputs.target_shape == ()
    if name in ("softmax", "mlp"):
        hidden = list(spec.get("hidden") or []) if name == "mlp" else []
        return _keras_init(mlp(inputs.n_inputs, hidden, inputs.n_outputs, scalar_out=scalar))
    if inputs.task != "multiclass":
        raise SweepbenchError(f"bad model {name} for a {inputs.task} task; allowed: mlp, softmax or your own model")
    if name == "lenet5":
        if (tuple(inputs.sample_shape), inputs.n_classes) != ((1, 28, 28), 10):
            raise SweepbenchError(f"bad model lenet5 for samples of shape {tuple(inputs.sample_shape)} in "
                                  f"{inputs.n_classes} classes; allowed: 1x28x28 images in 10 classes (LeNet-5 as "
                                  "seed 002 built it), or torchvision.<name>, wrn16_10, mlp")
        return _keras_init(lenet5())
    if name == "wrn16_10":
        if len(inputs.sample_shape) != 3:
            raise SweepbenchError(f"bad model wrn16_10 for samples of shape {tuple(inputs.sample_shape)}; "
                                  "allowed: images (channels, height, width)")
        return wide_resnet(16, 10, dropout=spec.get("dropout") or 0.0, n_in=inputs.sample_shape[0],
                           n_out=inputs.n_classes)
    raise SweepbenchError(f"unknown model {name!r}; allowed: {', '.join(workloads.MODELS)}, torchvision.<name>")


def torchvision_model(name: str, inputs: ModelInput) -> nn.Module:
    """torchvision's classification model `name`, randomly initialised (never downloaded), with
    n_classes outputs and its first convolution taking the data's channel count."""
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)
    if name not in known:
        near = difflib.get_close_matches(name, known, n=5) or known[:8]
        raise SweepbenchError(f"unknown model torchvision.{name}; allowed: a torchvision classification model, "
                              f"e.g. {', '.join('torchvision.' + n for n in near)}")
    if inputs.task != "multiclass" or len(inputs.sample_shape) != 3:
        raise SweepbenchError(f"bad model torchvision.{name} for {inputs.task} samples of shape "
                              f"{tuple(inputs.sample_shape)}; allowed: images (channels, height, width) in classes")
    model = tvm.get_model(name, weights=None, num_classes=inputs.n_classes)
    if getattr(model, "aux_logits", False):  # GoogLeNet, Inception v3: one output, as every other model
        model.aux_logits = False
        for aux in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    _first_conv_takes(model, inputs.sample_shape[0])
    return model


def _first_conv_takes(model: nn.Module, channels: int) -> None:
    """Replace the model's first convolution by one taking `channels` input channels (same shape otherwise)."""
    for parent in model.modules():
        for child_name, conv in parent.named_children():
            if isinstance(conv, nn.Conv2d):
                if conv.in_channels != channels:
                    setattr(parent, child_name, nn.Conv2d(
                        channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                        groups=1 if conv.groups == conv.in_channels and conv.groups > 1 else conv.groups,
                        bias=conv.bias is not None, padding_mode=conv.padding_mode))
                return


def check_output(module: nn.Module, x: torch.Tensor, y: torch.Tensor, inputs: ModelInput, who: str) -> None:
    """One forward pass of two training samples, on a copy in training mode with the random state
    restored (training starts exactly as without it): the output must be one tensor of the shape the
    task's loss needs. A mismatch is one line naming the model and what was expected."""
    import copy

    want = (len(y), inputs.n_classes) if inputs.task == "multiclass" else tuple(y.shape)
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            out = copy.deepcopy(module).train()(x)
    except Exception as err:  # the model's own code: its error, said in one line with the input it got
        raise SweepbenchError(f"bad model {who}: a batch of shape {tuple(x.shape)} fails in it: "
                              f"{type(err).__name__}: {err}".split("\n")[0]) from err
    if not isinstance(out, torch.Tensor):
        raise SweepbenchError(f"bad model {who}: it returned {type(out).__name__}; allowed: one tensor of shape {want}")
    if tuple(out.shape) != want:
        if tuple(out.shape) == (*want, 1):
            raise SweepbenchError(f"bad model {who}: its output for a batch of shape {tuple(x.shape)} has shape "
                                  f"{tuple(out.shape)}; allowed: {want}, one number per sample like its targets "
                                  "(end the model with torch.nn.Flatten(0), or return out.squeeze(-1))")
        what = f"{inputs.n_classes} class logits per sample" if inputs.task == "multiclass" else \
            f"one output per target value ({inputs.task}: the targets' shape)"
        raise SweepbenchError(f"bad model {who}: its output for a batch of shape {tuple(x.shape)} has shape "
                              f"{tuple(out.shape)}; allowed: {want} ({what})")


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
