// Host build of the shared per-pixel code (blursynth_math.h): whole images and event streams computed on the
// CPU with exactly the functions the CUDA kernels call, so machines without a GPU can test them against the
// numba kernels (tests/test_cuda_host.py loads this with ctypes). Loops mirror the kernels' thread layout:
// one iteration of the inner body per CUDA thread.
#include "blursynth_math.h"

extern "C" {

// Exposure blur of one scene (render.cu bs_render_exact_kernel with one image).
//   Hinv: (K, L, 9) float64; boxes: (K, L, 4) int32; start: (G + 1,) int64 sample rows of each level;
//   level: (H, W) int32 level per pixel; out: (H, W, 3) float32.
void bs_host_render_exact(const float* buf, const int64_t* offset, const int32_t* dims, const uint8_t* extend,
                          int L, const double* Hinv, const int32_t* boxes, const int64_t* start,
                          const int32_t* level, int64_t width, int64_t height, float* out) {
  const BsLayers Ls{buf, offset, dims, extend, L};
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x) {
      const int32_t g = level[y * width + x];
      bs_pixel_exact(Ls, Hinv, boxes, start[g], start[g + 1], x, y, out + (y * width + x) * 3);
    }
}

// Latent image and blur map at one time (render.cu bs_sharp_map_kernel). blur_map may be null.
void bs_host_sharp_map(const float* buf, const int64_t* offset, const int32_t* dims, const uint8_t* extend, int L,
                       const double* Hinv, const int32_t* boxes, const double* to_start, const double* to_end,
                       int64_t width, int64_t height, float* sharp, float* blur_map) {
  const BsLayers Ls{buf, offset, dims, extend, L};
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x) {
      const int64_t p = y * width + x;
      bs_pixel_sharp_map(Ls, Hinv, boxes, to_start, to_end, x, y, sharp + 3 * p, blur_map ? blur_map + 3 * p : nullptr);
    }
}

// ESIM count pass (events.cu bs_esim_count_kernel): counts (n, H * W) events per frame interval and pixel;
// the state is read, not changed.
void bs_host_esim_count(const float* frames, const double* t_s, int64_t n, int64_t npix, double t0,
                        const float* last_frame, const double* last_log, const double* ref_log,
                        const double* last_event, double cpos, double cneg, double log_eps, double refractory_s,
                        int64_t* counts) {
  const BsEsimParams P{cpos, cneg, log_eps, refractory_s, 0.0};
  for (int64_t p = 0; p < npix; ++p) {
    BsEsimPixel s{last_frame[p], last_log[p], ref_log[p], last_event[p]};
    double t_prev = t0;
    for (int64_t k = 0; k < n; ++k) {
      counts[k * npix + p] =
          bs_esim_interval(s, frames[k * npix + p], t_prev, t_s[k], P, 0, 0, 0, nullptr, nullptr, nullptr, nullptr);
      t_prev = t_s[k];
    }
  }
}

// ESIM fill pass (events.cu bs_esim_fill_kernel): writes the events of (interval k, pixel p) from
// offsets[k * npix + p] and advances the state in place.
void bs_host_esim_fill(const float* frames, const double* t_s, int64_t n, int64_t width, int64_t height, double t0,
                       float* last_frame, double* last_log, double* ref_log, double* last_event, double cpos,
                       double cneg, double log_eps, double refractory_s, double scale, const int64_t* offsets,
                       int64_t* ev_t, int32_t* ev_x, int32_t* ev_y, int8_t* ev_p) {
  const BsEsimParams P{cpos, cneg, log_eps, refractory_s, scale};
  const int64_t npix = width * height;
  for (int64_t p = 0; p < npix; ++p) {
    BsEsimPixel s{last_frame[p], last_log[p], ref_log[p], last_event[p]};
    double t_prev = t0;
    for (int64_t k = 0; k < n; ++k) {
      bs_esim_interval(s, frames[k * npix + p], t_prev, t_s[k], P, p % width, p / width, offsets[k * npix + p], ev_t,
                       ev_x, ev_y, ev_p);
      t_prev = t_s[k];
    }
    last_frame[p] = s.i_prev;
    last_log[p] = s.l_prev;
    ref_log[p] = s.ref;
    last_event[p] = s.last_ev;
  }
}

// camera.py encode_u8 (events.cu/render.cu bs_encode_u8_kernel): n values.
void bs_host_encode_u8(const float* x, int64_t n, float gain, const float* thresholds, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bs_encode_u8(x[i], gain, thresholds);
}

// camera.py add_noise's kernel (render.cu bs_noise_kernel): n values.
void bs_host_noise(const float* x, int64_t n, double shot, double read, uint64_t key, const int64_t* zk,
                   const double* zw, const double* zf, const double* pcdf, const int64_t* pguide, float* out) {
  const BsZiggurat zig{zk, zw, zf};
  const BsPoisson pois{pcdf, pguide};
  for (int64_t i = 0; i < n; ++i) out[i] = bs_noise(x[i], shot, read, key, i, zig, pois);
}

// rng.py standard_normal: n values of the normal stream `key`.
void bs_host_normal(uint64_t key, int64_t n, const int64_t* zk, const double* zw, const double* zf, double* out) {
  const BsZiggurat zig{zk, zw, zf};
  for (int64_t i = 0; i < n; ++i) out[i] = bs_normal(bs_hash64(key, i), zig);
}

}  // extern "C"
