"""The C allocator of a training process: keep large freed blocks instead of unmapping them.

PyTorch's CPU tensors come from the C library's malloc. glibc serves every block above its
mmap threshold (at most 32 MiB, adjusted on the fly) with a fresh `mmap` and returns it with
`munmap` when freed, so a step whose activations are larger than that (LeNet-5 at B >= 1024,
an evaluation batch of 2048) asks the kernel for new zeroed pages every step: on a 2-core
Xeon, LeNet-5 trained at B = 2048 ran at 844 samples/s this way and at 1,415 samples/s with
the blocks kept (benchmarks/README.md, "The allocator"). `keep_large_blocks` raises both the
mmap and the heap-trim thresholds to KEEP_BYTES, so freed blocks up to that size are reused.
The price: up to KEEP_BYTES of freed memory stays with the process until it ends.

It changes speed only, never a result. It applies on glibc (Linux) only; elsewhere, or where
the user set MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ themselves, it does nothing.
"""

from __future__ import annotations

import ctypes
import os

KEEP_BYTES = 1 << 30  # 1 GiB: above the largest activation of the seed workloads on a CPU
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_large_blocks(keep_bytes: int = KEEP_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds to keep_bytes; True when both were set."""
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, keep_bytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, keep_bytes))


def _glibc():
    """The process's C library when it is glibc (it has mallopt and gnu_get_libc_version), else None."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process, the C library's among them
    except (OSError, TypeError):  # TypeError: Windows has no "this process" handle
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc
