// im2col / col2im for 2-D convolution on NCHW arrays (zero padding, stride, dilation).
//
// The column matrix is stored transposed and channel-major:
//     cols[(c*kh + i)*kw + j][(img*Ho + p)*Wo + q] = xpad[img][c][p*sh + i*dh][q*sw + j*dw]
// of shape (C*kh*kw, N*Ho*Wo), so that with the weight read as W (O, C*kh*kw)
//     y^T (O, N*Ho*Wo) = W @ cols,   gw = gy^T @ cols^T,   gcols = W^T @ gy^T
// are plain cuBLAS products (cupy.matmul) and need no reordering of the weight.
//
// Consecutive threads handle consecutive output positions q, so stores to cols (im2col) and
// to x (col2im) are coalesced. col2im is a gather: each input pixel sums over the windows
// that cover it, so every output element is written by exactly one thread (no atomics, no
// zero-fill beforehand, deterministic). Indices are 64-bit: N*Ho*Wo*C*kh*kw overflows 32 bits
// for large batches.

template <typename T>
__device__ __forceinline__ void im2col_impl(
    const T* __restrict__ x, T* __restrict__ cols,
    long long n, long long c, long long h, long long w, long long kh, long long kw,
    long long sh, long long sw, long long ph, long long pw, long long dh, long long dw,
    long long ho, long long wo)
{
    const long long L = n * ho * wo;
    const long long total = c * kh * kw * L;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long col = idx % L;
        const long long row = idx / L;
        const long long q = col % wo;
        long long t = col / wo;
        const long long p = t % ho;
        const long long img = t / ho;
        const long long j = row % kw;
        t = row / kw;
        const long long i = t % kh;
        const long long ch = t / kh;
        const long long yy = p * sh - ph + i * dh;
        const long long xx = q * sw - pw + j * dw;
        T v = T(0);
        if (yy >= 0 && yy < h && xx >= 0 && xx < w) {
            v = x[((img * c + ch) * h + yy) * w + xx];
        }
        cols[idx] = v;
    }
}

template <typename T>
__device__ __forceinline__ void col2im_impl(
    const T* __restrict__ cols, T* __restrict__ x,
    long long n, long long c, long long h, long long w, long long kh, long long kw,
    long long sh, long long sw, long long ph, long long pw, long long dh, long long dw,
    long long ho, long long wo)
{
    const long long L = n * ho * wo;
    const long long total = n * c * h * w;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long xx = idx % w + pw;  // position in the padded input
        long long t = idx / w;
        const long long yy = t % h + ph;
        t /= h;
        const long long ch = t % c;
        const long long img = t / c;
        T sum = T(0);
        // Tap i of window p reads padded row p*sh + i*dh; it covers yy iff
        // yy - i*dh = p*sh with 0 <= p < ho.
        for (long long i = 0; i < kh; ++i) {
            const long long ty = yy - i * dh;
            if (ty < 0) break;  // larger i only moves further up
            if (ty % sh != 0) continue;
            const long long p = ty / sh;
            if (p >= ho) continue;
            for (long long j = 0; j < kw; ++j) {
                const long long tx = xx - j * dw;
                if (tx < 0) break;
                if (tx % sw != 0) continue;
                const long long q = tx / sw;
                if (q >= wo) continue;
                sum += cols[((ch * kh + i) * kw + j) * L + (img * ho + p) * wo + q];
            }
        }
        x[idx] = sum;
    }
}

#define CONV_ARGS                                                                          \
    long long n, long long c, long long h, long long w, long long kh, long long kw,         \
    long long sh, long long sw, long long ph, long long pw, long long dh, long long dw,     \
    long long ho, long long wo
#define CONV_PASS n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo

extern "C" __global__ void im2col_f32(const float* __restrict__ x, float* __restrict__ cols,
                                      CONV_ARGS)
{
    im2col_impl<float>(x, cols, CONV_PASS);
}

extern "C" __global__ void im2col_f64(const double* __restrict__ x, double* __restrict__ cols,
                                      CONV_ARGS)
{
    im2col_impl<double>(x, cols, CONV_PASS);
}

extern "C" __global__ void col2im_f32(const float* __restrict__ cols, float* __restrict__ x,
                                      CONV_ARGS)
{
    col2im_impl<float>(cols, x, CONV_PASS);
}

extern "C" __global__ void col2im_f64(const double* __restrict__ cols, double* __restrict__ x,
                                      CONV_ARGS)
{
    col2im_impl<double>(cols, x, CONV_PASS);
}
