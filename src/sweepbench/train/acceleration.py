"""The speed options of a run: optimizer implementation, bf16 autocast, channels-last, torch.compile.

Each option is a spec key (sweepbench.spec) and what it resolved to is recorded in
run.json's `speed` section, so a throughput figure always says how it was obtained.
None of these change what is trained; bf16 changes the arithmetic of the forward pass.
"""

from __future__ import annotations

import contextlib
import time

import torch

from sweepbench import SweepbenchError
from sweepbench.train.optimizers import OPTIMIZERS


def fused_optimizers(device_type: str) -> list[str]:
    """The optimizers torch has a fused kernel for on this device type (sweepbench.train.optimizers)."""
    return [name for name, kind in OPTIMIZERS.items() if device_type in kind.fused_on]


def optimizer_impl(spec: dict, device: torch.device) -> str:
    """The implementation `optimizer_impl` resolves to: 'auto' is torch's fused kernel where
    torch has one for this optimizer on CUDA, else sweepbench's foreach rules
    (sweepbench.train.optimizers: one multi-tensor op per update term instead of one op per
    parameter, and no torch.optim import). An explicit 'fused' the optimizer lacks is bad input."""
    impl, name = spec["optimizer_impl"], spec["optimizer"]
    fused = fused_optimizers(device.type)
    if impl == "auto":
        return "fused" if device.type == "cuda" and name in fused else "foreach"
    if impl == "fused" and name not in fused:
        allowed = ", ".join(sorted(fused)) or "none"
        raise SweepbenchError(f"bad optimizer_impl 'fused' for optimizer {name!r} on {device.type}; "
                              f"allowed: auto, foreach, for-loop (fused exists for {allowed})")
    return impl


def autocast(spec: dict, device: torch.device):
    """The forward-pass context: bf16 autocast with precision=bf16, nothing with fp32."""
    if spec["precision"] == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(spec: dict, model: torch.nn.Module) -> torch.nn.Module:
    """Put the model in channels-last format when asked (image batches follow in `format_batch`)."""
    return model.to(memory_format=torch.channels_last) if spec["channels_last"] else model


def format_batch(spec: dict, x: torch.Tensor) -> torch.Tensor:
    if spec["channels_last"] and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def compiled(spec: dict, model: torch.nn.Module):
    """The module the training step calls: the model itself, or torch.compile(model) with the
    spec's mode. Shapes are static (dynamic=False), so each distinct batch size compiles once
    (and, with reduce-overhead on CUDA, gets its own CUDA graph); `warm_up` does that before
    the training clock starts. Evaluation calls the plain model."""
    if spec["compile"] == "off":
        return model
    return torch.compile(model, mode=None if spec["compile"] == "default" else spec["compile"], dynamic=False)


def new_step(spec: dict) -> None:
    """Tell CUDA-graph trees that a new training iteration begins (compile=reduce-overhead)."""
    if spec["compile"] == "reduce-overhead":
        torch.compiler.cudagraph_mark_step_begin()


def warm_up(spec: dict, step_model, model: torch.nn.Module, batches: list, loss_fn, repeats: int = 3) -> float:
    """Run forward and backward of the compiled model on each batch `repeats` times (compiling
    and, for CUDA graphs, recording), then drop the gradients and restore every buffer (e.g.
    batch-norm statistics) so training starts from the same state as without compile.
    Returns the seconds spent, which run.json records as timing.compile_s, apart from training."""
    if spec["compile"] == "off" or not batches:
        return 0.0
    t = time.perf_counter()
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    rng = torch.get_rng_state()
    on_cuda = any(xb.is_cuda for xb, _ in batches)
    cuda_rng = torch.cuda.get_rng_state_all() if on_cuda else None
    for _ in range(repeats):
        for xb, yb in batches:
            new_step(spec)
            with autocast(spec, xb.device):
                loss = loss_fn(step_model(xb), yb)
            loss.backward()
    for p in model.parameters():
        p.grad = None
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)
    if on_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def record(spec: dict, impl: str, compile_s: float, batched_runs: int = 1, stack: str | None = None) -> dict:
    """run.json's `speed` section: batched_runs, how many runs shared each step as one stacked
    model (sweepbench.train.stacked), and stack, that stack's id (None for a run trained alone)."""
    return {"optimizer_impl": impl, "precision": spec["precision"], "channels_last": spec["channels_last"],
            "compile": spec["compile"], "compile_s": compile_s, "batched_runs": batched_runs, "stack": stack}
