"""``spikeport.train.allocator``: glibc accepts the settings, and a large block then comes from the heap
(reused from step to step) instead of a fresh ``mmap`` (measured with glibc's own ``mallinfo2``).
Each case runs in a child process: the settings are process-wide."""
from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

CHILD = r"""
import ctypes, os, sys
from spikeport.train.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = keep_freed_memory()
before = libc.mallinfo2().hblkhd
p = libc.malloc(64 << 20)  # 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB)
mapped = libc.mallinfo2().hblkhd - before
libc.free(p)
print(applied, mapped >= 64 << 20)
"""


def _child(env_value: str | None) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k != "SPIKEPORT_MALLOC"}
    if env_value is not None:
        env["SPIKEPORT_MALLOC"] = env_value
    return subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux") or "libc.so" not in (ctypes.util.find_library("c") or ""),
                    reason="glibc's mallopt / mallinfo2")
def test_large_blocks_come_from_the_heap_once_applied():
    assert _child(None) == ["True", "False"]  # applied: the 64 MiB block is not an mmap of its own
    assert _child("default") == ["False", "True"]  # glibc's defaults: it is
