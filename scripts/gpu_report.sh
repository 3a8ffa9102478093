#!/usr/bin/env bash
# The GPU checks and timings in one go, for a machine with an NVIDIA GPU:
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
# own time limit and log (OUTDIR/<step>.log; the bench steps also write OUTDIR/<step>.json) and a
# failed step does not stop the next; about 4 minutes in all on an H200. Where JAX sees no GPU
# only step 1 runs (it says why) and the others count as skipped.
#
# Exit status: the number of steps that failed or were skipped (0: all ran and the check
# passed); 64: a usage error; 130: interrupted.
#
# Python: $PYTHON, else the checkout's .venv/bin/python (what `make run` made), else python3; it
# needs ocdec's environment with a CUDA build of JAX (.venv/bin/pip install -e '.[cuda13]' for
# drivers >= 580, '.[cuda]' for CUDA 12 and drivers >= 525). Such an install brings astropy and
# PyGaia, which simulate the field; with a Python that lacks them (a GPU machine's own), simulate
# it elsewhere (PYTHONPATH=scripts python -m bench region --no-hdbscan --rows ROWS --workdir W,
# which also times the default method there) and pass W: scripts/gpu_report.sh OUT ROWS W.
set -u
usage() {
    echo "usage: scripts/gpu_report.sh OUTDIR [ROWS] [WORKDIR]   (-h: what it runs)" >&2
    exit 64
}
case ${1:-} in
    -h | --help)
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    "" | -*) usage ;;
esac
out=$(realpath -m -- "$1")
rows=${2:-434000}
work=$(realpath -m -- "${3:-$out/work}")
cd "$(dirname "$0")/.." || exit 64  # the repository root: scripts/ and config/ are read from it
mkdir -p "$out" "$work" || { echo "gpu_report: cannot make $out or $work" >&2; exit 64; }
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# several jobs may share one card: take its memory as needed, not 75 % of it up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
elif [ -x .venv/bin/python ]; then
    py=$PWD/.venv/bin/python
else
    py=python3
fi
failed=0
skipped=0
pid=

# timeout puts a step in a process group of its own, where a terminal's Ctrl-C does not reach:
# the step runs in the background and an interrupt stops it and the script
interrupted() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    echo "gpu_report: interrupted"
    exit 130
}
trap interrupted INT TERM

step() {  # step NAME SECONDS COMMAND...: run, log, time, and count a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    local t0=$SECONDS rc
    timeout -k 30 "$limit" "$@" >"$out/$name.log" 2>&1 &
    pid=$!
    wait "$pid"
    rc=$?
    pid=
    tail -n 25 "$out/$name.log"
    case $rc in
        124 | 137) echo "== $name: timed out after $limit s" ;;
    esac
    echo "== $name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
    return "$rc"
}

skip() {  # skip NAME WHY: a step that cannot run (counted in the exit status)
    echo "== $1: skipped, $2"
    skipped=$((skipped + 1))
}

finish() {
    echo "gpu_report: $failed step(s) failed, $skipped skipped"
    exit $((failed + skipped))
}

{
    echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
        2>/dev/null || echo "none (nvidia-smi not found or no NVIDIA driver)")"
    echo "cores: $(nproc)"
    echo "python: $py"
    "$py" -c "import sys, jax, flax, optax, numpy, numba, sklearn
print(sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__, 'optax',
      optax.__version__, 'numpy', numpy.__version__, 'numba', numba.__version__, 'sklearn',
      sklearn.__version__)
print(jax.devices())"
} 2>&1 | tee "$out/versions.log"
backend=$("$py" -c "import jax; print(jax.default_backend())" 2>/dev/null | tail -n 1)
if [ -z "$backend" ]; then
    echo "gpu_report: $py cannot import jax: set PYTHON to ocdec's environment's python" >&2
    exit 64
fi

step check_gpu 240 "$py" scripts/check_gpu.py
if [ "$backend" != gpu ]; then
    # JAX would run the "GPU" steps on the CPU: their figures would be mislabelled
    for name in region_gpu region_gpu_warm flops_gpu region_cpu; do
        skip "$name" "JAX's default backend is '$backend', not gpu"
    done
    finish
fi
if step region_gpu 300 "$py" -m bench region --no-hdbscan --full --rows "$rows" \
    --workdir "$work" --jax-cache "$work/jax-cache-gpu" --json "$out/region_gpu.json"; then
    step region_gpu_warm 120 "$py" -m bench region --no-hdbscan --rows "$rows" \
        --workdir "$work" --jax-cache "$work/jax-cache-gpu" --json "$out/region_gpu_warm.json"
else
    skip region_gpu_warm "the cold run before it failed, so no cache is warm"
fi
step flops_gpu 300 "$py" -m bench flops --rows "$rows" --workdir "$work" \
    --matmul-sizes 1024,2048,4096 --repeats 3 --json "$out/flops_gpu.json"
step region_cpu 300 env JAX_PLATFORMS=cpu "$py" -m bench region --no-hdbscan --full \
    --rows "$rows" --workdir "$work" --jax-cache "$work/jax-cache-cpu" \
    --json "$out/region_cpu.json"
finish
