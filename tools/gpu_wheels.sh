#!/usr/bin/env bash
# Download the cp312 manylinux x86-64 wheels that the lent GPU machine lacks (it has torch, numpy,
# OpenCV, PyYAML, tqdm, Pillow and pytest, but no PyAV, kornia or pytorch-msssim) into .whl/ at the
# repository root (git-ignored). tools/gpu_check.sh installs them there with pip --no-index.
# Run once here, where pip can reach the registry:  bash tools/gpu_wheels.sh
# Then pass carry=[".whl"] to the device run that calls  bash tools/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
# pinned to the versions this project is developed and tested with; none needs another wheel the
# GPU image lacks (kornia: kornia_rs, packaging, torch; pytorch-msssim: torch)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${plat[@]}" -d .whl av==18.1.0 kornia==0.9.0 kornia_rs==0.2.0 pytorch-msssim==1.0.0
ls -la .whl
du -sh .whl
# real frames for the FP16/FP32 comparison and the 1080p file runs (the GPU machine has no ../shared)
clip=../shared/data/video/ken2190_night_yard_1080p.mp4
if [ -f "$clip" ]; then
  PYTHONPATH=. python3 -c "from pathlib import Path; from lowlight_rt.bench import scale_clip; \
scale_clip(Path('$clip'), Path('.whl/real_night_1080p.mp4'), width=1920, height=1080, seconds=2.0)"
  ls -la .whl/real_night_1080p.mp4
else
  echo "no $clip: gpu_check.sh will use the bundled demo clip and a generated 1080p clip"
fi
du -sh .whl
