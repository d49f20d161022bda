// Fused, masked, numerically stable softmax for scaled dot-product attention; see
// kernels/attention.py for the equations. The matmuls (Q K^T, P V, ...) run in cuBLAS.
//
// Scores arrive as a contiguous (B * rows, Lk) block of raw Q K^T for query rows r0 .. r0+rows-1
// of each of B batch entries. Query i may attend key j iff (no mask or mask[b, i, j]) and
// (not causal or j <= i). The mask, if any, is a contiguous (B, Lq, Lk) bool array.

#define DEFINE_ATTENTION(T, SUFFIX, NEG_INF, EXP, LOG)                                          \
/* One block per query row: m = max_j S_ij, l = sum_j exp(S_ij - m), P_ij = exp(S_ij - m) / l, */ \
/* lse_i = m + log l, written over the scores in place. A fully masked row gives P = 0 and   */ \
/* lse = -inf. blockDim.x must be a power of two <= 256.                                     */ \
extern "C" __global__ void attention_softmax_forward_##SUFFIX(                                 \
        T* __restrict__ s, T* __restrict__ lse, const bool* __restrict__ mask, int has_mask,    \
        int causal, T scale, long long rows, long long r0, long long lq, long long lk) {        \
    __shared__ T red[256];                                                                      \
    const long long row = blockIdx.x;                                                           \
    const long long b = row / rows, i = r0 + row % rows;                                        \
    T* srow = s + row * lk;                                                                     \
    const bool* mrow = mask + (has_mask ? (b * lq + i) * lk : 0);                               \
    const long long jmax = causal ? (i + 1 < lk ? i + 1 : lk) : lk;  /* keys j < jmax */        \
    const int tid = threadIdx.x;                                                                \
                                                                                                \
    T m = NEG_INF;                                                                              \
    for (long long j = tid; j < jmax; j += blockDim.x)                                          \
        if (!has_mask || mrow[j]) { T v = srow[j] * scale; m = v > m ? v : m; }                 \
    red[tid] = m;                                                                               \
    __syncthreads();                                                                            \
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {                                     \
        if (tid < half && red[tid + half] > red[tid]) red[tid] = red[tid + half];               \
        __syncthreads();                                                                        \
    }                                                                                           \
    m = red[0];                                                                                 \
    __syncthreads();                                                                            \
    /* shift by 0 for a fully masked row so that no exp(-inf + inf) = NaN appears */            \
    const T shift = (m == NEG_INF) ? (T)0 : m;                                                  \
                                                                                                \
    T l = 0;                                                                                    \
    for (long long j = tid; j < jmax; j += blockDim.x)                                          \
        if (!has_mask || mrow[j]) l += EXP(srow[j] * scale - shift);                            \
    red[tid] = l;                                                                               \
    __syncthreads();                                                                            \
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {                                     \
        if (tid < half) red[tid] += red[tid + half];                                            \
        __syncthreads();                                                                        \
    }                                                                                           \
    l = red[0];                                                                                 \
                                                                                                \
    const T inv = l > (T)0 ? (T)1 / l : (T)0;                                                   \
    for (long long j = tid; j < lk; j += blockDim.x) {                                          \
        bool ok = j < jmax && (!has_mask || mrow[j]);                                           \
        srow[j] = ok ? EXP(srow[j] * scale - shift) * inv : (T)0;                               \
    }                                                                                           \
    if (tid == 0) lse[row] = l > (T)0 ? shift + LOG(l) : NEG_INF;                               \
}                                                                                               \
                                                                                                \
/* Elementwise backward of the softmax, one thread per score: rebuild P = exp(scale QK^T - lse) */ \
/* (0 where masked or the row is fully masked), store it over the scores (for dV = P^T dO),     */ \
/* and store scale * dS = scale * P * (dP - D_i) over dP (for dQ = dS K and dK = dS^T Q).       */ \
extern "C" __global__ void attention_softmax_backward_##SUFFIX(                                \
        T* __restrict__ s, T* __restrict__ dp, const T* __restrict__ lse,                       \
        const T* __restrict__ delta, const bool* __restrict__ mask, int has_mask, int causal,   \
        T scale, long long n, long long rows, long long r0, long long lq, long long lk) {       \
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                           \
    if (idx >= n) return;                                                                       \
    const long long j = idx % lk, row = idx / lk;                                               \
    const long long b = row / rows, i = r0 + row % rows;                                        \
    const T l = lse[row];                                                                       \
    bool ok = (!causal || j <= i) && (!has_mask || mask[(b * lq + i) * lk + j]) && l != NEG_INF; \
    T p = ok ? EXP(s[idx] * scale - l) : (T)0;                                                  \
    s[idx] = p;                                                                                 \
    dp[idx] = scale * p * (dp[idx] - delta[row]);                                               \
}

