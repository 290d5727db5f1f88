// torch bindings of the CUDA launchers (launch.h). Every function checks its tensors (device, dtype,
// contiguity, sizes) and launches on the current CUDA stream; allocation and the scan/sort between the
// event passes happen in blursynth/cuda.py with torch ops on the same stream.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include "launch.h"

namespace {

void check(const torch::Tensor& t, const char* name, torch::ScalarType dtype) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", c10::toString(dtype), ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, " launch failed: ", cudaGetErrorString(err));
}

void check_layers(const torch::Tensor& buf, const torch::Tensor& offset, const torch::Tensor& dims,
                  const torch::Tensor& extend, const torch::Tensor& desc) {
  check(buf, "buf", torch::kFloat32);
  check(offset, "offset", torch::kInt64);
  check(dims, "dims", torch::kInt32);
  check(extend, "extend", torch::kUInt8);
  check(desc, "desc", torch::kInt64);
  TORCH_CHECK(dims.dim() == 2 && dims.size(1) == 2 && dims.size(0) == offset.size(0) &&
                  extend.size(0) == offset.size(0),
              "offset (L,), dims (L, 2) and extend (L,) must agree");
  TORCH_CHECK(desc.dim() == 2 && desc.size(1) == 4, "desc must be (B, 4)");
}

void render_exact(torch::Tensor buf, torch::Tensor offset, torch::Tensor dims, torch::Tensor extend,
                  torch::Tensor desc, torch::Tensor Hinv, torch::Tensor boxes, torch::Tensor start,
                  torch::Tensor level, torch::Tensor out) {
  check_layers(buf, offset, dims, extend, desc);
  check(Hinv, "Hinv", torch::kFloat64);
  check(boxes, "boxes", torch::kInt32);
  check(start, "start", torch::kInt64);
  check(level, "level", torch::kInt32);
  check(out, "out", torch::kFloat32);
  TORCH_CHECK(Hinv.dim() == 2 && Hinv.size(1) == 9 && boxes.dim() == 2 && boxes.size(1) == 4 &&
                  boxes.size(0) == Hinv.size(0),
              "Hinv must be (rows, 9) and boxes (rows, 4)");
  TORCH_CHECK(level.dim() == 3 && level.size(0) == desc.size(0), "level must be (B, H, W)");
  TORCH_CHECK(out.dim() == 4 && out.size(0) == level.size(0) && out.size(1) == level.size(1) &&
                  out.size(2) == level.size(2) && out.size(3) == 3,
              "out must be (B, H, W, 3)");
  const c10::cuda::CUDAGuard guard(buf.device());
  check_launch(bs_launch_render_exact(buf.data_ptr<float>(), offset.data_ptr<int64_t>(), dims.data_ptr<int32_t>(),
                                      extend.data_ptr<uint8_t>(), desc.data_ptr<int64_t>(), desc.size(0),
                                      Hinv.data_ptr<double>(), boxes.data_ptr<int32_t>(), start.data_ptr<int64_t>(),
                                      level.data_ptr<int32_t>(), level.size(2), level.size(1), out.data_ptr<float>(),
                                      c10::cuda::getCurrentCUDAStream()),
               "render_exact");
}

