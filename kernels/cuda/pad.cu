// Padding of the last two axes of a contiguous (planes, H, W) array; see kernels/pad.py.
//
// mode: 0 zeros (constant `value`), 1 reflect, 2 replicate, 3 circular.
// Forward: one thread per output pixel, a gather from its source pixel.
// Backward: one thread per input pixel, a gather over every output pixel that copied it.
// Along one axis those output positions form at most three ranges (the interior copy, plus one
// mirrored/wrapped copy on each side, or for replicate one range that swallows a whole border),
// so the 2-D preimage is the product of <= 3 row ranges and <= 3 column ranges: no atomics.

// Source position of virtual input position u (which may lie in the padding), for modes 1..3.
__device__ __forceinline__ long long pad_source(long long u, long long n, int mode) {
    if (mode == 1) {  // reflect: n-1 - |n-1 - |u||
        long long a = u < 0 ? -u : u;
        long long b = (n - 1) - a;
        return (n - 1) - (b < 0 ? -b : b);
    }
    if (mode == 2) {  // replicate: clip(u, 0, n-1)
        return u < 0 ? 0 : (u > n - 1 ? n - 1 : u);
    }
    // circular: u mod n, with |u| < 2n guaranteed by the host-side check
    long long r = u % n;
    return r < 0 ? r + n : r;
}

// Output ranges [lo[k], hi[k]) of a padded axis whose source is input position i.
__device__ __forceinline__ int pad_preimage(long long i, long long n, long long before,
                                            long long after, int mode,
                                            long long* lo, long long* hi) {
    int k = 1;
    lo[0] = before + i;
    hi[0] = before + i + 1;
    if (mode == 1) {
        // Left mirror u = -i lies in [-before, -1] iff 1 <= i <= before.
        if (i >= 1 && i <= before) { lo[k] = before - i; hi[k] = lo[k] + 1; ++k; }
        // Right mirror u = 2(n-1) - i lies in [n, n-1+after].
        long long u = 2 * (n - 1) - i;
        if (u >= n && u <= n - 1 + after) { lo[k] = before + u; hi[k] = lo[k] + 1; ++k; }
    } else if (mode == 2) {
        if (i == 0) lo[0] = 0;
        if (i == n - 1) hi[0] = before + n + after;
    } else if (mode == 3) {
        if (i - n >= -before) { lo[k] = before + i - n; hi[k] = lo[k] + 1; ++k; }
        if (i + n <= n - 1 + after) { lo[k] = before + i + n; hi[k] = lo[k] + 1; ++k; }
    }
    return k;
}

#define DEFINE_PAD(T, SUFFIX)                                                                   \
extern "C" __global__ void pad2d_forward_##SUFFIX(                                             \
        const T* __restrict__ x, T* __restrict__ y, long long planes, long long h, long long w, \
        long long top, long long left, long long ho, long long wo, int mode, T value) {        \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * ho * wo) return;                                                        \
    long long q = idx % wo;                                                                     \
    long long p = (idx / wo) % ho;                                                              \
    long long plane = idx / (wo * ho);                                                          \
    long long u = p - top, v = q - left;                                                        \
    if (mode == 0) {                                                                            \
        y[idx] = (u >= 0 && u < h && v >= 0 && v < w) ? x[(plane * h + u) * w + v] : value;     \
        return;                                                                                 \
    }                                                                                           \
    long long su = pad_source(u, h, mode), sv = pad_source(v, w, mode);                         \
    y[idx] = x[(plane * h + su) * w + sv];                                                      \
}                                                                                               \
                                                                                                \
extern "C" __global__ void pad2d_backward_##SUFFIX(                                            \
        const T* __restrict__ gy, T* __restrict__ gx, long long planes, long long h,            \
        long long w, long long top, long long bottom, long long left, long long right,          \
        long long ho, long long wo, int mode) {                                                 \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * h * w) return;                                                          \
    long long j = idx % w;                                                                      \
    long long i = (idx / w) % h;                                                                \
    long long plane = idx / (w * h);                                                            \
    long long rlo[3], rhi[3], clo[3], chi[3];                                                   \
    int nr = pad_preimage(i, h, top, bottom, mode, rlo, rhi);                                   \
    int nc = pad_preimage(j, w, left, right, mode, clo, chi);                                   \
    const T* g = gy + plane * ho * wo;                                                          \
    T acc = 0;                                                                                  \
    for (int a = 0; a < nr; ++a)                                                                \
        for (long long p = rlo[a]; p < rhi[a]; ++p)                                             \
            for (int b = 0; b < nc; ++b)                                                        \
                for (long long q = clo[b]; q < chi[b]; ++q)                                     \
                    acc += g[p * wo + q];                                                       \
    gx[idx] = acc;                                                                              \
}

DEFINE_PAD(float, f32)
DEFINE_PAD(double, f64)
