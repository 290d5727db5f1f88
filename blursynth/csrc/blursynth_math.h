// Per-pixel math shared by the CUDA kernels (render.cu, events.cu) and the host build (host.cpp) that the
// CPU-only tests compare against the numba kernels (blursynth/render/exact.py, blursynth/events/simulate.py).
//
// Every function here is a plain function of its arguments, compiled as __host__ __device__ under nvcc and as
// ordinary C++ otherwise. The arithmetic follows the numba kernels operation by operation (float64 warps and
// weights, the float32 branch-free path for the back-most extending layer, the same ESIM crossing loop), so the
// host build agrees with numba to rounding; see csrc/README.md for the stated tolerances.
#pragma once

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define BS_HD __host__ __device__ __forceinline__
#else
#define BS_HD inline
#endif

// Products that nvcc may not fuse into a following add (fused multiply-add rounds once, numba rounds twice):
// used where the device must round exactly as the host: sample coordinates, the bilinear sums of bs_sample and
// the sharp / latent image and blur map (so latent frames, and the events simulated from them, are bit-identical
// to numba's), event times, noise. The exposure integral's fast paths in bs_composite are left free to fuse
// (1 ulp per sample, within the stated tolerance).
#ifdef __CUDA_ARCH__
#define BS_DMUL(a, b) __dmul_rn((a), (b))
#define BS_FMUL(a, b) __fmul_rn((a), (b))
#else
#define BS_DMUL(a, b) ((a) * (b))
#define BS_FMUL(a, b) ((a) * (b))
#endif

// compositing stops once the remaining transmittance is below this (render/exact.py OPAQUE_EPS)
#define BS_OPAQUE_EPS 1e-6

// The packed layers of one scene (render/pack.py PackedLayers): premultiplied linear RGBA crops, row-major,
// one after another in `buf`.
struct BsLayers {
  const float* buf;       // (sum of w_l * h_l * 4,)
  const int64_t* offset;  // (L,) start of each crop in buf (floats)
  const int32_t* dims;    // (L, 2) crop width, height
  const uint8_t* extend;  // (L,) 1: clamp outside the crop (opaque background); 0: transparent outside
  int L;
};

BS_HD double bs_min(double a, double b) { return a < b ? a : b; }
BS_HD double bs_max(double a, double b) { return a > b ? a : b; }
BS_HD float bs_minf(float a, float b) { return a < b ? a : b; }
BS_HD float bs_maxf(float a, float b) { return a > b ? a : b; }
BS_HD int64_t bs_mini(int64_t a, int64_t b) { return a < b ? a : b; }

// Image pixel (x, y) through the row-major 3x3 homography Hm: (u, v) = (Hm (x, y, 1))[:2] / (Hm (x, y, 1))[2],
// evaluated as exact.py's _sweep does (row constants first; affine maps multiply by 1 / w).
BS_HD void bs_warp(const double* Hm, double x, double y, double* u, double* v) {
  const double cu = BS_DMUL(Hm[1], y) + Hm[2];
  const double cv = BS_DMUL(Hm[4], y) + Hm[5];
  const double cw = BS_DMUL(Hm[7], y) + Hm[8];
  if (Hm[6] == 0.0 && Hm[7] == 0.0) {
    const double inv_w = 1.0 / cw;
    // rounded here, or nvcc may fuse the product into the caller's u - floor(u)
    *u = BS_DMUL(BS_DMUL(Hm[0], x) + cu, inv_w);
    *v = BS_DMUL(BS_DMUL(Hm[3], x) + cv, inv_w);
  } else {
    const double wz = BS_DMUL(Hm[6], x) + cw;
    *u = (BS_DMUL(Hm[0], x) + cu) / wz;
    *v = (BS_DMUL(Hm[3], x) + cv) / wz;
  }
}

// Plain warp (exact.py _warp), used for the blur map's start/end positions.
BS_HD void bs_warp_plain(const double* Hm, double x, double y, double* u, double* v) {
  const double wz = BS_DMUL(Hm[6], x) + BS_DMUL(Hm[7], y) + Hm[8];
  *u = (BS_DMUL(Hm[0], x) + BS_DMUL(Hm[1], y) + Hm[2]) / wz;
  *v = (BS_DMUL(Hm[3], x) + BS_DMUL(Hm[4], y) + Hm[5]) / wz;
}

