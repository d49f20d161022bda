"""The CUDA emulator that runs the CUDA tests without a GPU: it must run CUDA C as a GPU would
(threads, blocks, __syncthreads, __shared__, atomics) and refuse the launches that would go
wrong on one."""
from __future__ import annotations

import numpy as np
import pytest

import cuda_emulator

pytestmark = pytest.mark.skipif(cuda_emulator.compiler() is None,
                                reason="no C++ compiler for the CUDA emulator")

SOURCE = r"""
// out[b] = sum of x over block b's slice, by a tree reduction in shared memory
extern "C" __global__ void block_sum(const float* __restrict__ x, float* out, long long n) {
    __shared__ float part[128];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    part[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

// counts[v] += 1 for every value v of idx, with atomics
extern "C" __global__ void histogram(const long long* idx, double* counts, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(counts + idx[i], 1.0);
}

// 2-D grid: y[r, c] = scale * x[r, c]
extern "C" __global__ void scale2d(const double* x, double* y, double scale, int rows, int cols) {
    const int r = blockIdx.y * blockDim.y + threadIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows && c < cols) y[r * cols + c] = scale * x[r * cols + c];
}
"""


@pytest.fixture(scope="module")
def module():
    cp = cuda_emulator.make_module()
    return cp, cp.RawModule(code=SOURCE)


def test_block_reduction_with_shared_memory_and_barriers(module):
    cp, mod = module
    x = cp.asarray(np.random.default_rng(0).standard_normal(1000).astype(np.float32))
    out = cp.zeros(8, dtype=np.float32)
    mod.get_function("block_sum")((8,), (128,), (x, out, np.int64(1000)))
    expected = np.add.reduceat(np.pad(cp.asnumpy(x), (0, 24)), np.arange(0, 1024, 128))
    np.testing.assert_allclose(cp.asnumpy(out), expected, rtol=1e-5, atol=1e-5)


def test_atomics_and_two_dimensional_grids(module):
    cp, mod = module
    idx = cp.asarray(np.random.default_rng(1).integers(0, 5, 300))
    counts = cp.zeros(5)
    mod.get_function("histogram")((3,), (128,), (idx, counts, np.int32(300)))
    np.testing.assert_array_equal(cp.asnumpy(counts), np.bincount(cp.asnumpy(idx), minlength=5))
    x = cp.asarray(np.arange(35.0).reshape(5, 7))
    y = cp.zeros((5, 7))
    mod.get_function("scale2d")((2, 3), (4, 2), (x, y, 2.5, np.int32(5), np.int32(7)))
    np.testing.assert_array_equal(cp.asnumpy(y), 2.5 * np.arange(35.0).reshape(5, 7))


def test_launches_that_would_go_wrong_on_a_gpu_are_refused(module):
    cp, mod = module
    x, out = cp.zeros(128, dtype=np.float32), cp.zeros(1, dtype=np.float32)
    kernel = mod.get_function("block_sum")
    # CuPy passes a Python int as a long long: right for n here ...
    kernel((1,), (128,), (x, out, 128))
    # ... and wrong for an `int` parameter; a float32 is not a double; a float64 array is not
    # a float* one
    scale = mod.get_function("scale2d")
    scale((1,), (8,), (cp.zeros(8), cp.zeros(8), 1.0, np.int32(2), np.int32(4)))
    with pytest.raises(TypeError, match=r"argument 3 \(int rows\): CuPy would pass this int "
                                        r"as int64, which the kernel reads as int32"):
        scale((1,), (8,), (cp.zeros(8), cp.zeros(8), 1.0, 2, 4))
    with pytest.raises(TypeError, match=r"argument 2 \(double scale\): .* float32"):
        scale((1,), (8,), (cp.zeros(8), cp.zeros(8), np.float32(1), np.int32(2), np.int32(4)))
    with pytest.raises(TypeError, match=r"argument 0 \(const float\* x\): got a float64 array"):
        kernel((1,), (128,), (cp.zeros(128), out, 128))
    with pytest.raises(TypeError, match="not C-contiguous"):
        kernel((1,), (128,), (cp.zeros(256, dtype=np.float32)[::2], out, 128))
    with pytest.raises(TypeError, match="NumPy array"):
        kernel((1,), (128,), (np.zeros(128, np.float32), out, 128))
    with pytest.raises(TypeError, match="takes 3 arguments"):
        kernel((1,), (128,), (x, out))
    with pytest.raises(ValueError, match="invalid launch configuration"):
        kernel((1,), (2048,), (x, out, 128))
    with pytest.raises(AttributeError, match="no kernel 'nope'"):
        mod.get_function("nope")


def test_device_arrays_do_not_mix_with_host_arrays():
    cp = cuda_emulator.make_module()
    a = cp.ones(3)
    assert type(a).__module__ == "cupy" and isinstance(a + 1, cp.ndarray)
    assert isinstance(a.sum(), cp.ndarray) and a.sum().ndim == 0    # 0-d, as in CuPy
    with pytest.raises(TypeError, match="mixes a NumPy array"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="mixes a NumPy array"):
        cp.matmul(np.ones((2, 2)), cp.ones((2, 2)))
    with pytest.raises(TypeError, match="takes CuPy arrays"):
        cp.concatenate([np.ones(2), cp.ones(2)])
    np.testing.assert_array_equal(cp.asnumpy(cp.asarray(np.arange(3))), np.arange(3))


def test_sources_that_do_not_compile_say_why():
    cp = cuda_emulator.make_module()
    with pytest.raises(RuntimeError, match="does not compile"):
        cp.RawModule(code='extern "C" __global__ void f(float* x) { x[0] = undefined_name; }')
