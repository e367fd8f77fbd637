"""The seven optimizers as multi-tensor (torch._foreach_*) update rules, without torch.optim.

Why not torch.optim: constructing its first optimizer imports torch._dynamo, about 1 s per
process on a 2-core machine, and a sweep starts many processes; its CPU step also costs
~20 µs of Python per call where these cost ~6 µs. The update rules are torch.optim's with its
defaults (tests compare every optimizer with torch.optim step by step):

    sgd / momentum / nesterov   torch.optim.SGD (dampening 0; L2 weight decay added to the gradient)
    adam                        torch.optim.Adam (betas 0.9, 0.999, eps 1e-8, L2 weight decay)
    adamw                       torch.optim.AdamW (decoupled weight decay)
    rmsprop                     torch.optim.RMSprop (alpha 0.99, eps 1e-8, not centred, no momentum)
    adagrad                     torch.optim.Adagrad (eps 1e-10, no lr decay, accumulator starts at 0)

`fused` (CUDA) and `for-loop` use torch.optim itself (sweepbench.engine.make_optimizer).
The learning rate is read from `param_groups[0]["lr"]` at every step, like torch.optim's.
"""

from __future__ import annotations

import math

import torch

RULES = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")


class ForeachOptimizer:
    """Minimal optimizer interface the engine uses: param_groups[0]['lr'], zero_grad, step."""

    def __init__(self, rule: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                 betas=(0.9, 0.999), eps: float | None = None, alpha: float = 0.99):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}")
        self.rule = rule
        self.params = [p for p in params]
        self.param_groups = [{"lr": lr}]
        self.weight_decay, self.momentum, self.betas, self.alpha = weight_decay, momentum, betas, alpha
        self.eps = eps if eps is not None else (1e-10 if rule == "adagrad" else 1e-8)
        self.t = 0
        self.state: list[torch.Tensor] = []   # momentum buffer / first moment / square average / sum
        self.state2: list[torch.Tensor] = []  # second moment (adam, adamw)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):  # the state lists are positional: every parameter must train
            raise RuntimeError("ForeachOptimizer needs a gradient for every parameter; use optimizer_impl=for-loop")
        params = self.params
        lr, wd, rule = self.param_groups[0]["lr"], self.weight_decay, self.rule
        self.t += 1
        if wd and rule != "adamw":
            grads = torch._foreach_add(grads, params, alpha=wd)
        if rule == "sgd":
            torch._foreach_add_(params, grads, alpha=-lr)
        elif rule in ("momentum", "nesterov"):
            if not self.state:
                self.state = [g.clone().detach() for g in grads]
            else:
                torch._foreach_mul_(self.state, self.momentum)
                torch._foreach_add_(self.state, grads)
            update = torch._foreach_add(grads, self.state, alpha=self.momentum) if rule == "nesterov" else self.state
            torch._foreach_add_(params, update, alpha=-lr)
        elif rule in ("adam", "adamw"):
            if not self.state:
                self.state = [torch.zeros_like(p) for p in params]
                self.state2 = [torch.zeros_like(p) for p in params]
            if rule == "adamw" and wd:
                torch._foreach_mul_(params, 1 - lr * wd)
            b1, b2 = self.betas
            torch._foreach_lerp_(self.state, grads, 1 - b1)
            torch._foreach_mul_(self.state2, b2)
            torch._foreach_addcmul_(self.state2, grads, grads, 1 - b2)
            step_size = lr / (1 - b1 ** self.t)
            denom = torch._foreach_sqrt(self.state2)
            torch._foreach_div_(denom, math.sqrt(1 - b2 ** self.t))
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(params, self.state, denom, -step_size)
        elif rule == "rmsprop":
            if not self.state:
                self.state = [torch.zeros_like(p) for p in params]
            torch._foreach_mul_(self.state, self.alpha)
            torch._foreach_addcmul_(self.state, grads, grads, 1 - self.alpha)
            avg = torch._foreach_sqrt(self.state)
            torch._foreach_add_(avg, self.eps)
            torch._foreach_addcdiv_(params, grads, avg, -lr)
        else:  # adagrad
            if not self.state:
                self.state = [torch.zeros_like(p) for p in params]
            torch._foreach_addcmul_(self.state, grads, grads, 1)
            std = torch._foreach_sqrt(self.state)
            torch._foreach_add_(std, self.eps)
            torch._foreach_addcdiv_(params, grads, std, -lr)