// Bilinear premultiplied RGBA of crop l at crop coordinates (u, v) (exact.py _sample). Outside the crop a
// non-extending layer is transparent (neighbours that do not exist weigh zero); an extending one clamps.
BS_HD void bs_sample(const BsLayers& Ls, int l, double u, double v, double rgba[4]) {
  const int w = Ls.dims[2 * l], h = Ls.dims[2 * l + 1];
  const float* buf = Ls.buf + Ls.offset[l];
  rgba[0] = rgba[1] = rgba[2] = rgba[3] = 0.0;
  if (Ls.extend[l]) {
    u = bs_min(bs_max(u, 0.0), w - 1.0);
    v = bs_min(bs_max(v, 0.0), h - 1.0);
  } else if (u <= -1.0 || v <= -1.0 || u >= w || v >= h) {
    return;
  }
  const int64_t x0 = (int64_t)floor(u), y0 = (int64_t)floor(v);
  const double fx = u - x0, fy = v - y0;
  if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) {
    const int64_t i = (y0 * w + x0) * 4, j = i + (int64_t)w * 4;
    const double w00 = (1.0 - fx) * (1.0 - fy), w01 = fx * (1.0 - fy), w10 = (1.0 - fx) * fy, w11 = fx * fy;
    const double a = BS_DMUL(w00, (double)buf[i + 3]) + BS_DMUL(w01, (double)buf[i + 7]) +
                     BS_DMUL(w10, (double)buf[j + 3]) + BS_DMUL(w11, (double)buf[j + 7]);
    if (a == 0.0) return;  // premultiplied: no coverage, no colour
    for (int c = 0; c < 3; ++c)
      rgba[c] = BS_DMUL(w00, (double)buf[i + c]) + BS_DMUL(w01, (double)buf[i + 4 + c]) +
                BS_DMUL(w10, (double)buf[j + c]) + BS_DMUL(w11, (double)buf[j + 4 + c]);
    rgba[3] = a;
    return;
  }
  for (int dy = 0; dy < 2; ++dy) {
    const int64_t yy = y0 + dy;
    if (yy < 0 || yy >= h) continue;
    const double wy = dy ? fy : 1.0 - fy;
    for (int dx = 0; dx < 2; ++dx) {
      const int64_t xx = x0 + dx;
      if (xx < 0 || xx >= w) continue;
      const double wgt = wy * (dx ? fx : 1.0 - fx);
      const int64_t i = (yy * w + xx) * 4;
      for (int c = 0; c < 4; ++c) rgba[c] += BS_DMUL(wgt, (double)buf[i + c]);
    }
  }
}

