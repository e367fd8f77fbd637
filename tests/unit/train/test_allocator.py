"""sweepbench.train.allocator: a freed large block stays in the heap instead of being unmapped.

Checked in a child process (the thresholds are per process) with glibc's own accounting,
mallinfo2(): `hblkhd` is the bytes held in mmap'd blocks; the child prints how much it grew
when a 64 MiB block was allocated.
"""

import ctypes
import os
import subprocess
import sys

import pytest

from sweepbench.train import allocator

CHILD = """
import ctypes, sys
from sweepbench.train import allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
applied = allocator.keep_large_blocks() if sys.argv[1] == "keep" else False
before = libc.mallinfo2().hblkhd
block = libc.malloc(64 << 20)  # 64 MiB: above glibc's largest default mmap threshold (32 MiB)
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(applied, mapped)
"""


def child(mode: str, env_extra: dict | None = None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in allocator.USER_SETTINGS} | (env_extra or {})
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env, check=True)
    applied, mapped = out.stdout.split()
    return applied, int(mapped)


needs_glibc = pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"),
                                 reason="needs glibc >= 2.33 (mallinfo2) to see where a block was placed")


@needs_glibc
def test_a_large_block_is_mapped_by_default_and_kept_in_the_heap_after_keep_large_blocks():
    applied, mapped = child("default")
    assert (applied, mapped >= 64 << 20) == ("False", True)  # glibc alone: the block is its own mmap
    applied, mapped = child("keep")
    assert applied == "True"
    assert mapped == 0  # served from the heap, so freeing it does not unmap it


@needs_glibc
def test_the_users_own_malloc_setting_wins():
    applied, mapped = child("keep", {"MALLOC_MMAP_THRESHOLD_": str(16 << 20)})
    assert applied == "False"
    assert mapped >= 64 << 20


def test_the_threshold_fits_mallopts_int_argument():
    assert 64 << 20 < allocator.KEEP_BYTES < 2**31
