"""The ``flops`` mode: the FLOP rate thesis mode's DEC achieves against the machine's.

1. The machine: float32 matrix multiplies (numpy's sgemm through its BLAS, JAX's jitted
   ``jnp.dot`` on the default device) of ``--matmul-sizes`` squares, best and median of
   ``--repeats`` each, the best size's standing for the machine; the same JAX dot at DEC's own
   layer shape (batch x widest layer) chained in a ``lax.scan``; and a nominal peak from
   /proc/cpuinfo (cores x clock x FLOP per cycle), labelled nominal because the guest sees
   neither the boost clock nor whether its vCPUs share a core.
2. DEC's work: the FLOPs XLA counts for the compiled programs thesis mode runs (``cost_analysis``
   of the epoch program ``_scan_batches`` of each phase and of the predict program), lowered with
   the very arguments the run passed. XLA counts a loop's body once, whatever its trip count (a
   ``lax.scan`` of 78 steps counts as one), so each program is also compiled with a single trip
   and the count is multiplied by the trips when the two agree. An analytic count of the dense
   layers (2 in x out FLOPs per sample per layer forward; backward twice that, less the input
   gradient of the first layer) checks it.
3. The achieved rate: thesis mode (``ocdec.methods.thesis.run_thesis``, every star, thesis
   settings) on a simulated field, its epoch and predict calls timed (each waits for its result,
   as the caller's ``float(loss)`` does anyway); every epoch program is timed again warm with the
   run's first arguments. FLOPs over seconds, against the measured and nominal rates; and why:
   one epoch of pretraining at other batch sizes (``--probe-batches``) separates the fixed cost
   of a step from its cost per sample, and the step's time is split into that fixed cost, its
   dense layers' FLOPs at the rate of a DEC-shaped dot, and the rest.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import cpu_s

log = logging.getLogger("benchmark.flops")

FLOPS_ROWS = 100_000
# Several sizes: on a machine shared with other work a short multiply is less often interrupted,
# and the best of them is the rate the machine can reach.
MATMUL_SIZES = (512, 1024, 2048)
MATMUL_REPEATS = 5
# Besides the thesis's own batch size: small ones show a step's fixed cost, large ones the rate
# the per-sample work reaches.
PROBE_BATCHES = (16, 64, 1024, 4096)
SMALL_DOT_STEPS = 2000
# HLO instructions that launch no work of their own (the rest are the step's kernels).
_NO_KERNEL = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all"}


# ----------------------------------------------------------------------------- the machine


def cpu_info() -> dict[str, Any]:
    """The first processor's block of /proc/cpuinfo: vendor, family, model, name, MHz, flags."""
    info: dict[str, Any] = {"vendor": None, "family": None, "model": None, "name": None,
                            "mhz": None, "flags": set()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key == "vendor_id":
            info["vendor"] = value
        elif key == "cpu family":
            info["family"] = int(value)
        elif key == "model":
            info["model"] = int(value)
        elif key == "model name":
            info["name"] = value
        elif key == "cpu MHz":
            info["mhz"] = float(value)
        elif key == "flags":
            info["flags"] = set(value.split())
    return info


def nominal_peak(threads: int, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nominal float32 peak: ``threads`` cores x the clock /proc/cpuinfo reports x FLOP per cycle
    (SIMD lanes x 2 for FMA x 2 FMA pipes). The flags give the instruction set, not the
    datapath, so the known AMD datapaths are applied; every figure is an assumption stated in
    ``basis``, and ``gflops`` is None where the clock or the flags are missing."""
    info = cpu_info() if info is None else info
    flags, mhz = info["flags"], info["mhz"]
    if not flags or not mhz:
        return {"gflops": None, "basis": "no clock or flags in /proc/cpuinfo"}
    isa = "AVX-512" if "avx512f" in flags else "AVX" if "avx" in flags else "SSE"
    lanes = {"AVX-512": 16, "AVX": 8, "SSE": 4}[isa]
    notes = [f"{isa} ({lanes} float32 lanes)"]
    family, model = info["family"], info["model"]
    if info["vendor"] == "AuthenticAMD" and family in (0x17, 0x19):
        # Zen 1 has 128-bit FP pipes; Zen 2 to 4 256-bit ones (Zen 4 runs AVX-512 in two halves).
        width = 4 if family == 0x17 and (model or 0) < 0x30 else 8
        if width < lanes:
            lanes = width
            notes.append(f"AMD family {family:#x}: {32 * width}-bit FP pipes, {width} lanes")
    fma = 2 if "fma" in flags else 1
    pipes = 2
    per_cycle = lanes * fma * pipes
    notes.append(f"{'FMA (2 FLOP)' if fma == 2 else 'no FMA'} x {pipes} pipes (assumed)")
    ghz = mhz / 1000.0
    return {"gflops": threads * ghz * per_cycle, "cores": threads, "ghz": ghz,
            "flop_per_cycle": per_cycle,
            "basis": "; ".join(notes) + f"; {ghz:.3f} GHz as /proc/cpuinfo reports it (no boost); "
                     "a VM's vCPUs may share physical cores, which would halve it"}


def l2_cache() -> str | None:
    """The L2 cache size of CPU 0 as sysfs writes it (e.g. '1024K'), None where unreadable."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                return (index / "size").read_text().strip()
        except OSError:
            return None
    return None


def _rates(flop: float, seconds: Sequence[float]) -> dict[str, Any]:
    return {"flop": flop, "seconds": list(seconds),
            "best_gflops": flop / min(seconds) / 1e9,
            "median_gflops": flop / statistics.median(seconds) / 1e9}


def numpy_matmul(size: int, repeats: int, threads: int) -> dict[str, Any]:
    """numpy float32 ``a @ b`` (sgemm through numpy's BLAS) on ``threads`` threads."""
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b  # warm-up: thread pool start, page faults of the output
        seconds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            seconds.append(time.perf_counter() - t0)
    blas = [f"{p.get('internal_api')} {p.get('version')}" for p in threadpool_info()
            if p.get("user_api") == "blas"]
    return {"size": size, "threads": threads, "blas": blas[0] if blas else None,
            **_rates(2.0 * size**3, seconds)}


def jax_matmul(size: int, repeats: int) -> dict[str, Any]:
    """JAX's jitted float32 ``jnp.dot`` on the default device (XLA sizes its own thread pool), at
    the precision DEC's own products ask for (full float32: on an NVIDIA GPU JAX's default would
    be TF32, a faster rate DEC does not use)."""
    import functools

    import jax
    import jax.numpy as jnp

    from ocdec.methods.dec import PRECISION

    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.random((size, size), dtype=np.float32)) for _ in range(2))
    dot = jax.jit(functools.partial(jnp.dot, precision=PRECISION))
    dot(a, b).block_until_ready()  # compile
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dot(a, b).block_until_ready()
        seconds.append(time.perf_counter() - t0)
    return {"size": size, "device": str(jax.devices()[0]), "backend": jax.default_backend(),
            "precision": PRECISION.name.lower(), **_rates(2.0 * size**3, seconds)}


