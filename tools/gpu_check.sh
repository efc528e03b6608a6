#!/usr/bin/env bash
# GPU readiness check, one command on the lent GPU machine (<= 8 minutes, one JSON summary on stdout):
#
#   bash tools/gpu_check.sh            (device run with carry=[".whl"]; logs under $OUT or /tmp)
#
# 1. installs the carried cp312 wheels from .whl/ (PyAV, kornia, kornia_rs, pytorch-msssim: the GPU
#    image lacks them; fetch them here first with `bash tools/gpu_wheels.sh`, which also cuts the
#    2 s real night clip .whl/real_night_1080p.mp4 used for real frames),
# 2. runs the engine's tests (the CUDA ones run only where CUDA exists) and the codec-choice tests,
# 3. runs tools/gpu_bench.py: 1080p FP16/FP32 model-only FPS, FP16 vs FP32 on real frames,
#    1080p file to file with CPU codecs and with NVDEC/NVENC where they are usable.
# Without CUDA (or without the wheels) it still runs, says so in the summary, and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS="${OUT:-/tmp/gpu_check}"
mkdir -p "$LOGS"
PY="${PYTHON:-python3}"
t0=$(date +%s)
notes=()

# -- 1. wheels ------------------------------------------------------------------------------------
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if ls .whl/*.whl >/dev/null 2>&1; then
  if [ "$pyver" = "3.12" ]; then
    if timeout 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >"$LOGS/pip.log" 2>&1; then
      export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
      notes+=("wheels installed from .whl")
    else
      notes+=("wheel install failed (see pip.log); using what is installed")
      export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    fi
  else
    notes+=("python $pyver is not 3.12: carried cp312 wheels not installed; using what is installed")
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
else
  notes+=("no .whl/ carried: using what is installed")
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
nvsmi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
[ -z "$nvsmi" ] && nvsmi="nvidia-smi not available"
missing=$("$PY" - <<'PY'
import importlib
print(",".join(m for m in ("av", "kornia", "pytorch_msssim", "cv2", "torch", "yaml", "tqdm") if importlib.util.find_spec(m) is None))
PY
)

# -- 2. tests -------------------------------------------------------------------------------------
tests_rc=-1
if [ -z "$missing" ]; then
  timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_codecs.py \
    --junitxml="$LOGS/tests.xml" >"$LOGS/tests.log" 2>&1
  tests_rc=$?
else
  notes+=("tests and bench skipped: missing modules $missing")
fi
tests_summary=$(tail -1 "$LOGS/tests.log" 2>/dev/null | tr -d '"')

# -- 3. GPU bench ---------------------------------------------------------------------------------
bench_json='null'
if [ -z "$missing" ]; then
  PYTHONUNBUFFERED=1 timeout 300 "$PY" tools/gpu_bench.py >"$LOGS/gpu_bench.json" 2>"$LOGS/gpu_bench.log"
  bench_rc=$?
  if [ -s "$LOGS/gpu_bench.json" ]; then bench_json=$(tail -1 "$LOGS/gpu_bench.json"); else
    notes+=("gpu_bench.py gave no result (rc $bench_rc, see gpu_bench.log)"); fi
fi

# -- summary --------------------------------------------------------------------------------------
NOTES=$(printf '%s\n' "${notes[@]}") NVSMI="$nvsmi" TESTS_RC="$tests_rc" TESTS_SUMMARY="$tests_summary" \
BENCH="$bench_json" SECONDS_USED=$(( $(date +%s) - t0 )) "$PY" - <<'PY'
import json, os
bench = json.loads(os.environ["BENCH"])
print(json.dumps({
    "gpu_check": "lowlight-rt",
    "nvidia_smi": os.environ["NVSMI"],
    "cuda": bool(bench and bench.get("cuda")),
    "tests": {"exit_code": int(os.environ["TESTS_RC"]), "summary": os.environ["TESTS_SUMMARY"]},
    "bench": bench,
    "notes": [n for n in os.environ["NOTES"].splitlines() if n],
    "seconds": int(os.environ["SECONDS_USED"]),
}))
PY
