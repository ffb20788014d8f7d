"""Large host buffers reused instead of returned to the kernel while a model trains (glibc only).

A training step allocates and frees dozens of minibatch x peaks float32 buffers (28 MB each at 71 cells x
100,000 peaks). glibc serves every allocation above its mmap threshold with a fresh mmap and gives it back with
munmap when freed, so each buffer is page-faulted and zeroed by the kernel again on every step: at 10,000 cells x
100,000 peaks, 2 threads, a step took 452-462 ms with and 342-360 ms without that, an epoch 50-52 s and 44-45 s
(bench/RESULTS.md, "Page faults of large buffers"). With mmap switched off and the heap's trim threshold raised,
freed buffers stay in the heap and are reused, as the allocators that PyTorch's performance tuning guide suggests
for CPU training (jemalloc, TCMalloc; https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html) do by
design, without preloading a library. Not used for imputation: there it raised the peak RSS by ~1.5 GiB.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("scmvp.model")

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
# glibc's defaults, restored on exit (its dynamic mmap threshold does not come back: glibc switches it off for
# good once either is set, as the MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_MAX_ environment variables would)
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEEP_FREED_BYTES = 2**31 - 1          # mallopt takes an int: free heap up to 2 GiB is kept for reuse


def _glibc():
    """The process's C library when it is glibc (it has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version       # noqa: B018 - glibc only (musl and others lack it)
    except (OSError, AttributeError):
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _set(libc, trim_threshold, mmap_max) -> bool:
    return all([libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1, libc.mallopt(M_MMAP_MAX, mmap_max) == 1])


@contextlib.contextmanager
def reuse_large_buffers():
    """Inside the block, large allocations come from the heap and freed memory stays there for reuse; on exit the
    defaults are restored and the free heap is given back (malloc_trim). Elsewhere than glibc: does nothing.
    Yields whether the setting is in effect."""
    libc = _glibc()
    active = libc is not None and _set(libc, KEEP_FREED_BYTES, 0)
    if libc is not None and not active:
        log.debug("mallopt refused a setting: large buffers are allocated as usual")
    try:
        yield active
    finally:
        if active:
            _set(libc, DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX)
            libc.malloc_trim(0)