void sharp_map(torch::Tensor buf, torch::Tensor offset, torch::Tensor dims, torch::Tensor extend, torch::Tensor desc,
               torch::Tensor Hinv, torch::Tensor boxes, torch::Tensor to_start, torch::Tensor to_end,
               torch::Tensor sharp, c10::optional<torch::Tensor> blur_map) {
  check_layers(buf, offset, dims, extend, desc);
  check(Hinv, "Hinv", torch::kFloat64);
  check(boxes, "boxes", torch::kInt32);
  check(to_start, "to_start", torch::kFloat64);
  check(to_end, "to_end", torch::kFloat64);
  check(sharp, "sharp", torch::kFloat32);
  TORCH_CHECK(sharp.dim() == 4 && sharp.size(0) == desc.size(0) && sharp.size(3) == 3, "sharp must be (B, H, W, 3)");
  float* map_ptr = nullptr;
  if (blur_map.has_value()) {
    check(*blur_map, "blur_map", torch::kFloat32);
    TORCH_CHECK(blur_map->sizes() == sharp.sizes(), "blur_map must be shaped like sharp");
    map_ptr = blur_map->data_ptr<float>();
  }
  const c10::cuda::CUDAGuard guard(buf.device());
  check_launch(bs_launch_sharp_map(buf.data_ptr<float>(), offset.data_ptr<int64_t>(), dims.data_ptr<int32_t>(),
                                   extend.data_ptr<uint8_t>(), desc.data_ptr<int64_t>(), desc.size(0),
                                   Hinv.data_ptr<double>(), boxes.data_ptr<int32_t>(), to_start.data_ptr<double>(),
                                   to_end.data_ptr<double>(), sharp.size(2), sharp.size(1), sharp.data_ptr<float>(),
                                   map_ptr, c10::cuda::getCurrentCUDAStream()),
               "sharp_map");
}

void check_state(const torch::Tensor& frames, const torch::Tensor& t_s, const torch::Tensor& last_frame,
                 const torch::Tensor& last_log, const torch::Tensor& ref_log, const torch::Tensor& last_event) {
  check(frames, "frames", torch::kFloat32);
  check(t_s, "t_s", torch::kFloat64);
  check(last_frame, "last_frame", torch::kFloat32);
  check(last_log, "last_log", torch::kFloat64);
  check(ref_log, "ref_log", torch::kFloat64);
  check(last_event, "last_event", torch::kFloat64);
  TORCH_CHECK(frames.dim() == 3 && t_s.dim() == 1 && t_s.size(0) == frames.size(0), "frames (n, H, W), t_s (n,)");
  for (const auto* s : {&last_frame, &last_log, &ref_log, &last_event})
    TORCH_CHECK(s->dim() == 2 && s->size(0) == frames.size(1) && s->size(1) == frames.size(2),
                "state arrays must be (H, W) like the frames");
}

void esim_count(torch::Tensor frames, torch::Tensor t_s, double t0, torch::Tensor last_frame, torch::Tensor last_log,
                torch::Tensor ref_log, torch::Tensor last_event, double cpos, double cneg, double log_eps,
                double refractory_s, torch::Tensor counts) {
  check_state(frames, t_s, last_frame, last_log, ref_log, last_event);
  check(counts, "counts", torch::kInt64);
  TORCH_CHECK(counts.numel() == frames.numel(), "counts must hold one entry per frame pixel");
  const c10::cuda::CUDAGuard guard(frames.device());
  check_launch(bs_launch_esim_count(frames.data_ptr<float>(), t_s.data_ptr<double>(), frames.size(0),
                                    frames.size(1) * frames.size(2), t0, last_frame.data_ptr<float>(),
                                    last_log.data_ptr<double>(), ref_log.data_ptr<double>(),
                                    last_event.data_ptr<double>(), cpos, cneg, log_eps, refractory_s,
                                    counts.data_ptr<int64_t>(), c10::cuda::getCurrentCUDAStream()),
               "esim_count");
}