// Composite layer l under transmittance *trans at image pixel (x, y) with image-to-crop map Hm, adding to acc
// (exact.py _sweep, one pixel). `last`: l is the back-most layer (its alpha is then never needed).
BS_HD void bs_composite(const BsLayers& Ls, int l, bool last, const double* Hm, int64_t x, int64_t y,
                        double* trans, double acc[3]) {
  const int w = Ls.dims[2 * l], h = Ls.dims[2 * l + 1];
  const bool ext = Ls.extend[l] != 0;
  const float* buf = Ls.buf + Ls.offset[l];
  if (ext && w >= 2 && h >= 2 && last) {
    // exact.py's branch-free float32 path for the back layer (coordinates err < 1e-3 px)
    const float a0 = (float)Hm[0], a1 = (float)Hm[3], a2 = (float)Hm[6];
    const float c0 = (float)(BS_DMUL(Hm[1], (double)y) + Hm[2]), c1 = (float)(BS_DMUL(Hm[4], (double)y) + Hm[5]);
    const float c2 = (float)(BS_DMUL(Hm[7], (double)y) + Hm[8]);
    const float wm1 = (float)(w - 1), hm1 = (float)(h - 1);
    const float t = (float)*trans, fxx = (float)x;
    const float iz = 1.0f / (BS_FMUL(a2, fxx) + c2);
    const float u = bs_minf(bs_maxf((BS_FMUL(a0, fxx) + c0) * iz, 0.0f), wm1);
    const float v = bs_minf(bs_maxf((BS_FMUL(a1, fxx) + c1) * iz, 0.0f), hm1);
    const int64_t x0 = bs_mini((int64_t)u, w - 2), y0 = bs_mini((int64_t)v, h - 2);
    const float fx = u - (float)x0, fy = v - (float)y0;
    const int64_t i = (y0 * w + x0) * 4, j = i + (int64_t)w * 4;
    const float w00 = t * (1.0f - fx) * (1.0f - fy), w01 = t * fx * (1.0f - fy);
    const float w10 = t * (1.0f - fx) * fy, w11 = t * fx * fy;
    for (int c = 0; c < 3; ++c) {
      const float s = w00 * buf[i + c] + w01 * buf[i + 4 + c] + w10 * buf[j + c] + w11 * buf[j + 4 + c];
      acc[c] += (double)s;
    }
    return;
  }
  const double t = *trans;
  if (t < BS_OPAQUE_EPS) return;
  double u, v;
  bs_warp(Hm, (double)x, (double)y, &u, &v);
  if (ext && w >= 2 && h >= 2) {
    // clamped sampling never leaves the crop
    u = bs_min(bs_max(u, 0.0), w - 1.0);
    v = bs_min(bs_max(v, 0.0), h - 1.0);
    const int64_t x0 = bs_mini((int64_t)u, w - 2), y0 = bs_mini((int64_t)v, h - 2);
    const double fx = u - x0, fy = v - y0;
    const int64_t i = (y0 * w + x0) * 4, j = i + (int64_t)w * 4;
    const double w00 = (1.0 - fx) * (1.0 - fy), w01 = fx * (1.0 - fy), w10 = (1.0 - fx) * fy, w11 = fx * fy;
    const double a = w00 * buf[i + 3] + w01 * buf[i + 7] + w10 * buf[j + 3] + w11 * buf[j + 7];
    for (int c = 0; c < 3; ++c) {
      acc[c] += t * (w00 * buf[i + c] + w01 * buf[i + 4 + c] + w10 * buf[j + c] + w11 * buf[j + 4 + c]);
    }
    *trans = t * (1.0 - a);
    return;
  }
  double s[4];
  bs_sample(Ls, l, u, v, s);
  if (s[3] == 0.0) return;
  for (int c = 0; c < 3; ++c) acc[c] += t * s[c];
  *trans = t * (1.0 - s[3]);
}

// Does layer l's box for this time sample (x0, y0, x1, y1 inclusive, image space) contain (x, y)? Extending
// layers cover every pixel.
BS_HD bool bs_in_box(const BsLayers& Ls, int l, const int32_t* box, int64_t x, int64_t y) {
  return Ls.extend[l] || (box[1] <= y && y <= box[3] && box[0] <= x && x <= box[2]);
}

// One time sample at pixel (x, y): layers front (L - 1) to back (0), stopping once opaque. Hinv: (L, 9)
// image-to-crop maps of this sample; boxes: (L, 4). Adds the composite to acc.
//
// Early exit: numba keeps adding the back-most extending layer under a transmittance below BS_OPAQUE_EPS;
// here the loop ends there, a difference of at most BS_OPAQUE_EPS times the back layer's radiance.
BS_HD void bs_pixel_sample(const BsLayers& Ls, const double* Hinv, const int32_t* boxes, int64_t x, int64_t y,
                           double acc[3]) {
  double trans = 1.0;
  for (int l = Ls.L - 1; l >= 0; --l) {
    if (trans < BS_OPAQUE_EPS) break;
    if (!bs_in_box(Ls, l, boxes + 4 * l, x, y)) continue;
    bs_composite(Ls, l, l == 0, Hinv + 9 * l, x, y, &trans, acc);
  }
}

// Mean over samples k in [k0, k1) of the composited latent images at pixel (x, y) (exact.py _integrate), summed
// in float64.
// Hinv: (K, L, 9), boxes: (K, L, 4) for all samples of the scene.
BS_HD void bs_pixel_exact(const BsLayers& Ls, const double* Hinv, const int32_t* boxes, int64_t k0, int64_t k1,
                          int64_t x, int64_t y, float out[3]) {
  double acc[3] = {0.0, 0.0, 0.0};
  for (int64_t k = k0; k < k1; ++k) bs_pixel_sample(Ls, Hinv + 9 * Ls.L * k, boxes + 4 * Ls.L * k, x, y, acc);
  const double inv_n = 1.0 / (double)(k1 - k0);
  for (int c = 0; c < 3; ++c) out[c] = (float)(acc[c] * inv_n);
}

