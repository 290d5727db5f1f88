// ESIM on the GPU: one thread per pixel walks the frames of a chunk (blursynth_math.h bs_esim_interval). The count
// pass counts events per (frame interval, pixel) without touching the state; bindings.cpp turns the counts into
// offsets (an exclusive scan, so events are laid out by interval, then row, then column, then crossing, the numba
// kernel's production order); the fill pass writes them and carries the state to the next chunk.
#include "blursynth_math.h"
#include "launch.h"

namespace {

constexpr int THREADS = 256;

__global__ void bs_esim_count_kernel(const float* __restrict__ frames, const double* __restrict__ t_s, int64_t n,
                                     int64_t npix, double t0, const float* __restrict__ last_frame,
                                     const double* __restrict__ last_log, const double* __restrict__ ref_log,
                                     const double* __restrict__ last_event, BsEsimParams P,
                                     int64_t* __restrict__ counts) {
  const int64_t p = (int64_t)blockIdx.x * THREADS + threadIdx.x;
  if (p >= npix) return;
  BsEsimPixel s{last_frame[p], last_log[p], ref_log[p], last_event[p]};
  double t_prev = t0;
  for (int64_t k = 0; k < n; ++k) {
    const double t_cur = t_s[k];
    counts[k * npix + p] =
        bs_esim_interval(s, frames[k * npix + p], t_prev, t_cur, P, 0, 0, 0, nullptr, nullptr, nullptr, nullptr);
    t_prev = t_cur;
  }
}

__global__ void bs_esim_fill_kernel(const float* __restrict__ frames, const double* __restrict__ t_s, int64_t n,
                                    int64_t width, int64_t npix, double t0, float* __restrict__ last_frame,
                                    double* __restrict__ last_log, double* __restrict__ ref_log,
                                    double* __restrict__ last_event, BsEsimParams P,
                                    const int64_t* __restrict__ offsets, int64_t* __restrict__ ev_t,
                                    int32_t* __restrict__ ev_x, int32_t* __restrict__ ev_y,
                                    int8_t* __restrict__ ev_p) {
  const int64_t p = (int64_t)blockIdx.x * THREADS + threadIdx.x;
  if (p >= npix) return;
  BsEsimPixel s{last_frame[p], last_log[p], ref_log[p], last_event[p]};
  double t_prev = t0;
  const int64_t x = p % width, y = p / width;
  for (int64_t k = 0; k < n; ++k) {
    const double t_cur = t_s[k];
    bs_esim_interval(s, frames[k * npix + p], t_prev, t_cur, P, x, y, offsets[k * npix + p], ev_t, ev_x, ev_y, ev_p);
    t_prev = t_cur;
  }
  last_frame[p] = s.i_prev;
  last_log[p] = s.l_prev;
  ref_log[p] = s.ref;
  last_event[p] = s.last_ev;
}

unsigned blocks_for(int64_t npix) { return (unsigned)((npix + THREADS - 1) / THREADS); }

}  // namespace

cudaError_t bs_launch_esim_count(const float* frames, const double* t_s, int64_t n, int64_t npix, double t0,
                                 const float* last_frame, const double* last_log, const double* ref_log,
                                 const double* last_event, double cpos, double cneg, double log_eps,
                                 double refractory_s, int64_t* counts, cudaStream_t stream) {
  if (n == 0 || npix == 0) return cudaSuccess;
  const BsEsimParams P{cpos, cneg, log_eps, refractory_s, 0.0};
  bs_esim_count_kernel<<<blocks_for(npix), THREADS, 0, stream>>>(frames, t_s, n, npix, t0, last_frame, last_log,
                                                                  ref_log, last_event, P, counts);
  return cudaGetLastError();
}

cudaError_t bs_launch_esim_fill(const float* frames, const double* t_s, int64_t n, int64_t width, int64_t height,
                                double t0, float* last_frame, double* last_log, double* ref_log, double* last_event,
                                double cpos, double cneg, double log_eps, double refractory_s, double scale,
                                const int64_t* offsets, int64_t* ev_t, int32_t* ev_x, int32_t* ev_y, int8_t* ev_p,
                                cudaStream_t stream) {
  const int64_t npix = width * height;
  if (n == 0 || npix == 0) return cudaSuccess;
  const BsEsimParams P{cpos, cneg, log_eps, refractory_s, scale};
  bs_esim_fill_kernel<<<blocks_for(npix), THREADS, 0, stream>>>(frames, t_s, n, width, npix, t0, last_frame,
                                                                 last_log, ref_log, last_event, P, offsets, ev_t,
                                                                 ev_x, ev_y, ev_p);
  return cudaGetLastError();
}
