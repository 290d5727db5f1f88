"""Device backends (blursynth/backend.py): one interface, a CPU and a CUDA implementation, one suite over both.
The CUDA cases skip without a usable GPU (tests/test_cuda_gpu.py holds the kernel-level parity tests)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from blursynth import cuda, generate
from blursynth.backend import CPU, Backend, CpuBackend, backend_for
from blursynth.cuda.backend import CudaBackend
from blursynth.events import simulate
from blursynth.recipe import load_recipe
from blursynth.render import render
from blursynth.sources import open_source

BACKENDS = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not cuda.available(),
                                                                  reason=str(cuda.unavailable_reason())))]
METHODS = [name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_")]


def test_the_interface_names_six_methods_and_both_backends_have_them_with_its_arguments():
    assert sorted(METHODS) == ["apply_camera", "blur_stats", "render_batch", "scene_events", "simulate", "to_host"]
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


@pytest.mark.parametrize("device", BACKENDS)
def test_a_backends_event_stream_equals_one_cpu_simulation(device):
    """simulate over a stream in three chunks, the state carried, against events.simulate over all frames in one
    call: the same events in the same order (on a GPU too: csrc/README.md, the simulator's parity)."""
    rng = np.random.default_rng(3)
    h, w, n = 24, 40, 30
    yy, xx = np.mgrid[:h, :w]
    frames = np.stack([0.5 + 0.4 * np.sin((xx - 1.3 * k) / 3.0 + yy / 7.0) for k in range(n)]).astype(np.float32)
    frames *= rng.uniform(0.9, 1.1, (1, h, w)).astype(np.float32)
    t_s = np.arange(n) / 200.0
    want, _ = simulate(frames, t_s)
    backend, state, parts = backend_for(device), None, []
    for a, b in ((0, 7), (7, 19), (19, n)):
        ev, state = backend.simulate(frames[a:b], t_s[a:b], state=state)
        parts.append(ev)
    got = np.concatenate(parts)
    assert len(want) > 1000
    np.testing.assert_array_equal(got, want)