// Latent image at one time and the blur map at pixel (x, y) (exact.py _sharp_map). Hinv: (L, 9), boxes:
// (L, 4) at that time; to_start, to_end: (L, 9) image-at-reference to image-at-t=0 / t=1 maps. blur_map may be
// null (latent frames only). The blur map is (u_x, u_y, magnitude in px) of the alpha-weighted displacement.
BS_HD void bs_pixel_sharp_map(const BsLayers& Ls, const double* Hinv, const int32_t* boxes, const double* to_start,
                              const double* to_end, int64_t x, int64_t y, float sharp[3], float* blur_map) {
  double trans = 1.0, c[3] = {0.0, 0.0, 0.0}, dx = 0.0, dy = 0.0, wsum = 0.0;
  for (int l = Ls.L - 1; l >= 0; --l) {
    if (trans < BS_OPAQUE_EPS) break;
    if (!bs_in_box(Ls, l, boxes + 4 * l, x, y)) continue;
    const int w = Ls.dims[2 * l], h = Ls.dims[2 * l + 1];
    const double* Hm = Hinv + 9 * l;
    // an integer translation (the identity after recentring) reads pixels directly
    const double dxo = rint(Hm[2]), dyo = rint(Hm[5]);
    const bool direct = fabs(Hm[0] - 1.0) < 1e-12 && fabs(Hm[1]) < 1e-12 && fabs(Hm[3]) < 1e-12 &&
                        fabs(Hm[4] - 1.0) < 1e-12 && fabs(Hm[6]) < 1e-15 && fabs(Hm[7]) < 1e-15 &&
                        fabs(Hm[8] - 1.0) < 1e-12 && fabs(Hm[2] - dxo) < 1e-9 && fabs(Hm[5] - dyo) < 1e-9;
    const int64_t xs = x + (int64_t)dxo, ys = y + (int64_t)dyo;
    double s[4];
    if (direct && 0 <= xs && xs < w && 0 <= ys && ys < h) {
      const float* p = Ls.buf + Ls.offset[l] + (ys * w + xs) * 4;
      for (int ch = 0; ch < 4; ++ch) s[ch] = p[ch];
    } else {
      double u, v;
      bs_warp_plain(Hm, (double)x, (double)y, &u, &v);
      bs_sample(Ls, l, u, v, s);
    }
    if (s[3] == 0.0) continue;
    for (int ch = 0; ch < 3; ++ch) c[ch] += BS_DMUL(trans, s[ch]);
    if (blur_map) {
      const double wgt = BS_DMUL(trans, s[3]);  // rounded before wsum += wgt
      const double* S = to_start + 9 * l;
      const double* E = to_end + 9 * l;
      if (S[6] == 0.0 && S[7] == 0.0 && S[8] == 1.0 && E[6] == 0.0 && E[7] == 0.0 && E[8] == 1.0) {
        dx += BS_DMUL(wgt, BS_DMUL(E[0] - S[0], (double)x) + BS_DMUL(E[1] - S[1], (double)y) + (E[2] - S[2]));
        dy += BS_DMUL(wgt, BS_DMUL(E[3] - S[3], (double)x) + BS_DMUL(E[4] - S[4], (double)y) + (E[5] - S[5]));
      } else {
        double sx, sy, ex, ey;
        bs_warp_plain(S, (double)x, (double)y, &sx, &sy);
        bs_warp_plain(E, (double)x, (double)y, &ex, &ey);
        dx += BS_DMUL(wgt, ex - sx);
        dy += BS_DMUL(wgt, ey - sy);
      }
      wsum += wgt;
    }
    trans = trans * (1.0 - s[3]);
  }
  for (int ch = 0; ch < 3; ++ch) sharp[ch] = (float)c[ch];
  if (!blur_map) return;
  if (wsum > 0.0) {
    dx /= wsum;
    dy /= wsum;
  }
  const double m = sqrt(BS_DMUL(dx, dx) + BS_DMUL(dy, dy));
  blur_map[0] = m > 1e-9 ? (float)(dx / m) : 0.0f;
  blur_map[1] = m > 1e-9 ? (float)(dy / m) : 0.0f;
  blur_map[2] = (float)m;
}

// ---------------------------------------------------------------------------------------------------------------
// ESIM (events/simulate.py _row_interval, one pixel)

// One pixel's simulator state, carried across frames and chunks (simulate.py EventState).
struct BsEsimPixel {
  float i_prev;    // linear intensity of the last frame seen
  double l_prev;   // log(i_prev + log_eps)
  double ref;      // reference log intensity (level of the last crossing)
  double last_ev;  // time in s of the last kept event (-inf: none)
};

