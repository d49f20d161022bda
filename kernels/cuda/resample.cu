// Nearest and bilinear resampling of contiguous (planes, H, W) arrays; see kernels/resample.py.
//
// The 1-D tables are computed on the host (the index arithmetic must match the NumPy path exactly,
// which is easiest to state once): for each output row o, source rows h0[o], h1[o] with weights
// hw0[o], hw1[o] (and likewise for columns). Backward kernels are gathers: input row i is read
// by the outputs in [hs0[i], he0[i]) through h0 and by [hs1[i], he1[i]) through h1 (contiguous
// runs, because the source index is monotone in o). No atomics.

#define DEFINE_RESAMPLE(T, SUFFIX)                                                              \
extern "C" __global__ void upsample_nearest2d_forward_##SUFFIX(                                \
        const T* __restrict__ x, T* __restrict__ y, const long long* __restrict__ rows,         \
        const long long* __restrict__ cols, long long planes, long long h, long long w,         \
        long long oh, long long ow) {                                                           \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * oh * ow) return;                                                        \
    long long q = idx % ow;                                                                     \
    long long o = (idx / ow) % oh;                                                              \
    long long plane = idx / (ow * oh);                                                          \
    y[idx] = x[(plane * h + rows[o]) * w + cols[q]];                                            \
}                                                                                               \
                                                                                                \
extern "C" __global__ void upsample_nearest2d_backward_##SUFFIX(                               \
        const T* __restrict__ gy, T* __restrict__ gx, const long long* __restrict__ rs,         \
        const long long* __restrict__ re, const long long* __restrict__ cs,                     \
        const long long* __restrict__ ce, long long planes, long long h, long long w,           \
        long long oh, long long ow) {                                                           \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * h * w) return;                                                          \
    long long j = idx % w;                                                                      \
    long long i = (idx / w) % h;                                                                \
    const T* g = gy + (idx / (w * h)) * oh * ow;                                                \
    T acc = 0;                                                                                  \
    for (long long o = rs[i]; o < re[i]; ++o)                                                   \
        for (long long q = cs[j]; q < ce[j]; ++q) acc += g[o * ow + q];                         \
    gx[idx] = acc;                                                                              \
}                                                                                               \
                                                                                                \
extern "C" __global__ void upsample_bilinear2d_forward_##SUFFIX(                               \
        const T* __restrict__ x, T* __restrict__ y,                                             \
        const long long* __restrict__ h0, const long long* __restrict__ h1,                     \
        const T* __restrict__ hw0, const T* __restrict__ hw1,                                   \
        const long long* __restrict__ w0, const long long* __restrict__ w1,                     \
        const T* __restrict__ ww0, const T* __restrict__ ww1,                                   \
        long long planes, long long h, long long w, long long oh, long long ow) {               \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * oh * ow) return;                                                        \
    long long q = idx % ow;                                                                     \
    long long o = (idx / ow) % oh;                                                              \
    const T* xp = x + (idx / (ow * oh)) * h * w;                                                \
    const T* r0 = xp + h0[o] * w;                                                               \
    const T* r1 = xp + h1[o] * w;                                                               \
    T a0 = ww0[q], a1 = ww1[q];                                                                 \
    long long c0 = w0[q], c1 = w1[q];                                                           \
    /* grouped as the NumPy path and PyTorch: rows of width-interpolated values */              \
    y[idx] = hw0[o] * (a0 * r0[c0] + a1 * r0[c1]) + hw1[o] * (a0 * r1[c0] + a1 * r1[c1]);       \
}                                                                                               \
                                                                                                \
extern "C" __global__ void upsample_bilinear2d_backward_##SUFFIX(                              \
        const T* __restrict__ gy, T* __restrict__ gx,                                           \
        const long long* __restrict__ h0, const long long* __restrict__ h1,                     \
        const T* __restrict__ hw0, const T* __restrict__ hw1,                                   \
        const long long* __restrict__ w0, const long long* __restrict__ w1,                     \
        const T* __restrict__ ww0, const T* __restrict__ ww1,                                   \
        const long long* __restrict__ hs0, const long long* __restrict__ he0,                   \
        const long long* __restrict__ hs1, const long long* __restrict__ he1,                   \
        const long long* __restrict__ ws0, const long long* __restrict__ we0,                   \
        const long long* __restrict__ ws1, const long long* __restrict__ we1,                   \
        long long planes, long long h, long long w, long long oh, long long ow) {               \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= planes * h * w) return;                                                          \
    long long j = idx % w;                                                                      \
    long long i = (idx / w) % h;                                                                \
    const T* g = gy + (idx / (w * h)) * oh * ow;                                                \
    /* the row runs through h0 (weight hw0) and through h1 (weight hw1); same for columns */   \
    const long long rlo[2] = {hs0[i], hs1[i]}, rhi[2] = {he0[i], he1[i]};                       \
    const long long clo[2] = {ws0[j], ws1[j]}, chi[2] = {we0[j], we1[j]};                       \
    const T* rwt[2] = {hw0, hw1};                                                               \
    const T* cwt[2] = {ww0, ww1};                                                               \
    T acc = 0;                                                                                  \
    for (int a = 0; a < 2; ++a)                                                                 \
        for (long long o = rlo[a]; o < rhi[a]; ++o) {                                           \
            T row = 0;                                                                          \
            for (int b = 0; b < 2; ++b)                                                         \
                for (long long q = clo[b]; q < chi[b]; ++q) row += cwt[b][q] * g[o * ow + q];   \
            acc += rwt[a][o] * row;                                                             \
        }                                                                                       \
    gx[idx] = acc;                                                                              \
}

DEFINE_RESAMPLE(float, f32)
DEFINE_RESAMPLE(double, f64)
