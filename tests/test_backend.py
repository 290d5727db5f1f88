"""Device backends (blursynth/backend.py): one interface, a CPU and a CUDA implementation, one suite over both.
The CUDA cases skip without a usable GPU (tests/test_cuda_gpu.py holds the kernel-level parity tests)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from blursynth import cuda, generate
from blursynth.backend import CPU, Backend, CpuBackend, backend_for
from blursynth.cuda.backend import CudaBackend
from blursynth.recipe import load_recipe
from blursynth.render import render
from blursynth.sources import open_source

BACKENDS = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not cuda.available(),
                                                                  reason=str(cuda.unavailable_reason())))]
METHODS = [name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_")]


def test_the_interface_names_five_methods_and_both_backends_have_them_with_its_arguments():
    assert sorted(METHODS) == ["apply_camera", "blur_stats", "render_batch", "scene_events", "to_host"]
    for cls in (CpuBackend, CudaBackend):
        for name in METHODS:
            want = list(inspect.signature(getattr(Backend, name)).parameters)
            assert list(inspect.signature(getattr(cls, name)).parameters) == want, (cls.__name__, name)


def test_backend_for_maps_device_names():
    assert backend_for("cpu") is CPU
    for device in ("cuda", "cuda:1"):  # constructing one touches no GPU
        b = backend_for(device)
        assert isinstance(b, CudaBackend) and b.device == device and b.name == "cuda"


def test_the_cpu_backend_renders_with_every_field_of_the_recipes_render_section():
    recipe = load_recipe("default", ["size=[96, 64]", "render.reference_time=0.3", "render.max_samples=48"])
    made = generate.make_scene(recipe, open_source("builtin", recipe.size), 4, 1)
    scene = made[2]
    (got,) = CPU.render_batch([scene], recipe.render)
    want = render(scene, method="exact", reference_time=0.3, max_samples=48, kernel_size=recipe.render.kernel_size)
    assert got.samples == want.samples
    np.testing.assert_array_equal(got.blur, want.blur)
    np.testing.assert_array_equal(got.sharp, want.sharp)
    default = CPU.render_batch([scene], load_recipe("default", ["size=[96, 64]"]).render)[0]
    assert not np.array_equal(default.sharp, want.sharp)  # reference_time reached the renderer


@pytest.mark.parametrize("device", BACKENDS)
def test_a_backends_samples_equal_the_cpu_samples(device):
    """make_samples through a backend against the CPU backend: the same bytes on the CPU; on a GPU within the
    camera's tolerance (csrc/README.md: a code at most, on few pixels) and the same blur statistics to 1e-4 px."""
    recipe = load_recipe("default", ["size=[96, 64]", "output.blur_map=true"])
    source = open_source("builtin", recipe.size)
    ref = generate.make_samples(recipe, source, 7, [0, 1, 2], device="cpu")
    got = generate.make_samples(recipe, source, 7, [0, 1, 2], device=device)
    for a, b in zip(ref, got):
        assert a.meta["scene"] == b.meta["scene"]
        for key in ("mean", "p95", "max"):
            assert b.meta["blur_px"][key] == pytest.approx(a.meta["blur_px"][key], abs=1e-4)
        for x, y in ((a.blur, b.blur), (a.sharp, b.sharp)):
            diff = np.abs(x.astype(np.int16) - y.astype(np.int16))
            if device == "cpu":
                assert diff.max() == 0
            else:
                assert diff.max() <= 2 and np.count_nonzero(diff) <= 0.1 * diff.size
        assert b.blur_map is not None and b.blur_map.shape == a.blur_map.shape
