"""kernels.memory: the allocator settings are taken where the C library is glibc."""
from __future__ import annotations

import platform

import pytest

from kernels.memory import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_settings():
    assert keep_freed_memory() is True
