#!/usr/bin/env bash
# GPU verification, <= 5 minutes on one CUDA card: training step of each stage fp32 vs bf16 (ratio), generation
# at batch 32, and the CUDA tests (pytest -m gpu, which include the official-fixture equivalence on CUDA).
# Results go to $OUT (default benchmarks/gpu_results/); paste them into benchmarks/README.md with the card's name.
#
#   bash benchmarks/gpu_check.sh
#
# The fixture tests read ../shared/reference/official_fixture. Where ../shared is absent (a device machine gets
# only the repository), a copy in .gpu_shared/ (git-ignored: cp -r ../shared/reference .gpu_shared/) is linked
# there; without either, those tests skip.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/gpu_results}"
mkdir -p "$OUT"
export PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-$(command -v python3 || command -v python)}"
if [ ! -d ../shared/reference ] && [ -d .gpu_shared/reference ]; then
    ln -sfn "$PWD/.gpu_shared" ../shared && echo "linked ../shared -> .gpu_shared"
fi
step() {   # step <name> <timeout s> <command...>: run, keep the output, never stop the whole check
    local name=$1 limit=$2; shift 2
    echo "=== $name: $*" >"$OUT/$name.txt"
    local t0=$SECONDS
    timeout "$limit" "$@" >>"$OUT/$name.txt" 2>&1
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" >>"$OUT/$name.txt"
    tail -n 25 "$OUT/$name.txt"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} | tee "$OUT/card.txt"
step bench_train 120 "$PY" -m benchmarks.bench_train --device cuda --amp off bf16 --iters 5 --warmup 2
step bench_generate 60 "$PY" -m benchmarks.bench_transformers --device cuda --batches 32 --skip_train --repeats 3
step pytest_gpu 120 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests
