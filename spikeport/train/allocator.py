"""Keep freed memory in the process during training (glibc's ``mallopt``), so each step stops paying
for fresh pages.

A CPU training step allocates and frees the same tensors of tens of MiB every step (a conv net's
[T*B, C, H, W] activations, their gradients and temporaries). glibc serves blocks above its mmap
threshold (at most 32 MiB, raised dynamically) with ``mmap`` and returns them with ``munmap`` on free,
and trims the heap's top when more than twice that is free: the next step then page-faults all of that
memory in again, zero-filled by the kernel. Measured on the 2-vCPU machine (conv 16c3-32c3-fc128, T=6,
batch 128, one training step): 0.38 s wall with glibc's defaults, 0.24-0.30 s with the settings here
(2 threads; 0.66 -> 0.39-0.49 s on one thread); the profile's ``fill_`` and pool-backward time was
mostly page faults.

Settings: mmap threshold 1 GiB (blocks below it come from the heap and are reused), trim threshold
2 GiB (``mallopt`` takes an int) and top pad 1 GiB (the heap is not shrunk between steps). The
process keeps its peak memory until it exits, which is what a training process wants. ``spikeport
train`` applies them; ``SPIKEPORT_MALLOC=default`` leaves glibc's defaults. Python users call
:func:`keep_freed_memory`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV = "SPIKEPORT_MALLOC"
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc malloc.h
SETTINGS = ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 1 << 30))


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with glibc's ``mallopt``; True when every one was accepted, False on
    another C library or platform, or when ``SPIKEPORT_MALLOC=default``."""
    if os.environ.get(ENV, "").strip().lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
