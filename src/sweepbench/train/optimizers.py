"""The optimizers: one table (OPTIMIZERS) declares each, with its update rule and its torch.optim kernels.

An entry names the torch.optim class and keyword arguments (used by `optimizer_impl`
`for-loop`, and `fused` where torch has a fused kernel on that device type) and sweepbench's
own multi-tensor update rule (`foreach`, the default off CUDA). The spec's allowed
optimizers, `acceleration.optimizer_impl` and `make` derive from the table. Two details of
the foreach rules are not in it but hard-coded by rule name in ForeachOptimizer.__init__:
decoupled weight decay for adamw (every other rule adds L2 decay to the gradient) and the
default eps (1e-10 for adagrad, 1e-8 for the others), torch.optim's defaults; a new entry
that needs either must be added there too. A test adds an entry and trains with it, and
checks that every entry is complete.

Why own update rules: constructing torch.optim's first optimizer imports torch._dynamo,
about 1 s per process on a 2-core machine, and a sweep starts many processes; its CPU step
also costs ~20 µs of Python per call where these cost ~6 µs. The rules are torch.optim's with
its defaults (tests compare every optimizer with torch.optim step by step):

    sgd / momentum / nesterov   torch.optim.SGD (dampening 0; L2 weight decay added to the gradient)
    adam                        torch.optim.Adam (betas 0.9, 0.999, eps 1e-8, L2 weight decay)
    adamw                       torch.optim.AdamW (decoupled weight decay)
    rmsprop                     torch.optim.RMSprop (alpha 0.99, eps 1e-8, not centred, no momentum)
    adagrad                     torch.optim.Adagrad (eps 1e-10, no lr decay, accumulator starts at 0)

Importing this module does not import torch (the planner reads the table); the rules use
the `torch` global that ForeachOptimizer binds when the first optimizer is made.
The learning rate is read from `param_groups[0]["lr"]` at every step, like torch.optim's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

torch = None  # bound to the torch module by _bind_torch() when an optimizer is made


def _bind_torch():
    global torch
    if torch is None:
        import torch as _torch

        torch = _torch
    return torch


@dataclass(frozen=True)
class OptimizerKind:
    """One optimizer: `update(opt, params, grads, lr)` is its foreach rule (state in opt.state /
    opt.state2, hyper-parameters on opt); `torch_class` and `torch_options(spec)` make the same
    optimizer with torch.optim; `fused_on` lists the device types where torch has a fused kernel."""

    name: str
    update: Callable
    torch_class: str
    torch_options: Callable[[dict], dict]
    fused_on: frozenset = field(default_factory=frozenset)


# A hyper-parameter is a number, or (a stack of runs with different values, sweepbench.train.stacked)
# a list with one tensor per parameter holding each run's value, shaped to broadcast over that
# parameter's rows. These helpers do the same arithmetic for both; numbers take torch's scalar
# foreach kernels, so a single run's update is exactly what it was.

def _neg(h):
    return [-t for t in h] if isinstance(h, list) else -h


def _add_(params, tensors, scale) -> None:
    """params += scale * tensors"""
    if isinstance(scale, list):
        torch._foreach_addcmul_(params, tensors, scale)
    else:
        torch._foreach_add_(params, tensors, alpha=scale)


def _plus(a, b, scale):
    """a + scale * b (new tensors)"""
    if isinstance(scale, list):
        return torch._foreach_addcmul(a, b, scale)
    return torch._foreach_add(a, b, alpha=scale)


def _add_ratio_(params, num, den, scale) -> None:
    """params += scale * num / den"""
    if isinstance(scale, list):
        torch._foreach_addcmul_(params, torch._foreach_div(num, den), scale)
    else:
        torch._foreach_addcdiv_(params, num, den, scale)


def _sgd(opt, params, grads, lr):
    _add_(params, grads, _neg(lr))


def _momentum(opt, params, grads, lr, nesterov=False):
    if not opt.state:
        opt.state = [g.clone().detach() for g in grads]
    else:
        torch._foreach_mul_(opt.state, opt.momentum)
        torch._foreach_add_(opt.state, grads)
    update = _plus(grads, opt.state, opt.momentum) if nesterov else opt.state
    _add_(params, update, _neg(lr))


def _nesterov(opt, params, grads, lr):
    _momentum(opt, params, grads, lr, nesterov=True)


def _per_param(value, n: int) -> list:
    """A hyper-parameter as one value per parameter tensor: a stack's per-run values already are
    (sweepbench.train.stacked gives per-parameter broadcast tensors), a scalar is repeated."""
    return value if isinstance(value, list) else [value] * n


def _adam(opt, params, grads, lr):
    if not opt.state:
        opt.state = [torch.zeros_like(p) for p in params]
        opt.state2 = [torch.zeros_like(p) for p in params]
    if opt.decoupled_decay and opt.weight_decay:
        wd = opt.weight_decay
        if isinstance(lr, list) or isinstance(wd, list):  # a stack: either may be per run
            torch._foreach_mul_(params, [1 - l * w for l, w in zip(_per_param(lr, len(params)),
                                                                  _per_param(wd, len(params)))])
        else:
            torch._foreach_mul_(params, 1 - lr * wd)
    b1, b2 = opt.betas
    torch._foreach_lerp_(opt.state, grads, 1 - b1)
    torch._foreach_mul_(opt.state2, b2)
    torch._foreach_addcmul_(opt.state2, grads, grads, 1 - b2)
    correction = 1 - b1 ** opt.t
    step_size = [l / correction for l in lr] if isinstance(lr, list) else lr / correction
    denom = torch._foreach_sqrt(opt.state2)
    torch._foreach_div_(denom, math.sqrt(1 - b2 ** opt.t))
    torch._foreach_add_(denom, opt.eps)
    _add_ratio_(params, opt.state, denom, _neg(step_size))


def _rmsprop(opt, params, grads, lr):
    if not opt.state:
        opt.state = [torch.zeros_like(p) for p in params]
    torch._foreach_mul_(opt.state, opt.alpha)
    torch._foreach_addcmul_(opt.state, grads, grads, 1 - opt.alpha)
    avg = torch._foreach_sqrt(opt.state)
    torch._foreach_add_(avg, opt.eps)
    _add_ratio_(params, grads, avg, _neg(lr))


def _adagrad(opt, params, grads, lr):
    if not opt.state:
        opt.state = [torch.zeros_like(p) for p in params]
    torch._foreach_addcmul_(opt.state, grads, grads, 1)
    std = torch._foreach_sqrt(opt.state)
    torch._foreach_add_(std, opt.eps)
    _add_ratio_(params, grads, std, _neg(lr))


def _decay(spec):
    return {"weight_decay": spec["weight_decay"]}


def _with_momentum(nesterov):
    return lambda spec: {"momentum": spec["momentum"], "nesterov": nesterov, **_decay(spec)}


CUDA_CPU = frozenset({"cuda", "cpu"})
OPTIMIZERS: dict[str, OptimizerKind] = {k.name: k for k in [
    OptimizerKind("sgd", _sgd, "SGD", _decay, CUDA_CPU),
    OptimizerKind("momentum", _momentum, "SGD", _with_momentum(False), CUDA_CPU),
    OptimizerKind("nesterov", _nesterov, "SGD", _with_momentum(True), CUDA_CPU),
    OptimizerKind("adam", _adam, "Adam", _decay, CUDA_CPU),
    OptimizerKind("adamw", _adam, "AdamW", _decay, CUDA_CPU),
    OptimizerKind("rmsprop", _rmsprop, "RMSprop", _decay),
    OptimizerKind("adagrad", _adagrad, "Adagrad", _decay, frozenset({"cpu"})),
]}


class ForeachOptimizer:
    """Minimal optimizer interface the engine uses: param_groups[0]['lr'], zero_grad, step.
    lr (in param_groups), weight_decay and momentum are numbers, or per-parameter lists of
    per-run values (a stack of runs with different hyper-parameters, sweepbench.train.stacked)."""

    def __init__(self, rule: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                 betas=(0.9, 0.999), eps: float | None = None, alpha: float = 0.99):
        if rule not in OPTIMIZERS:
            raise ValueError(f"unknown rule {rule!r}")
        _bind_torch()
        self.rule = rule
        self.update = OPTIMIZERS[rule].update
        self.decoupled_decay = rule == "adamw"
        self.params = [p for p in params]
        self.param_groups = [{"lr": lr}]
        self.weight_decay, self.momentum, self.betas, self.alpha = weight_decay, momentum, betas, alpha
        self.eps = eps if eps is not None else (1e-10 if rule == "adagrad" else 1e-8)
        self.t = 0
        self.state: list = []   # momentum buffer / first moment / square average / sum
        self.state2: list = []  # second moment (adam, adamw)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        with torch.no_grad():
            grads = [p.grad for p in self.params]
            if any(g is None for g in grads):  # the state lists are positional: every parameter must train
                raise RuntimeError("ForeachOptimizer needs a gradient for every parameter; "
                                   "use optimizer_impl=for-loop")
            self.t += 1
            if self.weight_decay and not self.decoupled_decay:
                grads = _plus(grads, self.params, self.weight_decay)
            self.update(self, self.params, grads, self.param_groups[0]["lr"])

    def keep_rows(self, index_of) -> None:
        """Keep only some rows of each (stacked) parameter's state: `index_of(i)` gives the row
        index tensor of parameter i (sweepbench.train.stacked drops runs that stopped)."""
        self.state = [s[index_of(i)] for i, s in enumerate(self.state)]
        self.state2 = [s[index_of(i)] for i, s in enumerate(self.state2)]


def make(spec: dict, params, impl: str = "for-loop"):
    """The spec's optimizer over `params` with implementation `impl`
    (sweepbench.train.acceleration.optimizer_impl): foreach is ForeachOptimizer; fused and for-loop
    are torch.optim's kernels. Torch defaults except momentum (0.9) and weight decay."""
    kind = OPTIMIZERS[spec["optimizer"]]
    if impl == "foreach":
        return ForeachOptimizer(kind.name, params, lr=spec["lr"], weight_decay=spec["weight_decay"],
                                momentum=spec["momentum"])
    cls = getattr(_bind_torch().optim, kind.torch_class)
    flags = {"fused": True} if impl == "fused" else {"foreach": False}
    return cls(params, lr=spec["lr"], **kind.torch_options(spec), **flags)
