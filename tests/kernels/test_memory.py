"""kernels.memory: with glibc, big temporaries stop costing fresh pages once freed memory is
kept in the heap."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_PROGRAM = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from scratchgen.kernels.memory import keep_freed_memory
    assert keep_freed_memory()
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        a = np.ones(6 << 20)  # 48 MB: above glibc's largest automatic mmap threshold
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(faults())
"""


def _faults(mode: str) -> int:
    env = dict(os.environ, SCRATCHGEN_DEFAULT_MALLOC="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", _PROGRAM, mode], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_memory_is_reused_without_page_faults():
    default, keep = _faults("default"), _faults("keep")
    assert default > 5 and keep * 5 < default, (default, keep)