void esim_fill(torch::Tensor frames, torch::Tensor t_s, double t0, torch::Tensor last_frame, torch::Tensor last_log,
               torch::Tensor ref_log, torch::Tensor last_event, double cpos, double cneg, double log_eps,
               double refractory_s, double scale, torch::Tensor offsets, torch::Tensor ev_t, torch::Tensor ev_x,
               torch::Tensor ev_y, torch::Tensor ev_p) {
  check_state(frames, t_s, last_frame, last_log, ref_log, last_event);
  check(offsets, "offsets", torch::kInt64);
  check(ev_t, "ev_t", torch::kInt64);
  check(ev_x, "ev_x", torch::kInt32);
  check(ev_y, "ev_y", torch::kInt32);
  check(ev_p, "ev_p", torch::kInt8);
  TORCH_CHECK(offsets.numel() >= frames.numel(), "offsets must hold one entry per frame pixel");
  TORCH_CHECK(ev_x.numel() == ev_t.numel() && ev_y.numel() == ev_t.numel() && ev_p.numel() == ev_t.numel(),
              "event arrays must have one length");
  const c10::cuda::CUDAGuard guard(frames.device());
  check_launch(bs_launch_esim_fill(frames.data_ptr<float>(), t_s.data_ptr<double>(), frames.size(0), frames.size(2),
                                   frames.size(1), t0, last_frame.data_ptr<float>(), last_log.data_ptr<double>(),
                                   ref_log.data_ptr<double>(), last_event.data_ptr<double>(), cpos, cneg, log_eps,
                                   refractory_s, scale, offsets.data_ptr<int64_t>(), ev_t.data_ptr<int64_t>(),
                                   ev_x.data_ptr<int32_t>(), ev_y.data_ptr<int32_t>(), ev_p.data_ptr<int8_t>(),
                                   c10::cuda::getCurrentCUDAStream()),
               "esim_fill");
}

void encode_u8(torch::Tensor x, double gain, torch::Tensor thresholds, torch::Tensor out) {
  check(x, "x", torch::kFloat32);
  check(thresholds, "thresholds", torch::kFloat32);
  check(out, "out", torch::kUInt8);
  TORCH_CHECK(thresholds.numel() == 255, "thresholds must hold 255 values");
  TORCH_CHECK(out.numel() == x.numel(), "out must be shaped like x");
  const c10::cuda::CUDAGuard guard(x.device());
  check_launch(bs_launch_encode_u8(x.data_ptr<float>(), x.numel(), (float)gain, thresholds.data_ptr<float>(),
                                   out.data_ptr<uint8_t>(), c10::cuda::getCurrentCUDAStream()),
               "encode_u8");
}

void noise(torch::Tensor x, double shot, double read, int64_t key, torch::Tensor zk, torch::Tensor zw,
           torch::Tensor zf, torch::Tensor pcdf, torch::Tensor pguide, torch::Tensor out) {
  check(x, "x", torch::kFloat32);
  check(zk, "zk", torch::kInt64);
  check(zw, "zw", torch::kFloat64);
  check(zf, "zf", torch::kFloat64);
  check(pcdf, "pcdf", torch::kFloat64);
  check(pguide, "pguide", torch::kInt64);
  check(out, "out", torch::kFloat32);
  // sizes of rng.py's tables (blursynth_math.h BS_ZIG_LAYERS, BS_POIS_MAX_LAMBDA x BS_POIS_KMAX / BS_POIS_GUIDE)
  TORCH_CHECK(zk.numel() == 128 && zw.numel() == 128 && zf.numel() == 128, "the ziggurat tables hold 128 values");
  TORCH_CHECK(pcdf.numel() == 32 * 128 && pguide.numel() == 32 * 256, "the Poisson tables are (32, 128) and (32, 256)");
  TORCH_CHECK(out.numel() == x.numel(), "out must be shaped like x");
  const c10::cuda::CUDAGuard guard(x.device());
  check_launch(bs_launch_noise(x.data_ptr<float>(), x.numel(), shot, read, (uint64_t)key, zk.data_ptr<int64_t>(),
                               zw.data_ptr<double>(), zf.data_ptr<double>(), pcdf.data_ptr<double>(),
                               pguide.data_ptr<int64_t>(), out.data_ptr<float>(),
                               c10::cuda::getCurrentCUDAStream()),
               "noise");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "blursynth CUDA kernels: exact exposure rendering, ESIM events, camera noise and 8-bit encode";
  m.def("render_exact", &render_exact);
  m.def("sharp_map", &sharp_map);
  m.def("esim_count", &esim_count);
  m.def("esim_fill", &esim_fill);
  m.def("encode_u8", &encode_u8);
  m.def("noise", &noise);
}
