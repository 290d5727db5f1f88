"""blursynth: realistic sharp/blurred training pairs for motion deblurring."""
import os

from setuptools import find_packages, setup

if os.environ.get("BLURSYNTH_CUDA") == "1":
    raise SystemExit("BLURSYNTH_CUDA=1: the CUDA extension is not built yet (see the CUDA issue); install without it")

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
)
