// Fused elementwise activations; see kernels/activation.py. One thread per element of a
// contiguous array: each kernel reads its inputs and writes its output once, where the CuPy
// expressions they replace run two to five kernels with temporaries in between.

#define DEFINE_ACTIVATION(T, SUFFIX)                                                            \
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
}

DEFINE_ACTIVATION(float, f32)
DEFINE_ACTIVATION(double, f64)
