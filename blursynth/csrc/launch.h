// Launchers of the CUDA kernels (render.cu, events.cu), over raw device pointers so the .cu files need neither
// torch nor its headers (bindings.cpp checks the tensors and passes their pointers and the current stream).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

// Exposure blur of B scenes of one size (W, H). Per image b, desc[4 b .. 4 b + 3] = (first layer in the global
// layer arrays, layer count L_b, first (sample, layer) row of Hinv/boxes, first entry of `start`). Hinv:
// (rows, 9) float64 image-to-crop maps; boxes: (rows, 4) int32; start: per image, G_b + 1 sample-row bounds of
// its levels; level: (B, H, W) int32; out: (B, H, W, 3) float32.
cudaError_t bs_launch_render_exact(const float* buf, const int64_t* offset, const int32_t* dims,
                                   const uint8_t* extend, const int64_t* desc, int64_t B, const double* Hinv,
                                   const int32_t* boxes, const int64_t* start, const int32_t* level, int64_t width,
                                   int64_t height, float* out, cudaStream_t stream);

// Latent images (and blur maps) of B (scene, time) pairs of one size. desc[4 b ..] = (first layer, L_b, first
// Hinv/boxes row (L_b rows at that time), first to_start/to_end row). sharp: (B, H, W, 3); blur_map: the same
// or null.
cudaError_t bs_launch_sharp_map(const float* buf, const int64_t* offset, const int32_t* dims, const uint8_t* extend,
                                const int64_t* desc, int64_t B, const double* Hinv, const int32_t* boxes,
                                const double* to_start, const double* to_end, int64_t width, int64_t height,
                                float* sharp, float* blur_map, cudaStream_t stream);

// ESIM count pass: counts (n, npix) int64 events per frame interval and pixel; the state is only read.
cudaError_t bs_launch_esim_count(const float* frames, const double* t_s, int64_t n, int64_t npix, double t0,
                                 const float* last_frame, const double* last_log, const double* ref_log,
                                 const double* last_event, double cpos, double cneg, double log_eps,
                                 double refractory_s, int64_t* counts, cudaStream_t stream);

// ESIM fill pass: the events of (interval k, pixel p) from offsets[k * npix + p]; advances the state in place.
cudaError_t bs_launch_esim_fill(const float* frames, const double* t_s, int64_t n, int64_t width, int64_t height,
                                double t0, float* last_frame, double* last_log, double* ref_log, double* last_event,
                                double cpos, double cneg, double log_eps, double refractory_s, double scale,
                                const int64_t* offsets, int64_t* ev_t, int32_t* ev_x, int32_t* ev_y, int8_t* ev_p,
                                cudaStream_t stream);

// Camera encode: out[i] = bs_encode_u8(x[i], gain, thresholds), thresholds (255,) float32 on the device.
cudaError_t bs_launch_encode_u8(const float* x, int64_t n, float gain, const float* thresholds, uint8_t* out,
                                cudaStream_t stream);

// Camera noise: out[i] = bs_noise(x[i], shot, read, key, i, {zk, zw, zf}, {pcdf, pguide}) (rng.py's ziggurat
// and Poisson tables).
cudaError_t bs_launch_noise(const float* x, int64_t n, double shot, double read, uint64_t key, const int64_t* zk,
                            const double* zw, const double* zf, const double* pcdf, const int64_t* pguide, float* out,
                            cudaStream_t stream);