struct BsEsimParams {
  double cpos, cneg, log_eps, refractory_s, scale;  // scale: seconds -> integer output unit
};

// Advance one pixel by one frame interval (t_prev, t_cur] to intensity ic; returns the number of kept events.
// With ev_t non-null, writes them (time rounded to nearest in output units, column x, row y, polarity +1 / -1)
// from index o, in crossing order. The reference moves at every crossing, also when the refractory period drops
// the event. te = t_prev + (c - lp) * (dt / (lc - lp)), as simulate.py _crossings computes it.
BS_HD int64_t bs_esim_interval(BsEsimPixel& s, float ic, double t_prev, double t_cur, const BsEsimParams& P,
                               int64_t x, int64_t y, int64_t o, int64_t* ev_t, int32_t* ev_x, int32_t* ev_y,
                               int8_t* ev_p) {
  if (ic == s.i_prev) return 0;  // an unchanged pixel has no crossing
  const double dt = t_cur - t_prev;
  const double lp = s.l_prev;
  const double lc = log((double)ic + P.log_eps);
  s.i_prev = ic;
  s.l_prev = lc;
  if (lc == lp) return 0;
  double r = s.ref, le = s.last_ev, c = r;
  int64_t k = 0;
  const bool up = lc > lp;
  const int8_t pol = up ? 1 : -1;
  const double slope = dt / (lc - lp);
  while (true) {
    c = up ? c + P.cpos : c - P.cneg;
    if (up ? c > lc : c < lc) break;
    if (up ? c > lp : c < lp) {
      const double te = t_prev + BS_DMUL(c - lp, slope);
      if (te - le >= P.refractory_s) {
        le = te;
        if (ev_t) {
          ev_t[o + k] = (int64_t)rint(te * P.scale);
          ev_x[o + k] = (int32_t)x;
          ev_y[o + k] = (int32_t)y;
          ev_p[o + k] = pol;
        }
        ++k;
      }
    }
    r = c;
  }
  s.ref = r;
  // as simulate.py: the last event time is tracked only with a refractory period (it stays -inf otherwise)
  if (P.refractory_s > 0) s.last_ev = le;
  return k;
}

// ---------------------------------------------------------------------------------------------------------------
// Camera (camera.py _encode_u8, one value)