DEFINE_ATTENTION(float, f32, __int_as_float((int)0xff800000u), expf, logf)
DEFINE_ATTENTION(double, f64, __longlong_as_double((long long)0xfff0000000000000ull), exp, log)

// Tiled ("flash") forward, FlashAttention's online softmax: the (Lq x Lk) scores are never
// stored. One thread per query row i, blockDim.x rows per block; the keys and values stream
// through shared memory BK rows at a time, and each row keeps a running maximum m, a running
// sum l = sum_j exp(s_j - m) and an unnormalised output acc = sum_j exp(s_j - m) v_j. A score
// above m raises it to s and rescales l and acc by exp(m_old - s) first, so after the last key
//     out_i = acc / l,    lse_i = m + log l      (0 and -inf for a fully masked row).
// q (B, Lq, D), k (B, Lk, D), v (B, Lk, DV), out (B, Lq, DV), lse (B, Lq), all contiguous, with
// D, DV <= ATTN_DMAX; the mask, if any, (B, Lq, Lk). The grid is B * ceil(Lq / blockDim.x)
// blocks.
#define ATTN_DMAX 128

#define DEFINE_FLASH_FORWARD(T, SUFFIX, NEG_INF, EXP, LOG, BK)                                  \
extern "C" __global__ void attention_flash_forward_##SUFFIX(                                   \
        const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,              \
        T* __restrict__ out, T* __restrict__ lse, const bool* __restrict__ mask, int has_mask,  \
        int causal, T scale, long long lq, long long lk, long long d, long long dv) {           \
    __shared__ T ktile[BK * ATTN_DMAX];                                                         \
    __shared__ T vtile[BK * ATTN_DMAX];                                                         \
    const long long rows = blockDim.x;                                                          \
    const long long row_blocks = (lq + rows - 1) / rows;                                        \
    const long long b = blockIdx.x / row_blocks;                                                \
    const long long first = (blockIdx.x % row_blocks) * rows;                                   \
    const long long i = first + threadIdx.x;                                                    \
    const bool active = i < lq;                                                                 \
    T qi[ATTN_DMAX], acc[ATTN_DMAX];                                                            \
    for (long long c = 0; c < d; ++c) qi[c] = active ? q[(b * lq + i) * d + c] * scale : (T)0; \
    for (long long c = 0; c < dv; ++c) acc[c] = 0;                                              \
    T m = NEG_INF, l = 0;                                                                       \
    /* causal: no row of this block attends a key past its last row */                         \
    const long long last = first + rows < lq ? first + rows : lq;                               \
    const long long keys = causal && last < lk ? last : lk;                                     \
    for (long long j0 = 0; j0 < keys; j0 += BK) {                                               \
        const long long nk = keys - j0 < BK ? keys - j0 : BK;                                   \
        for (long long t = threadIdx.x; t < nk * d; t += blockDim.x)                            \
            ktile[t] = k[(b * lk + j0) * d + t];                                                \
        for (long long t = threadIdx.x; t < nk * dv; t += blockDim.x)                           \
            vtile[t] = v[(b * lk + j0) * dv + t];                                               \
        __syncthreads();                                                                        \
        for (long long jj = 0; active && jj < nk; ++jj) {                                       \
            const long long j = j0 + jj;                                                        \
            if ((causal && j > i) || (has_mask && !mask[(b * lq + i) * lk + j])) continue;      \
            T s = 0;                                                                            \
            for (long long c = 0; c < d; ++c) s += qi[c] * ktile[jj * d + c];                   \
            if (s == NEG_INF) continue;                    /* exp(-inf) = 0: adds nothing */    \
            if (s > m) {                                   /* a new maximum: rescale */         \
                const T r = EXP(m - s);                                                         \
                l *= r;                                                                         \
                for (long long c = 0; c < dv; ++c) acc[c] *= r;                                 \
                m = s;                                                                          \
            }                                                                                   \
            const T p = EXP(s - m);                                                             \
            l += p;                                                                             \
            for (long long c = 0; c < dv; ++c) acc[c] += p * vtile[jj * dv + c];                \
        }                                                                                       \
        __syncthreads();                          /* before the next tile overwrites this one */\
    }                                                                                           \
    if (active) {                                                                               \
        const T inv = l > (T)0 ? (T)1 / l : (T)0;                                               \
        for (long long c = 0; c < dv; ++c) out[(b * lq + i) * dv + c] = acc[c] * inv;           \
        lse[b * lq + i] = l > (T)0 ? m + LOG(l) : NEG_INF;                                      \
    }                                                                                           \
}

DEFINE_FLASH_FORWARD(float, f32, __int_as_float((int)0xff800000u), expf, logf, 32)
DEFINE_FLASH_FORWARD(double, f64, __longlong_as_double((long long)0xfff0000000000000ull), exp, log,
                     16)
