"""Seed 000's data augmentation, on the device."""

from __future__ import annotations

import torch


def random_shift_flip(x: torch.Tensor, gen: torch.Generator, max_frac: float = 0.2) -> torch.Tensor:
    """Random horizontal flip and integer shifts up to max_frac of the size in each direction,
    filling with the nearest edge pixel (Keras's fill_mode='nearest'). Keras shifts by
    fractional pixels with interpolation; this does not."""
    n, _, h, w = x.shape
    s_h, s_w = int(max_frac * h), int(max_frac * w)
    dy = torch.randint(-s_h, s_h + 1, (n, 1), device=x.device, generator=gen)
    dx = torch.randint(-s_w, s_w + 1, (n, 1), device=x.device, generator=gen)
    rows = (torch.arange(h, device=x.device) - dy).clamp_(0, h - 1)
    cols = (torch.arange(w, device=x.device) - dx).clamp_(0, w - 1)
    flip = torch.rand(n, 1, device=x.device, generator=gen) < 0.5
    cols = torch.where(flip, (w - 1) - cols, cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x[batch, :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)
