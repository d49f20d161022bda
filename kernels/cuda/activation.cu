// Fused elementwise activations; see kernels/activation.py. One thread per element of a
// contiguous array: each kernel reads its inputs and writes its output once, where the CuPy
// expressions they replace run two to five kernels with temporaries in between.

#define DEFINE_ACTIVATION(T, SUFFIX, TANH)                                                      \
/* y = x if x > 0 else slope * x */                                                              \
extern "C" __global__ void leaky_relu_forward_##SUFFIX(                                         \
        const T* __restrict__ x, T* __restrict__ y, T slope, long long n) {                     \
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                       \
    if (i < n) y[i] = x[i] > (T)0 ? x[i] : slope * x[i];                                        \
}                                                                                               \
                                                                                                \
/* gx = g * f'(x): g if x > 0 else slope * g */                                                  \
extern "C" __global__ void leaky_relu_backward_##SUFFIX(                                        \
        const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ gx, T slope,          \
        long long n) {                                                                          \
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                       \
    if (i < n) gx[i] = x[i] > (T)0 ? g[i] : slope * g[i];                                       \
}                                                                                               \
                                                                                                \
/* ReLU's gx = g where its output y > 0, else 0 */                                               \
extern "C" __global__ void relu_backward_##SUFFIX(                                              \
        const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ gx, long long n) {    \
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                       \
    if (i < n) gx[i] = y[i] > (T)0 ? g[i] : (T)0;                                               \
}                                                                                               \
                                                                                                \
/* tanh's gx = g (1 - y^2), from its output y */                                                 \
extern "C" __global__ void tanh_backward_##SUFFIX(                                              \
        const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ gx, long long n) {    \
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                       \
    if (i < n) gx[i] = g[i] * ((T)1 - y[i] * y[i]);                                             \
}                                                                                               \
                                                                                                \
/* sigmoid(x) = (tanh(x / 2) + 1) / 2, which no x overflows (1 / (1 + e^-x) does for x << 0) */  \
extern "C" __global__ void sigmoid_forward_##SUFFIX(                                            \
        const T* __restrict__ x, T* __restrict__ y, long long n) {                              \
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                       \
    if (i < n) y[i] = (T)0.5 * (TANH((T)0.5 * x[i]) + (T)1);                                    \
}                                                                                               \
                                                                                                \
/* sigmoid's gx = g y (1 - y), from its output y */                                              \
extern "C" __global__ void sigmoid_backward_##SUFFIX(                                           \
        const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ gx, long long n) {    \
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                       \
    if (i < n) gx[i] = g[i] * y[i] * ((T)1 - y[i]);                                             \
}

DEFINE_ACTIVATION(float, f32, tanhf)
DEFINE_ACTIVATION(double, f64, tanh)
