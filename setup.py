"""blursynth: realistic sharp/blurred training pairs for motion deblurring."""
import os

from setuptools import find_packages, setup


def cuda_build() -> dict:
    """With BLURSYNTH_CUDA=1, the csrc/ kernels as the torch extension blursynth._cuda (needs torch and nvcc at
    build time: pip install --no-build-isolation); otherwise nothing, and no build tool is imported."""
    if os.environ.get("BLURSYNTH_CUDA") != "1":
        return {}
    try:
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError as exc:
        raise SystemExit("BLURSYNTH_CUDA=1 needs torch importable while building: install torch first, then "
                         "BLURSYNTH_CUDA=1 pip install --no-build-isolation -e .") from exc
    if CUDA_HOME is None:
        raise SystemExit("BLURSYNTH_CUDA=1: no CUDA toolkit found (nvcc); set CUDA_HOME, or install without it")
    here = os.path.dirname(os.path.abspath(__file__))
    ext = CUDAExtension(
        "blursynth._cuda",
        sources=[os.path.join("csrc", f) for f in ("bindings.cpp", "render.cu", "events.cu")],
        include_dirs=[os.path.join(here, "csrc")],
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-std=c++17"]},
    )
    return {"ext_modules": [ext], "cmdclass": {"build_ext": BuildExtension}}


setup(
    name="blursynth",
    version="0.1.0",
    description="Segmentation-based non-uniform motion blur, video blur and event simulation for deblurring data",
    packages=find_packages(include=["blursynth", "blursynth.*"]),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "numba>=0.59",
        "opencv-contrib-python-headless>=4.8",
        "scikit-image>=0.22",
        "lmdb>=1.4",
        "zstandard>=0.22",
        "qoi>=0.5",
        "click>=8.1",
        "tqdm>=4.66",
        "pyyaml>=6.0",
        "pycocotools>=2.0.6",
        "ray>=2.9",
        "h5py>=3.8",  # event streams in DSEC-style h5
        # Ranges that the local builds satisfy (2.13.0 CPU, 2.14.1 + torchvision 0.29.1); install them first,
        # a bare requirement with nothing installed would download a multi-GB CUDA build.
        "torch>=2.4,<2.15",
    ],
    extras_require={
        "sam": ["segment-anything>=1.0"],
        "dev": ["pytest>=7", "pytest-timeout>=2.2", "segment-anything>=1.0", "scikit-video>=1.1"],
    },
    entry_points={"console_scripts": ["blursynth=blursynth.cli:main"]},
    **cuda_build(),
)
