// Fused activations and their derivatives, one thread per element of contiguous arrays.
//
//   relu        y = max(x, 0)                     dy/dx = [x > 0]
//   leaky_relu  y = x if x > 0 else slope * x     dy/dx = 1 if x > 0 else slope
//   tanh        y = tanh(x)                       dy/dx = 1 - y^2          (from the output)
//   sigmoid     y = 1 / (1 + exp(-x))             dy/dx = y (1 - y)        (from the output)
//
// Each backward kernel reads what the derivative is cheapest to compute from: the input for the
// piecewise-linear activations, the saved output for tanh and sigmoid. The derivative at the kink
// x = 0 is taken as 0 for relu and slope for leaky_relu (PyTorch's convention). Sigmoid is
// evaluated so that exp never overflows: for x < 0 it uses exp(x) / (1 + exp(x)).

#define DEFINE_ELEMENTWISE(T, SUFFIX, EXP, TANH)                                                \
extern "C" __global__ void relu_forward_##SUFFIX(const T* __restrict__ x, T* __restrict__ y,   \
                                                 long long n) {                                 \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i < n) y[i] = x[i] > (T)0 ? x[i] : (T)0;                                                \
}                                                                                               \
extern "C" __global__ void relu_backward_##SUFFIX(const T* __restrict__ x,                     \
                                                  const T* __restrict__ gy,                     \
                                                  T* __restrict__ gx, long long n) {            \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i < n) gx[i] = x[i] > (T)0 ? gy[i] : (T)0;                                              \
}                                                                                               \
extern "C" __global__ void leaky_relu_forward_##SUFFIX(const T* __restrict__ x,                \
                                                       T* __restrict__ y, long long n,          \
                                                       T slope) {                               \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i < n) y[i] = x[i] > (T)0 ? x[i] : slope * x[i];                                        \
}                                                                                               \
extern "C" __global__ void leaky_relu_backward_##SUFFIX(const T* __restrict__ x,               \
                                                        const T* __restrict__ gy,               \
                                                        T* __restrict__ gx, long long n,        \
                                                        T slope) {                              \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i < n) gx[i] = x[i] > (T)0 ? gy[i] : slope * gy[i];                                     \
}                                                                                               \
extern "C" __global__ void tanh_forward_##SUFFIX(const T* __restrict__ x, T* __restrict__ y,   \
                                                 long long n) {                                 \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i < n) y[i] = TANH(x[i]);                                                               \
}                                                                                               \
extern "C" __global__ void tanh_backward_##SUFFIX(const T* __restrict__ y,                     \
                                                  const T* __restrict__ gy,                     \
                                                  T* __restrict__ gx, long long n) {            \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i < n) gx[i] = gy[i] * ((T)1 - y[i] * y[i]);                                            \
}                                                                                               \
extern "C" __global__ void sigmoid_forward_##SUFFIX(const T* __restrict__ x,                   \
                                                    T* __restrict__ y, long long n) {           \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i >= n) return;                                                                         \
    T v = x[i];                                                                                 \
    if (v >= (T)0) {                                                                            \
        y[i] = (T)1 / ((T)1 + EXP(-v));                                                         \
    } else {                                                                                    \
        T e = EXP(v);                                                                           \
        y[i] = e / ((T)1 + e);                                                                  \
    }                                                                                           \
}                                                                                               \
extern "C" __global__ void sigmoid_backward_##SUFFIX(const T* __restrict__ y,                  \
                                                     const T* __restrict__ gy,                  \
                                                     T* __restrict__ gx, long long n) {         \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                             \
    if (i < n) gx[i] = gy[i] * y[i] * ((T)1 - y[i]);                                            \
}

DEFINE_ELEMENTWISE(float, f32, expf, tanhf)
DEFINE_ELEMENTWISE(double, f64, exp, tanh)