// 8-bit code of gain * x through a response given by its 255 ascending float32 code thresholds: the number of
// thresholds <= gain * x (0 for values <= 0 or NaN).
BS_HD uint8_t bs_encode_u8(float x, float gain, const float* thresholds) {
  const float v = x * gain;
  if (!(v > 0.0f)) return 0;
  int lo = 0, hi = 255;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (thresholds[mid] <= v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (uint8_t)lo;
}

// Counter-based random numbers (blursynth/rng.py): value i of a stream is SplitMix64's i-th output for the key,
// so every thread draws its own values and gets what numba draws.
#define BS_GOLDEN 0x9E3779B97F4A7C15ULL
#define BS_REJECT_SALT 0xD1B54A32D192ED03ULL
#define BS_UNIFORM_SALT 0x6A09E667F3BCC909ULL   // camera.py UNIFORM_SALT, UNIFORM_SALT2: the Poisson uniforms
#define BS_UNIFORM_SALT2 0xBB67AE8584CAA73BULL
#define BS_ZIG_LAYERS 128
#define BS_ZIG_R 3.442619855899

BS_HD uint64_t bs_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

BS_HD uint64_t bs_hash64(uint64_t key, int64_t i) { return bs_mix64(key + ((uint64_t)i + 1ULL) * BS_GOLDEN); }

// uniform in (0, 1) from the top 53 bits
BS_HD double bs_unit(uint64_t bits) { return ((double)(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

// The ziggurat tables of rng.py (ZIG_K, ZIG_W, ZIG_F), passed in so both sides use the same numbers.
struct BsZiggurat {
  const int64_t* k;
  const double* w;
  const double* f;
};

// rng.py normal_fast: bits 0-31 the signed value, bits 32-38 the layer
BS_HD int64_t bs_zig_value(uint64_t h) { return (int64_t)(int32_t)(uint32_t)(h & 0xFFFFFFFFULL); }
BS_HD int64_t bs_zig_layer(uint64_t h) { return (int64_t)((h >> 32) & (uint64_t)(BS_ZIG_LAYERS - 1)); }
BS_HD int64_t bs_absi(int64_t a) { return a < 0 ? -a : a; }

// A standard normal deviate from the value's hash h (rng.py normal / normal_slow, step for step).
BS_HD double bs_normal(uint64_t h, const BsZiggurat& z) {
  int64_t j = bs_zig_value(h), layer = bs_zig_layer(h);
  if (bs_absi(j) < z.k[layer]) return BS_DMUL((double)j, z.w[layer]);
  uint64_t state = h ^ BS_REJECT_SALT;
  for (;;) {
    const double x = BS_DMUL((double)j, z.w[layer]);
    if (layer == 0) {
      double a, b;
      for (;;) {
        state += BS_GOLDEN;
        a = -log(bs_unit(bs_mix64(state))) / BS_ZIG_R;
        state += BS_GOLDEN;
        b = -log(bs_unit(bs_mix64(state)));
        if (b + b >= BS_DMUL(a, a)) break;
      }
      return j > 0 ? BS_ZIG_R + a : -BS_ZIG_R - a;
    }
    state += BS_GOLDEN;
    const double u = bs_unit(bs_mix64(state));
    if (z.f[layer] + BS_DMUL(u, z.f[layer - 1] - z.f[layer]) < exp(BS_DMUL(-0.5 * x, x))) return x;
    state += BS_GOLDEN;
    const uint64_t r = bs_mix64(state);
    j = bs_zig_value(r);
    layer = bs_zig_layer(r);
    if (bs_absi(j) < z.k[layer]) return BS_DMUL((double)j, z.w[layer]);
  }
}

// rng.py's Poisson tables (POIS_CDF (32, 128) float64, POIS_GUIDE_TABLE (32, 256) int64), passed in.
#define BS_POIS_MAX_LAMBDA 32
#define BS_POIS_KMAX 128
#define BS_POIS_GUIDE 256
struct BsPoisson {
  const double* cdf;
  const int64_t* guide;
};

// An exact Poisson(lam) count, 0 <= lam < 32 (rng.py poisson): Poisson(floor(lam)) by the guide table plus
// Poisson(lam - floor(lam)) by sequential inversion.
BS_HD int64_t bs_poisson(double lam, double u1, double u2, const BsPoisson& t) {
  const int64_t n = bs_mini((int64_t)lam, BS_POIS_MAX_LAMBDA - 1);
  const double f = lam - (double)n;
  const double* cdf = t.cdf + n * BS_POIS_KMAX;
  int64_t a = t.guide[n * BS_POIS_GUIDE + (int64_t)(u1 * BS_POIS_GUIDE)];
  while (a < BS_POIS_KMAX - 1 && cdf[a] < u1) ++a;
  double p = exp(-f), c = p;
  int64_t b = 0;
  while (u2 > c && b < 1000) {
    ++b;
    p = BS_DMUL(p, BS_DMUL(f, 1.0 / (double)b));
    c += p;
  }
  return a + b;
}

// Poisson-Gaussian noise on value i (camera.py _noise): y = shot * Poisson(x / shot) + N(0, read^2) with x
// clipped to >= 0. The Gaussian model (mean v, variance shot * v + read^2, in float32) everywhere; below 32
// expected photons the exact Poisson count (float64). The normal is value i of the stream `key`, the Poisson
// uniforms value i of the streams key ^ BS_UNIFORM_SALT and key ^ BS_UNIFORM_SALT2.
BS_HD float bs_noise(float x, double shot, double read, uint64_t key, int64_t i, const BsZiggurat& zig,
                     const BsPoisson& pois) {
  const float normal = (float)bs_normal(bs_hash64(key, i), zig);
  if (!(shot > 0.0 && x < (float)(32.0 * shot))) {
    const float zero = 0.0f;
    const float v = zero > x ? zero : x;
    return v + BS_FMUL(sqrtf(BS_FMUL((float)shot, v) + (float)(read * read)), normal);
  }
  const double xd = (double)x;
  const double lam = (xd > 0.0 ? xd : 0.0) / shot;
  const int64_t k = bs_poisson(lam, bs_unit(bs_hash64(key ^ BS_UNIFORM_SALT, i)),
                               bs_unit(bs_hash64(key ^ BS_UNIFORM_SALT2, i)), pois);
  return (float)(BS_DMUL(shot, (double)k) + BS_DMUL(read, (double)normal));
}
