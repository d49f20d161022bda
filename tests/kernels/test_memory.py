"""kernels.memory: with glibc, big temporaries stop costing fresh pages once freed memory is
kept in the heap; importing the kernels changes nothing, the programs that want the setting
apply it (``configure_malloc``), and ``SCRATCHGEN_DEFAULT_MALLOC`` leaves malloc alone."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_PROGRAM = """
import resource, sys
import numpy as np
import scratchgen, scratchgen.kernels.conv  # importing must not change malloc
from scratchgen.kernels import memory
if sys.argv[1] == "keep":
    assert memory.keep_freed_memory()
elif sys.argv[1] == "configure":
    print(memory.configure_malloc())
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        a = np.ones(6 << 20)  # 48 MB: above glibc's largest automatic mmap threshold
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(faults())
"""


def _run(mode: str, default_malloc: bool) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHGEN_DEFAULT_MALLOC"}
    if default_malloc:
        env["SCRATCHGEN_DEFAULT_MALLOC"] = "1"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", _PROGRAM, mode], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_memory_is_reused_without_page_faults():
    default = int(_run("import only", default_malloc=False)[-1])
    keep = int(_run("keep", default_malloc=True)[-1])
    assert default > 5 and keep * 5 < default, (default, keep)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_configure_malloc_obeys_the_environment():
    applied, faults = _run("configure", default_malloc=False)
    assert applied == "True"
    left_alone, default_faults = _run("configure", default_malloc=True)
    assert left_alone == "False"
    assert int(default_faults) > 5 and int(faults) * 5 < int(default_faults)
