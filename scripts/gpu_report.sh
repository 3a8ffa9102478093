#!/usr/bin/env bash
# The GPU checks and timings in one go, for a machine with an NVIDIA GPU (issue 13, item 5):
#
#   scripts/gpu_report.sh OUTDIR [ROWS] [WORKDIR]
#
# 1. check_gpu.py: DEC trained on the CPU and on the GPU agree (labels and member sets).
# 2. bench region --full with the GPU visible: the default method and thesis mode (K-Means sweep,
#    then DEC on every star, the thesis's architecture and epochs), each job a fresh process.
# 3. The default method again, its compiled programs now read from the compilation cache and the
#    stored executables (ocdec.stored_programs) that step 2 wrote.
# 4. bench flops: thesis mode's DEC, its FLOPs (XLA's count) over its seconds, against the GPU's
#    float32 matrix-multiply rate.
# 5. Step 2 with JAX_PLATFORMS=cpu: the same jobs on this machine's own CPUs.
#
# ROWS (default 434000, the thesis's largest region) sets the simulated field; WORKDIR (default
# OUTDIR/work) caches it, so a field simulated elsewhere can be brought along. Each step has its
# own time limit and log (OUTDIR/<step>.log) and a failed step does not stop the next; the exit
# status is the number of steps that failed. Needs ocdec's environment with a CUDA build of JAX
# (pip install -e '.[cuda13]' or '.[cuda]'); run from the repository root.
set -u
out=${1:?usage: scripts/gpu_report.sh OUTDIR [ROWS] [WORKDIR]}
rows=${2:-434000}
work=${3:-$out/work}
mkdir -p "$out" "$work"
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# several jobs may share one card: take its memory as needed, not 75 % of it up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false
py=${PYTHON:-python3}
failed=0

step() {  # step NAME SECONDS COMMAND...: run, log, time, and count a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$out/$name.log"
    echo "== $name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    nproc
    "$py" -c "import sys, jax, flax, optax, numpy, numba, sklearn
print(sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__, 'optax',
      optax.__version__, 'numpy', numpy.__version__, 'numba', numba.__version__, 'sklearn',
      sklearn.__version__)
print(jax.devices())"
} 2>&1 | tee "$out/versions.log"

step check_gpu 240 "$py" scripts/check_gpu.py
step region_gpu 300 "$py" -m bench region --no-hdbscan --full --rows "$rows" --workdir "$work" \
    --jax-cache "$work/jax-cache-gpu" --json "$out/region_gpu.json"
step region_gpu_warm 120 "$py" -m bench region --no-hdbscan --rows "$rows" --workdir "$work" \
    --jax-cache "$work/jax-cache-gpu" --json "$out/region_gpu_warm.json"
step flops_gpu 300 "$py" -m bench flops --rows "$rows" --workdir "$work" \
    --matmul-sizes 1024,2048,4096 --repeats 3 --json "$out/flops_gpu.json"
step region_cpu 300 env JAX_PLATFORMS=cpu "$py" -m bench region --no-hdbscan --full \
    --rows "$rows" --workdir "$work" --jax-cache "$work/jax-cache-cpu" \
    --json "$out/region_cpu.json"
echo "gpu_report: $failed step(s) failed"
exit "$failed"
