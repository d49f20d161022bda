// Max and average pooling over contiguous (planes, H, W) arrays; see kernels/pool.py for the
// window geometry (output o covers input rows o*s - p + t*d, t < k).
//
// Forward kernels: one thread per output pixel. Average-pool backward: one thread per input
// pixel, a gather over the windows that contain it (no atomics). Max-pool backward is a scatter
// along the stored argmax, with atomicAdd since overlapping windows may pick the same pixel.

__device__ __forceinline__ long long ll_min(long long a, long long b) { return a < b ? a : b; }
__device__ __forceinline__ long long ll_max(long long a, long long b) { return a > b ? a : b; }

// PyTorch's average-pool divisor of the window starting at (hs, ws).
__device__ __forceinline__ long long avg_divisor(long long hs, long long ws, long long h,
                                                 long long w, long long kh, long long kw,
                                                 long long ph, long long pw, int include_pad,
                                                 long long divisor_override) {
    if (divisor_override != 0) return divisor_override;
    long long he = ll_min(hs + kh, h + ph), we = ll_min(ws + kw, w + pw);
    if (include_pad) return (he - hs) * (we - ws);
    return (ll_min(he, h) - ll_max(hs, 0)) * (ll_min(we, w) - ll_max(ws, 0));
}

#define DEFINE_POOL(T, SUFFIX, NEG_INF)                                                         \
extern "C" __global__ void max_pool2d_forward_##SUFFIX(                                        \
        const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ argmax,             \
        long long planes, long long h, long long w, long long oh, long long ow,                 \
        long long kh, long long kw, long long sh, long long sw, long long ph, long long pw,     \
        long long dh, long long dw) {                                                           \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * oh * ow) return;                                                        \
    long long q = idx % ow;                                                                     \
    long long o = (idx / ow) % oh;                                                              \
    const T* xp = x + (idx / (ow * oh)) * h * w;                                                \
    T best = NEG_INF;                                                                           \
    long long arg = -1;                                                                         \
    for (long long a = 0; a < kh; ++a) {                                                        \
        long long r = o * sh - ph + a * dh;                                                     \
        if (r < 0 || r >= h) continue;                                                          \
        for (long long b = 0; b < kw; ++b) {                                                    \
            long long c = q * sw - pw + b * dw;                                                 \
            if (c < 0 || c >= w) continue;                                                      \
            T v = xp[r * w + c];                                                                \
            /* first maximum in window order wins; the first NaN (v != v) wins over numbers */  \
            if (arg < 0 || v > best || (v != v && best == best)) { best = v; arg = r * w + c; } \
        }                                                                                       \
    }                                                                                           \
    y[idx] = best;                                                                              \
    argmax[idx] = arg;                                                                          \
}                                                                                               \
                                                                                                \
extern "C" __global__ void max_pool2d_backward_##SUFFIX(                                       \
        const T* __restrict__ gy, const long long* __restrict__ argmax, T* __restrict__ gx,     \
        long long n, long long out_hw, long long in_hw) {                                       \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= n) return;                                                                       \
    long long a = argmax[idx];                                                                  \
    if (a >= 0) atomicAdd(gx + (idx / out_hw) * in_hw + a, gy[idx]);                            \
}                                                                                               \
                                                                                                \
extern "C" __global__ void avg_pool2d_forward_##SUFFIX(                                        \
        const T* __restrict__ x, T* __restrict__ y, long long planes, long long h, long long w, \
        long long oh, long long ow, long long kh, long long kw, long long sh, long long sw,     \
        long long ph, long long pw, int include_pad, long long divisor_override) {             \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * oh * ow) return;                                                        \
    long long q = idx % ow;                                                                     \
    long long o = (idx / ow) % oh;                                                              \
    const T* xp = x + (idx / (ow * oh)) * h * w;                                                \
    long long hs = o * sh - ph, ws = q * sw - pw;                                               \
    long long r0 = ll_max(hs, 0), r1 = ll_min(hs + kh, h);                                      \
    long long c0 = ll_max(ws, 0), c1 = ll_min(ws + kw, w);                                      \
    T acc = 0;                                                                                  \
    for (long long r = r0; r < r1; ++r)                                                         \
        for (long long c = c0; c < c1; ++c) acc += xp[r * w + c];                               \
    y[idx] = acc / (T)avg_divisor(hs, ws, h, w, kh, kw, ph, pw, include_pad,                    \
                                  divisor_override);                                            \
}                                                                                               \
                                                                                                \
extern "C" __global__ void avg_pool2d_backward_##SUFFIX(                                       \
        const T* __restrict__ gy, T* __restrict__ gx, long long planes, long long h,            \
        long long w, long long oh, long long ow, long long kh, long long kw, long long sh,      \
        long long sw, long long ph, long long pw, int include_pad,                              \
        long long divisor_override) {                                                           \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * h * w) return;                                                          \
    long long c = idx % w;                                                                      \
    long long r = (idx / w) % h;                                                                \
    const T* g = gy + (idx / (w * h)) * oh * ow;                                                \
    /* windows o with o*s - p <= r < o*s - p + k */                                             \
    long long rr = r + ph, cc = c + pw;                                                         \
    long long o0 = rr - kh + 1 <= 0 ? 0 : (rr - kh + 1 + sh - 1) / sh;                          \
    long long o1 = ll_min(rr / sh, oh - 1);                                                     \
    long long q0 = cc - kw + 1 <= 0 ? 0 : (cc - kw + 1 + sw - 1) / sw;                          \
    long long q1 = ll_min(cc / sw, ow - 1);                                                     \
    T acc = 0;                                                                                  \
    for (long long o = o0; o <= o1; ++o)                                                        \
        for (long long q = q0; q <= q1; ++q)                                                    \
            acc += g[o * ow + q] / (T)avg_divisor(o * sh - ph, q * sw - pw, h, w, kh, kw, ph,   \
                                                  pw, include_pad, divisor_override);           \
    gx[idx] = acc;                                                                              \
}

DEFINE_POOL(float, f32, __int_as_float((int)0xff800000u))
DEFINE_POOL(double, f64, __longlong_as_double((long long)0xfff0000000000000ull))