def jax_small_dot(batch: int, width: int, steps: int = SMALL_DOT_STEPS,
                  repeats: int = 3) -> dict[str, Any]:
    """The rate of one DEC-sized dot, (batch x width) @ (width x width), chained ``steps`` times
    in a ``lax.scan`` so that no Python runs between them: what XLA makes of DEC's layers when
    nothing else is in the way."""
    import jax
    import jax.numpy as jnp

    from ocdec.methods.dec import PRECISION

    def chain(c: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.scan(lambda c, _: (jnp.matmul(c, w, precision=PRECISION), None), c, None,
                            length=steps)[0]

    run = jax.jit(chain)
    c, w = jnp.ones((batch, width), jnp.float32), jnp.eye(width, dtype=jnp.float32)
    run(c, w).block_until_ready()
    seconds = []
    c0 = cpu_s()
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(c, w).block_until_ready()
        seconds.append(time.perf_counter() - t0)
    out = _rates(2.0 * batch * width * width * steps, seconds)
    return {"batch": batch, "width": width, "steps": steps, "precision": PRECISION.name.lower(),
            "us_per_dot": min(seconds) / steps * 1e6,
            "cpu_per_wall": (cpu_s() - c0) / sum(seconds), **out}


# ----------------------------------------------------------------------------- XLA's count


def xla_cost(compiled: Any) -> dict[str, float]:
    """flops, bytes accessed and transcendentals of a compiled program; ``cost_analysis`` gives a
    dict or (older jax) a list with one dict per program."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    cost = cost or {}
    return {"flops": float(cost.get("flops", math.nan)),
            "bytes": float(cost.get("bytes accessed", math.nan)),
            "transcendentals": float(cost.get("transcendentals", math.nan))}


def hlo_kernels(text: str) -> dict[str, int]:
    """Operations of a compiled program's step by opcode: the instructions of its while body if
    it has one, else of its entry computation (fusions count as one), bookkeeping left out."""
    computations: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        head = re.match(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
        if head and not line[:1].isspace():
            current = "ENTRY" if head.group(1) else head.group(2)
            computations[current] = []
        elif line.startswith("}"):
            current = None
        elif current is not None:
            computations[current].append(line)
    body = "ENTRY"
    for line in computations.get("ENTRY", []):
        loop = re.search(r"\swhile\(.*body=%?([\w.\-]+)", line)
        if loop:
            body = loop.group(1)
    ops: Counter[str] = Counter()
    for line in computations.get(body, []):
        op = re.match(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.+?\s([a-z][\w\-]*)\(", line)
        if op and op.group(1) not in _NO_KERNEL:
            ops[op.group(1)] += 1
    return dict(ops)


def loop_cost(lower: Callable[[int], Any], trips: int) -> dict[str, Any]:
    """XLA's FLOPs of a program whose work is a loop of ``trips`` equal trips. ``lower(t)`` lowers
    it with ``t`` trips. Compiled with one trip and with ``trips``: equal counts mean XLA counted
    the body once (total = trips x one trip); counts in proportion to the trips, that it counted
    every trip."""
    one = lower(1).compile()
    per_trip = xla_cost(one)
    kernels = hlo_kernels(one.as_text())
    full = xla_cost(lower(trips).compile()) if trips > 1 else per_trip
    ratio = full["flops"] / per_trip["flops"] if per_trip["flops"] > 0 else math.nan
    if trips == 1:
        counted, total = "one trip", per_trip["flops"]
    elif abs(ratio - 1.0) < 0.05:
        counted, total = "body once", per_trip["flops"] * trips
    elif abs(ratio / trips - 1.0) < 0.05:
        counted, total = "every trip", full["flops"]
    else:  # neither: say so, and take the larger reading
        counted, total = f"unclear (ratio {ratio:.2f})", max(full["flops"],
                                                              per_trip["flops"] * trips)
    return {"trips": trips, "per_trip": per_trip, "program_flops": full["flops"],
            "xla_counts": counted, "flops": total, "kernels": kernels,
            "n_kernels": sum(kernels.values())}


def dense_flops(n_features: int, hidden: Sequence[int], rows: int, phase: str,
                k: int = 0) -> dict[str, float]:
    """Analytic FLOPs of DEC's dense layers for ``rows`` samples: forward 2 in x out per sample per
    layer; training adds the weight gradient (the same again) and the input gradient (the same,
    but none for the first layer, whose input is data). ``pretrain``: encoder + decoder,
    ``cluster``: encoder (plus the Student-t kernel's distances, 3 k x latent forward),
    ``predict``: encoder forward and kernel."""
    dims = (n_features, *hidden)
    encoder = list(zip(dims[:-1], dims[1:], strict=True))
    layers = encoder + [(b, a) for a, b in reversed(encoder)] if phase == "pretrain" else encoder
    forward = sum(2.0 * a * b for a, b in layers) * rows
    kernel = 3.0 * k * hidden[-1] * rows if phase != "pretrain" else 0.0
    if phase == "predict":
        return {"forward": forward + kernel, "total": forward + kernel}
    first = 2.0 * layers[0][0] * layers[0][1] * rows
    return {"forward": forward + kernel, "total": 3.0 * forward - first + 3.0 * kernel}


# ----------------------------------------------------------------------------- the run


@dataclass
class _Call:
    seconds: list[float] = field(default_factory=list)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DecRecorder:
    """While inside :meth:`recording`, every epoch (``dec._train_epoch``) and predict
    (``dec._predict``) call of the library is timed to its result, and its first call's arguments
    kept per phase (epochs) or input shape (predict) to lower the same program again."""

    epochs: dict[str, _Call] = field(default_factory=dict)
    predicts: dict[tuple[int, ...], _Call] = field(default_factory=dict)

    @contextmanager
    def recording(self) -> Iterator[DecRecorder]:
        import jax

        from ocdec.methods import dec

        train_epoch, predict = dec._train_epoch, dec._predict

        def timed_epoch(state: Any, x: Any, target: Any, key: Any, epoch: int,
                        **kw: Any) -> Any:
            t0 = time.perf_counter()
            out = jax.block_until_ready(train_epoch(state, x, target, key, epoch, **kw))
            call = self.epochs.setdefault(kw["phase"], _Call(args=(state, x, target, key, epoch),
                                                             kwargs=kw))
            call.seconds.append(time.perf_counter() - t0)
            return out

        def timed_predict(state: Any, x: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            out = jax.block_until_ready(predict(state, x, **kw))
            call = self.predicts.setdefault(tuple(x.shape), _Call(args=(state, x), kwargs=kw))
            call.seconds.append(time.perf_counter() - t0)
            return out

        dec._train_epoch, dec._predict = timed_epoch, timed_predict
        try:
            yield self
        finally:
            dec._train_epoch, dec._predict = train_epoch, predict


def _lower_epoch(call: _Call, trips: int, batch_size: int | None = None) -> Any:
    """The phase's epoch program (``_scan_batches``) lowered with the run's arguments and
    ``trips`` of its mini-batches (at ``batch_size``, by default the run's)."""
    from ocdec.methods import dec

    state, x, target, key, epoch = call.args
    kw = call.kwargs
    batches = dec._epoch_batches(key, epoch, n=x.shape[0],
                                 batch_size=batch_size or kw["batch_size"])
    return dec._scan_batches.lower(state, x, target, kw["mask"], batches[:trips],
                                   graphdef=kw["graphdef"], phase=kw["phase"], alpha=kw["alpha"],
                                   reconstruction_weight=kw["reconstruction_weight"])


def _lower_predict(call: _Call, chunks: int) -> Any:
    from ocdec.methods import dec

    state, x = call.args
    chunk = call.kwargs["chunk"]
    return dec._predict.lower(state, x[: chunks * chunk], **call.kwargs)


def _warm_epoch(call: _Call, repeats: int, batch_size: int | None = None
                ) -> tuple[list[float], float]:
    """Seconds of the phase's epoch run again with the run's first arguments (compiled already
    unless ``batch_size`` differs: one untimed call compiles it), and the process's CPU seconds
    per wall second over them: how many cores the epoch keeps busy."""
    import jax

    from ocdec.methods import dec

    state, x, target, key, epoch = call.args
    kw = {**call.kwargs, **({"batch_size": batch_size} if batch_size else {})}
    if batch_size:
        jax.block_until_ready(dec._train_epoch(state, x, target, key, epoch, **kw))
    seconds = []
    c0 = cpu_s()
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(dec._train_epoch(state, x, target, key, epoch, **kw))
        seconds.append(time.perf_counter() - t0)
    return seconds, (cpu_s() - c0) / sum(seconds)


def _phase_block(call: _Call, n_features: int, hidden: Sequence[int], k: int,
                 repeats: int) -> dict[str, Any]:
    import jax

    phase = call.kwargs["phase"]
    n, batch = int(call.args[1].shape[0]), int(call.kwargs["batch_size"])
    steps = n // batch
    cost = loop_cost(lambda t: _lower_epoch(call, t), steps)
    step = cost["per_trip"]
    state_bytes = sum(int(leaf.nbytes) for leaf in jax.tree_util.tree_leaves(call.args[0]))
    dense = dense_flops(n_features, hidden, batch, "pretrain" if phase == "pretrain" else "cluster",
                        k)
    warm, cores = _warm_epoch(call, repeats)
    epochs = len(call.seconds)
    after_first = call.seconds[1:]
    return {
        "phase": phase, "rows": n, "batch": batch, "steps_per_epoch": steps, "epochs": epochs,
        "step_flops": cost["flops"] / steps, "epoch_flops": cost["flops"],
        "flops": cost["flops"] * epochs, "xla_counts": cost["xla_counts"],
        "epoch_program_flops": cost["program_flops"], "step_bytes": step["bytes"],
        "state_bytes": state_bytes,
        "activation_bytes": 4 * batch * (n_features + 2 * sum(hidden)),
        "step_kernels": cost["n_kernels"], "kernels": cost["kernels"],
        "dense_step_flops": dense["total"], "dense_forward_step_flops": dense["forward"],
        "xla_over_dense": (cost["flops"] / steps) / dense["total"],
        "epoch_s": list(call.seconds), "first_epoch_s": call.seconds[0],
        "later_epochs_s": sum(after_first) if after_first else None,
        "warm_epoch_s": statistics.median(warm), "warm_epoch_runs_s": warm,
        "warm_cpu_per_wall": cores,
    }


def _predict_block(call: _Call, n_features: int, hidden: Sequence[int],
                   k: int) -> dict[str, Any]:
    rows, chunk = int(call.args[1].shape[0]), int(call.kwargs["chunk"])
    cost = loop_cost(lambda t: _lower_predict(call, t), rows // chunk)
    dense = dense_flops(n_features, hidden, rows, "predict", k)
    return {"rows": rows, "chunk": chunk, "calls": len(call.seconds),
            "call_flops": cost["flops"], "flops": cost["flops"] * len(call.seconds),
            "xla_counts": cost["xla_counts"], "dense_call_flops": dense["total"],
            "xla_over_dense": cost["flops"] / dense["total"], "seconds": sum(call.seconds),
            "first_call_s": call.seconds[0]}


def batch_probe(call: _Call, batches: Sequence[int], repeats: int) -> dict[str, Any]:
    """One pretraining epoch at other batch sizes (same stars, same starting weights): seconds
    per step against samples per step. The batches up to the thesis's are fitted as fixed +
    per-sample cost (least squares); past it the activations outgrow the L2 cache and the time
    per sample is no longer constant, so larger batches only show the best rate reached."""
    n = int(call.args[1].shape[0])
    thesis_batch = int(call.kwargs["batch_size"])
    rows = []
    for batch in sorted({thesis_batch, *batches}):
        if batch > n // 4 and batch != thesis_batch:  # too few steps to time
            continue
        steps = n // batch
        step = loop_cost(lambda t, b=batch: _lower_epoch(call, t, b), 1)["per_trip"]["flops"]
        seconds = statistics.median(_warm_epoch(call, repeats, None if batch == thesis_batch
                                                else batch)[0])
        rows.append({"batch": batch, "steps": steps, "step_flops": step,
                     "step_us": seconds / steps * 1e6, "gflops": step * steps / seconds / 1e9})
    fit = None
    small = [r for r in rows if r["batch"] <= thesis_batch]
    if len(small) >= 2:
        slope, intercept = np.polyfit([r["batch"] for r in small],
                                      [r["step_us"] for r in small], 1)
        at_thesis = next(r["step_us"] for r in rows if r["batch"] == thesis_batch)
        fit = {"batches": [r["batch"] for r in small], "fixed_us": float(intercept),
               "us_per_sample": float(slope),
               "fixed_share_at_thesis_batch": float(intercept) / at_thesis}
    best = max(rows, key=lambda r: r["gflops"]) if rows else None
    return {"phase": "pretrain", "thesis_batch": thesis_batch, "rows": rows, "fit": fit,
            "best": best}


def thesis_stars(args: Any) -> tuple[Any, dict[str, Any], int]:
    """The simulated field's stars after the quality filter (as the quality rule keeps them),
    the region and its row count."""
    from bench.jobs import load_region, simulated_field
    from ocdec.data.columns import read_stars
    from ocdec.data.quality import apply_quality, quality_settings

    region = load_region(args.regions, args.region)
    path = simulated_field(args.workdir, region, args.rows, args.n_members, args.seed,
                           args.release)
    stars, _ = apply_quality(read_stars(path), quality_settings({"min_stars": 0}),
                             region=str(region["id"]))
    return stars.reset_index(drop=True), region, args.rows


def thesis_settings(args: Any) -> Any:
    """Thesis mode's settings with the benchmark's overrides (epochs, k values, DEC sample), as
    the other modes' jobs get them (:func:`bench.jobs.characterize_config`)."""
    from bench.jobs import characterize_config
    from ocdec.characterize import method_settings

    spec = {"dec_epochs": args.dec_epochs, "k_values": args.k_values, "n_seeds": 1,
            "thesis_dec_max_stars": args.thesis_dec_max_stars}
    return method_settings("thesis", characterize_config(spec, "thesis"))


def _fraction(rate: float | None, of: float | None) -> float | None:
    return rate / of if rate and of else None


def run_flops(args: Any) -> dict[str, Any]:
    from ocdec.methods.thesis import run_thesis
    from ocdec.threads import available_threads

    threads = available_threads()
    log.info("flops: machine rate, %d threads", threads)
    sizes = {"numpy": [numpy_matmul(n, args.repeats, threads) for n in args.matmul_sizes],
             "jax": [jax_matmul(n, args.repeats) for n in args.matmul_sizes]}
    # one thread too: XLA runs DEC's small operations on one core
    one = numpy_matmul(max(args.matmul_sizes), args.repeats, 1)
    machine_rate = {"threads": threads, "nominal": nominal_peak(threads), "numpy_1thread": one,
                    **{name: max(runs, key=lambda r: r["best_gflops"])
                       for name, runs in sizes.items()},
                    **{f"{name}_sizes": runs for name, runs in sizes.items()}}
    stars, region, rows = thesis_stars(args)
    settings = thesis_settings(args)
    prior = {"pmra": region.get("pmra_prior"), "pmdec": region.get("pmdec_prior"),
             "parallax": region.get("parallax_prior")}
    log.info("flops: thesis mode on %d stars (%d rows simulated)", len(stars), rows)
    recorder = DecRecorder()
    t0 = time.perf_counter()
    with recorder.recording():
        thesis = run_thesis(stars, settings, seed=args.seed, prior=prior)
    wall = time.perf_counter() - t0
    dec_s = thesis.stages["dec"]
    hidden = tuple(int(h) for h in settings.dec.hidden)
    pre = recorder.epochs["pretrain"]
    n_features, k = int(pre.args[1].shape[1]), int(thesis.kmeans_k)
    machine_rate["small_dot"] = jax_small_dot(int(pre.kwargs["batch_size"]), max(hidden))
    log.info("flops: XLA cost analysis and warm epochs")
    phases = {name: _phase_block(call, n_features, hidden, k, args.repeats)
              for name, call in recorder.epochs.items()}
    predicts = [_predict_block(call, n_features, hidden, k) for call in recorder.predicts.values()]
    probe = batch_probe(pre, args.probe_batches, args.repeats) if args.probe_batches else None

    train_flops = sum(p["flops"] for p in phases.values())
    dec_flops = train_flops + sum(p["flops"] for p in predicts)
    warm_s = sum(p["warm_epoch_s"] * p["epochs"] for p in phases.values())
    run_s = sum(sum(p["epoch_s"]) for p in phases.values())
    later = [p for p in phases.values() if p["later_epochs_s"]]
    scopes = {
        "training, warm": (train_flops, warm_s),
        "training, as run (compilation in each phase's first epoch)": (train_flops, run_s),
        "DEC stage, as run (with predict, K-Means start, compilation)": (dec_flops, dec_s),
    }
    if later:
        scopes["training, as run, after each phase's first epoch"] = (
            sum(p["epoch_flops"] * (p["epochs"] - 1) for p in later),
            sum(p["later_epochs_s"] for p in later))
    sgemm = machine_rate["numpy"]["best_gflops"]
    jax_best = machine_rate["jax"]["best_gflops"]
    nominal = machine_rate["nominal"]["gflops"]
    achieved = {}
    for label, (flop, seconds) in scopes.items():
        rate = flop / seconds / 1e9 if seconds > 0 else None
        achieved[label] = {"flops": flop, "seconds": seconds, "gflops": rate,
                           "of_numpy_sgemm": _fraction(rate, sgemm),
                           "of_jax_dot": _fraction(rate, jax_best),
                           "of_nominal": _fraction(rate, nominal)}
    return {
        "mode": "flops", "region": args.region, "n_rows": rows, "n_stars": len(stars),
        "n_trained": int(pre.args[1].shape[0]), "k": k, "hidden": list(hidden),
        "n_features": n_features, "batch_size": int(settings.dec.batch_size),
        "epochs_set": [settings.dec.pretrain_epochs, settings.dec.cluster_epochs],
        "machine_rate": machine_rate, "phases": phases, "predict": predicts,
        "train_flops": train_flops, "dec_flops": dec_flops, "thesis_wall_s": wall,
        "thesis_stages": thesis.stages, "achieved": achieved, "headline": "training, warm",
        "batch_probe": probe, "l2_cache": l2_cache(),
    }


# ----------------------------------------------------------------------------- the report


def _g(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def flops_text(report: dict[str, Any], markdown: bool = False) -> str:
    from bench.report import _table

    m = report["machine_rate"]
    num, jx, small, nom = m["numpy"], m["jax"], m["small_dot"], m["nominal"]
    phases = report["phases"]
    out = [f"FLOP rate of thesis DEC: {report['n_rows']:,} rows simulated at {report['region']}, "
           f"{report['n_stars']:,} stars after the quality filter, DEC trained on "
           f"{report['n_trained']:,}; {report['n_features']} features, hidden "
           f"{report['hidden']}, k = {report['k']}, batch {report['batch_size']}; epochs "
           f"pretrain {phases['pretrain']['epochs']} of {report['epochs_set'][0]}, cluster "
           f"{phases['cluster']['epochs'] if 'cluster' in phases else 0} of "
           f"{report['epochs_set'][1]} (the stopping rule may end it early)."]
    # the CPU's nominal peak is set against the CPU's multiplies (JAX's ran on a GPU where one is)
    on_cpu = jx.get("backend") in (None, "cpu")
    cpu_best = max(num["best_gflops"], jx["best_gflops"] if on_cpu else 0.0)
    sizes = [f"  numpy a @ b {r['size']}^2 ({r['blas']}): best {_g(r['best_gflops'])} GFLOP/s, "
             f"median {_g(r['median_gflops'])} of {len(r['seconds'])}"
             for r in m.get("numpy_sizes", [num])]
    if m.get("numpy_1thread"):
        r = m["numpy_1thread"]
        sizes.append(f"  numpy a @ b {r['size']}^2 on one thread: best {_g(r['best_gflops'])} "
                     f"GFLOP/s, median {_g(r['median_gflops'])}")
    sizes += [f"  JAX jit(jnp.dot) {r['size']}^2 on {r['device']}"
              + (f" ({r['precision']} precision)" if r.get("precision") else "")
              + f": best {_g(r['best_gflops'])} "
              f"GFLOP/s, median {_g(r['median_gflops'])}" for r in m.get("jax_sizes", [jx])]
    out.append(
        f"Machine rate, float32 matrix multiply, {m['threads']} threads (the best size's best "
        f"stands for the machine: numpy {_g(num['best_gflops'])} GFLOP/s at {num['size']}^2, "
        f"JAX {_g(jx['best_gflops'])} at {jx['size']}^2):\n" + "\n".join(sizes) + "\n"
        f"  JAX dot at DEC's layer shape ({small['batch']} x {small['width']}) @ "
        f"({small['width']} x {small['width']}), {small['steps']} chained in a scan: best "
        f"{_g(small['best_gflops'])} GFLOP/s, {small['us_per_dot']:.1f} us per dot, "
        f"{small['cpu_per_wall']:.2f} cores busy\n"
        f"  nominal peak (not measured): {_g(nom.get('gflops'))} GFLOP/s"
        + (f" = {nom['cores']} cores x {nom['ghz']:.2f} GHz x {nom['flop_per_cycle']} FLOP/cycle"
           if nom.get("gflops") else "") + f" ({nom['basis']})"
        + (f"; the measured multiply beats it, so the cores run above the reported clock (at "
           f"least {cpu_best / nom['gflops'] * nom['ghz']:.2f} GHz)"
           if nom.get("gflops") and cpu_best > nom["gflops"] else ""))
    rows = []
    for p in phases.values():
        rows.append([p["phase"], p["steps_per_epoch"], p["epochs"], p["step_flops"] / 1e6,
                     p["dense_step_flops"] / 1e6, f"{p['xla_over_dense']:.3f}",
                     p["epoch_flops"] / 1e9, p["flops"] / 1e9, p["xla_counts"]])
    for p in report["predict"]:
        rows.append([f"predict ({p['rows']:,} rows)", p["rows"] // p["chunk"], p["calls"],
                     p["call_flops"] / 1e6, p["dense_call_flops"] / 1e6,
                     f"{p['xla_over_dense']:.3f}", p["call_flops"] / 1e9, p["flops"] / 1e9,
                     p["xla_counts"]])
    out.append("DEC's work, FLOPs counted by XLA (cost_analysis of the compiled programs, lowered "
               "with the run's arguments) against the analytic dense-layer count:")
    out.append(_table(("program", "steps/chunks", "epochs/calls", "XLA MFLOP per step",
                       "dense MFLOP per step", "XLA / dense", "GFLOP per epoch/call",
                       "GFLOP in run", "XLA counted the loop"), rows, markdown))
    out.append(f"In all: training {report['train_flops'] / 1e9:,.1f} GFLOP, DEC stage with its "
               f"predict passes {report['dec_flops'] / 1e9:,.1f} GFLOP. XLA counts a loop's body "
               "once whatever its trips ('body once': the per-step count times the steps is "
               "used).")
    # where DEC ran on an accelerator, the host CPU's sgemm and nominal peak are no measure of it
    rows = [[label, a["flops"] / 1e9, _g(a["seconds"], 2), _g(a["gflops"], 2),
             _pct(a["of_numpy_sgemm"] if on_cpu else None), _pct(a["of_jax_dot"]),
             _pct(a["of_nominal"] if on_cpu else None)]
            for label, a in report["achieved"].items()]
    out.append("Achieved rate:")
    out.append(_table(("scope", "GFLOP", "seconds", "GFLOP/s", "of numpy sgemm", "of JAX dot",
                       "of nominal peak"), rows, markdown))
    stages = report["thesis_stages"]
    out.append("Thesis mode's stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
               + f"; {report['thesis_wall_s']:.1f} s in all.")
    why = []
    for p in phases.values():
        step_us = p["warm_epoch_s"] / p["steps_per_epoch"] * 1e6
        dot_us = p["step_flops"] / (small["best_gflops"] * 1e9) * 1e6
        why.append(f"  {p['phase']}: a step is {step_us:,.0f} us for {p['step_flops'] / 1e6:.1f} "
                   f"MFLOP ({p['step_flops'] / step_us / 1e3:.1f} GFLOP/s) in "
                   f"{p['step_kernels']} operations (XLA fusions and dots, "
                   f"{step_us / max(p['step_kernels'], 1):.1f} us each), "
                   + (f"{p['warm_cpu_per_wall']:.2f} cores busy; " if on_cpu else "")
                   + "at the DEC-shaped dot's "
                   f"rate its FLOPs would take {dot_us:,.0f} us. Arithmetic intensity "
                   f"{p['step_flops'] / p['step_bytes']:.1f} FLOP per byte the operations "
                   f"read and write ({p['step_bytes'] / 1e6:.1f} MB per step) over a working "
                   f"set of {p['state_bytes'] / 1024:,.0f} kB of weights and Adam moments and "
                   f"{p['activation_bytes'] / 1024:,.0f} kB of activations"
                   + (f" (L2 cache {report['l2_cache']} per core)."
                      if report.get("l2_cache") and on_cpu
                      else "."))
    probe = report.get("batch_probe")
    if probe and probe["rows"]:
        why.append("  pretraining epoch at other batch sizes: " + "; ".join(
            f"batch {r['batch']}: {r['step_us']:,.0f} us per step, {_g(r['gflops'])} GFLOP/s"
            for r in probe["rows"]))
        if probe["fit"]:
            f = probe["fit"]
            why.append(f"  step time ~ {f['fixed_us']:,.0f} us fixed + "
                       f"{f['us_per_sample']:.2f} us per sample (fitted over batches "
                       f"{', '.join(map(str, f['batches']))}): at the thesis's batch the fixed "
                       f"part is {_pct(f['fixed_share_at_thesis_batch'])} of a step.")
            pre = phases["pretrain"]
            step_us = pre["warm_epoch_s"] / pre["steps_per_epoch"] * 1e6
            dot_us = pre["dense_step_flops"] / (small["best_gflops"] * 1e9) * 1e6
            rest = step_us - f["fixed_us"] - dot_us
            if rest >= 0:
                why.append(f"  so a pretraining step of {step_us:,.0f} us is about "
                           f"{f['fixed_us']:,.0f} us fixed, {dot_us:,.0f} us for its dense "
                           f"layers at the DEC-shaped dot's rate and {rest:,.0f} us in the "
                           "other operations (bias, ReLU, loss, Adam, the batch's gather), "
                           f"which carry {_pct(1 - pre['dense_step_flops'] / pre['step_flops'])}"
                           " of its FLOPs.")
            else:
                # a dot chained alone takes longer than a whole step does (seen on a GPU): each
                # waits on the one before, so its rate is not the rate of a step's dots
                why.append(f"  so a pretraining step of {step_us:,.0f} us is not split into its "
                           f"parts: its dense layers alone, at the rate of the DEC-shaped dot "
                           f"chained one after another ({small['us_per_dot']:.1f} us each), "
                           f"would take {dot_us:,.0f} us, more than the step. Each chained dot "
                           "waits on the one before: the device is bound by the latency of "
                           "its operations, not by its arithmetic.")
        best = probe["best"]
        rate, name = (num, "numpy's sgemm") if on_cpu else (jx, "JAX's dot there")
        why.append(f"  the best rate of any batch probed: {_g(best['gflops'])} GFLOP/s (batch "
                   f"{best['batch']}), {_pct(_fraction(best['gflops'], rate['best_gflops']))} "
                   f"of {name}.")
    warm = report["achieved"]["training, warm"]
    one = m.get("numpy_1thread")
    if not on_cpu:
        # DEC ran on the accelerator: its CPU's cores and sgemm are beside the point
        why.append(f"  DEC ran on {jx['device']}: the warm training rate is "
                   f"{_pct(_fraction(warm['gflops'], jx['best_gflops']))} of JAX's float32 "
                   f"matrix multiply there ({_g(jx['best_gflops'])} GFLOP/s at {jx['size']}^2)"
                   ".")
    elif one and warm["gflops"]:
        busy = [round(p["warm_cpu_per_wall"], 2) for p in phases.values()]
        why.append(f"  the warm epochs keep {' and '.join(map(str, busy))} cores busy: against "
                   f"one thread's sgemm ({_g(one['best_gflops'])} GFLOP/s) the warm training "
                   f"rate is {_pct(warm['gflops'] / one['best_gflops'])}.")
    out.append("Why:\n" + "\n".join(why))
    return "\n\n".join(out)
