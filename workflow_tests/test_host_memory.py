"""Large buffers stay in the heap while a model trains: glibc's malloc counters, read in a fresh process."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from scmvp.model.host_memory import _glibc

PROBE = textwrap.dedent("""
    import ctypes, json, sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    from scmvp.model.host_memory import _glibc, reuse_large_buffers

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                         "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = _glibc()
    libc.mallinfo2.restype = MallInfo2
    SIZE = 64 * 2**20

    def allocate_and_free():
        '''bytes newly mmapped for a 64 MiB buffer, and free heap bytes kept once it is freed'''
        mmapped = libc.mallinfo2().hblkhd
        buffer = np.ones(SIZE // 8)
        mmapped = libc.mallinfo2().hblkhd - mmapped
        del buffer
        return mmapped, libc.mallinfo2().fordblks

    before = allocate_and_free()
    with reuse_large_buffers() as active:
        inside = allocate_and_free()
        heap = libc.mallinfo2().arena
        again = allocate_and_free()
        heap_grew = libc.mallinfo2().arena - heap
    after = allocate_and_free()
    print(json.dumps({"active": active, "before": before, "inside": inside, "again": again,
                      "heap_grew": heap_grew, "after": after}))
""")


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="glibc >= 2.33 only")
def test_large_buffers_come_from_the_heap_and_are_reused_while_training():
    out = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "scripts")], capture_output=True, text=True,
                         check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    size = 64 * 2**20
    assert r["active"] is True
    # glibc's default: a 64 MiB buffer is its own mmap, unmapped when freed
    assert r["before"][0] >= size and r["after"][0] >= size
    # inside: served from the heap, kept there when freed, and the second buffer reuses the first one's memory
    assert r["inside"][0] == 0 and r["again"][0] == 0
    assert r["inside"][1] >= size and r["again"][1] >= size
    assert r["heap_grew"] == 0
    # on exit the free heap is given back
    assert r["after"][1] < size
