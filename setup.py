"""blursynth: realistic sharp/blurred training pairs for motion deblurring."""
import ast
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("blursynth", "csrc")  # the CUDA sources, shipped in the package for the just-in-time build


def cuda_sources() -> tuple:
    """blursynth.cuda.SOURCES, read from cuda/build.py's source (importing it needs numpy, numba, ...): the one list
    of the files the extension compiles, at install here and just in time in blursynth.cuda."""
    with open(os.path.join(HERE, "blursynth", "cuda", "build.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SOURCES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise SystemExit("blursynth/cuda/build.py defines no SOURCES")


def cuda_build() -> dict:
    """With BLURSYNTH_CUDA=1, the blursynth/csrc/ kernels as the torch extension blursynth.cuda._ext (needs torch and
    nvcc at build time: pip install --no-build-isolation); otherwise nothing, and no build tool is imported."""
    if os.environ.get("BLURSYNTH_CUDA") != "1":
        return {}
    try:
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError as exc:
        raise SystemExit("BLURSYNTH_CUDA=1 needs torch importable while building: install torch first, then "
                         "BLURSYNTH_CUDA=1 pip install --no-build-isolation -e .") from exc
    if CUDA_HOME is None:
        raise SystemExit("BLURSYNTH_CUDA=1: no CUDA toolkit found (nvcc); set CUDA_HOME, or install without it")
    ext = CUDAExtension(
        "blursynth.cuda._ext",
        sources=[os.path.join(CSRC, f) for f in cuda_sources()],
        include_dirs=[os.path.join(HERE, CSRC)],
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-std=c++17"]},
    )
    return {"ext_modules": [ext], "cmdclass": {"build_ext": BuildExtension}}


setup(
    name="blursynth",
    version="0.1.0",
    description="Segmentation-based non-uniform motion blur, video blur and event simulation for deblurring data",
    packages=find_packages(include=["blursynth", "blursynth.*"]),
    # named recipes and the CUDA sources (read by blursynth.recipe and blursynth.cuda's just-in-time build):
    # inside the package, so a wheel or sdist install behaves as the editable one (MANIFEST.in: the sdist)
    package_data={"blursynth": ["pipelines/*.yaml", "csrc/*.cu", "csrc/*.cpp", "csrc/*.h", "csrc/*.md"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "numba>=0.59",
        "opencv-contrib-python-headless>=4.8",
        "scikit-image>=0.22",
        "lmdb>=1.4",
        "xxhash>=3.0",  # per-record digests of the shards, checked on every read
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
    entry_points={"console_scripts": ["blursynth=blursynth.commands:main"]},
    **cuda_build(),
)
