// Exposure rendering on the GPU: one thread per (image, pixel), all time samples of the pixel's level in the
// thread (front-to-back compositing with early exit, see blursynth_math.h), many images per launch; and the
// camera's per-value noise and 8-bit encode, so only uint8 images leave the GPU.
#include "blursynth_math.h"
#include "launch.h"

namespace {

constexpr int BX = 32, BY = 4;

__global__ void bs_render_exact_kernel(const float* __restrict__ buf, const int64_t* __restrict__ offset,
                                       const int32_t* __restrict__ dims, const uint8_t* __restrict__ extend,
                                       const int64_t* __restrict__ desc, const double* __restrict__ Hinv,
                                       const int32_t* __restrict__ boxes, const int64_t* __restrict__ start,
                                       const int32_t* __restrict__ level, int64_t width, int64_t height,
                                       float* __restrict__ out) {
  const int64_t x = (int64_t)blockIdx.x * BX + threadIdx.x;
  const int64_t y = (int64_t)blockIdx.y * BY + threadIdx.y;
  const int64_t b = blockIdx.z;
  if (x >= width || y >= height) return;
  const int64_t* d = desc + 4 * b;
  const BsLayers Ls{buf, offset + d[0], dims + 2 * d[0], extend + d[0], (int)d[1]};
  const int64_t p = (b * height + y) * width + x;
  const int64_t* st = start + d[3];
  const int32_t g = level[p];
  bs_pixel_exact(Ls, Hinv + 9 * d[2], boxes + 4 * d[2], st[g], st[g + 1], x, y, out + 3 * p);
}

__global__ void bs_sharp_map_kernel(const float* __restrict__ buf, const int64_t* __restrict__ offset,
                                    const int32_t* __restrict__ dims, const uint8_t* __restrict__ extend,
                                    const int64_t* __restrict__ desc, const double* __restrict__ Hinv,
                                    const int32_t* __restrict__ boxes, const double* __restrict__ to_start,
                                    const double* __restrict__ to_end, int64_t width, int64_t height,
                                    float* __restrict__ sharp, float* __restrict__ blur_map) {
  const int64_t x = (int64_t)blockIdx.x * BX + threadIdx.x;
  const int64_t y = (int64_t)blockIdx.y * BY + threadIdx.y;
  const int64_t b = blockIdx.z;
  if (x >= width || y >= height) return;
  const int64_t* d = desc + 4 * b;
  const BsLayers Ls{buf, offset + d[0], dims + 2 * d[0], extend + d[0], (int)d[1]};
  const int64_t p = (b * height + y) * width + x;
  bs_pixel_sharp_map(Ls, Hinv + 9 * d[2], boxes + 4 * d[2], to_start + 9 * d[3], to_end + 9 * d[3], x, y,
                     sharp + 3 * p, blur_map ? blur_map + 3 * p : nullptr);
}

__global__ void bs_encode_u8_kernel(const float* __restrict__ x, int64_t n, float gain,
                                    const float* __restrict__ thresholds, uint8_t* __restrict__ out) {
  __shared__ float thr[255];
  for (int i = threadIdx.x; i < 255; i += blockDim.x) thr[i] = thresholds[i];
  __syncthreads();
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = bs_encode_u8(x[i], gain, thr);
}

__global__ void bs_noise_kernel(const float* __restrict__ x, int64_t n, double shot, double read, uint64_t key,
                                const int64_t* __restrict__ zk, const double* __restrict__ zw,
                                const double* __restrict__ zf, const double* __restrict__ pcdf,
                                const int64_t* __restrict__ pguide, float* __restrict__ out) {
  const BsZiggurat zig{zk, zw, zf};
  const BsPoisson pois{pcdf, pguide};
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = bs_noise(x[i], shot, read, key, i, zig, pois);
}

unsigned flat_blocks(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return (unsigned)(blocks < 65535 ? blocks : 65535);
}

dim3 pixel_grid(int64_t width, int64_t height, int64_t B) {
  return dim3((unsigned)((width + BX - 1) / BX), (unsigned)((height + BY - 1) / BY), (unsigned)B);
}

}  // namespace

cudaError_t bs_launch_render_exact(const float* buf, const int64_t* offset, const int32_t* dims,
                                   const uint8_t* extend, const int64_t* desc, int64_t B, const double* Hinv,
                                   const int32_t* boxes, const int64_t* start, const int32_t* level, int64_t width,
                                   int64_t height, float* out, cudaStream_t stream) {
  if (B == 0 || width == 0 || height == 0) return cudaSuccess;
  bs_render_exact_kernel<<<pixel_grid(width, height, B), dim3(BX, BY), 0, stream>>>(
      buf, offset, dims, extend, desc, Hinv, boxes, start, level, width, height, out);
  return cudaGetLastError();
}

cudaError_t bs_launch_sharp_map(const float* buf, const int64_t* offset, const int32_t* dims, const uint8_t* extend,
                                const int64_t* desc, int64_t B, const double* Hinv, const int32_t* boxes,
                                const double* to_start, const double* to_end, int64_t width, int64_t height,
                                float* sharp, float* blur_map, cudaStream_t stream) {
  if (B == 0 || width == 0 || height == 0) return cudaSuccess;
  bs_sharp_map_kernel<<<pixel_grid(width, height, B), dim3(BX, BY), 0, stream>>>(
      buf, offset, dims, extend, desc, Hinv, boxes, to_start, to_end, width, height, sharp, blur_map);
  return cudaGetLastError();
}

cudaError_t bs_launch_encode_u8(const float* x, int64_t n, float gain, const float* thresholds, uint8_t* out,
                                cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  bs_encode_u8_kernel<<<flat_blocks(n, 256), 256, 0, stream>>>(x, n, gain, thresholds, out);
  return cudaGetLastError();
}

cudaError_t bs_launch_noise(const float* x, int64_t n, double shot, double read, uint64_t key, const int64_t* zk,
                            const double* zw, const double* zf, const double* pcdf, const int64_t* pguide, float* out,
                            cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  bs_noise_kernel<<<flat_blocks(n, 256), 256, 0, stream>>>(x, n, shot, read, key, zk, zw, zf, pcdf, pguide, out);
  return cudaGetLastError();
}
