#!/usr/bin/env python
"""Check that DEC trained on the GPU finds the same members as DEC trained on the CPU.

For whoever has a GPU:  .venv/bin/pip install -e '.[cuda13]'  (NVIDIA driver >= 580; '.[cuda]',
CUDA 12, for driver >= 525)  then  .venv/bin/python scripts/check_gpu.py

Trains ``ocdec.methods.dec.fit_dec`` on one simulated field (an open cluster inside a broad field
population, in the thesis's feature space) with the same seed twice, once placed on the CPU and once
on the GPU, and compares the two clusterings: adjusted Rand index of all labels, and the Jaccard
index of the member sets (the DEC group that holds most true members). Timings include JAX's
compilation, which is done once per device. Float32 sums run in a
different order on a GPU, so bitwise equality is not expected; agreement within tolerance is.
DEC asks for full float32 matrix products (``ocdec.methods.dec.PRECISION``): with JAX's default
TF32 on an NVIDIA H200 this check failed (adjusted Rand index 0.92), with full float32 it passed
(0.96-0.99 over seeds 0-2). scripts/gpu_report.sh runs this check with the GPU timings.
Prints the devices and the wall time of each run. Exit status: 0 agree, 1 disagree, 3 no GPU.
"""

import argparse
import os
import sys
import time

# Several jobs may share one card: allocate GPU memory as needed rather than 75 % up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from ocdec.cli.options import count, fraction, positive_int  # noqa: E402
from ocdec.methods.dec import DecResult, DecSettings, fit_dec  # noqa: E402

NO_GPU_EXIT = 3


def simulated_features(n_stars: int, member_fraction: float, seed: int) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """Standardised (pmra, pmdec, parallax) of a field with one open cluster, and the member mask.

    A compact cluster (common proper motion and parallax, small dispersion) inside a broad field
    population, rows shuffled as a real cone is not ordered by membership.
    """
    rng = np.random.default_rng(seed)
    n_mem = int(round(n_stars * member_fraction))
    n_field = n_stars - n_mem
    plx = np.concatenate([rng.normal(1.15, 0.05, n_mem), rng.gamma(2.0, 0.6, n_field) + 0.05])
    pmra = np.concatenate([rng.normal(-11.0, 0.3, n_mem), rng.normal(-2.0, 6.0, n_field)])
    pmdec = np.concatenate([rng.normal(-2.9, 0.3, n_mem), rng.normal(-4.0, 6.0, n_field)])
    truth = np.arange(n_stars) < n_mem
    x = np.column_stack([pmra, pmdec, plx])
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    order = rng.permutation(n_stars)
    return x[order].astype(np.float32), truth[order]


def members(result: DecResult, truth: np.ndarray) -> np.ndarray:
    """Stars of the DEC group that holds the most true members."""
    group = np.bincount(result.labels[truth], minlength=result.q.shape[1]).argmax()
    return result.labels == group


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.sum(a | b)
    return float(np.sum(a & b) / union) if union else 1.0


def train_on(device: jax.Device, x: np.ndarray, k: int, settings: DecSettings,
             seed: int) -> tuple[DecResult, float]:
    with jax.default_device(device):
        t0 = time.perf_counter()
        result = fit_dec(x, k, settings, seed)
        return result, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="exit status: 0 the devices agree, 1 they disagree, "
                                            f"{NO_GPU_EXIT} no GPU visible to JAX")
    parser.add_argument("--stars", type=positive_int, default=50_000,
                        help="stars in the field (50000)")
    parser.add_argument("--member-fraction", type=fraction, default=0.02,
                        help="share of the stars in the cluster, (0, 1] (0.02)")
    parser.add_argument("--clusters", type=positive_int, default=6, help="DEC clusters k (6)")
    parser.add_argument("--seed", type=count, default=0, help="random seed, >= 0 (0)")
    parser.add_argument("--pretrain-epochs", type=count, default=10,
                        help="autoencoder epochs, >= 0 (10)")
    parser.add_argument("--cluster-epochs", type=count, default=15,
                        help="most clustering epochs, >= 0 (15)")
    parser.add_argument("--min-ari", type=fraction, default=0.95,
                        help="least adjusted Rand index of all labels, (0, 1] (0.95)")
    parser.add_argument("--min-jaccard", type=fraction, default=0.95,
                        help="least Jaccard index of the member sets, (0, 1] (0.95)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="without a GPU, compare two CPU runs (checks this script itself)")
    args = parser.parse_args(argv)
    n_members = int(round(args.stars * args.member_fraction))
    if n_members < 1:
        parser.error(f"--stars {args.stars} with --member-fraction {args.member_fraction:g} gives "
                     "no cluster member: raise one or the other")
    if args.clusters > args.stars:
        parser.error(f"--clusters {args.clusters} is more than --stars {args.stars}")

    print(f"jax {jax.__version__}, default backend {jax.default_backend()}")
    print(f"devices: {jax.devices()}")
    cpu = jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        if not args.allow_cpu:
            print("no GPU visible to JAX: nothing to check. Install the CUDA wheels with "
                  "`.venv/bin/pip install -e '.[cuda13]'` (driver >= 580) or '.[cuda]' (CUDA 12, "
                  "driver >= 525) on a machine with an NVIDIA GPU, then run this again.",
                  file=sys.stderr)
            return NO_GPU_EXIT
        other = cpu
        print("no GPU: --allow-cpu given, comparing CPU with CPU")
    else:
        other = gpus[0]
    print(f"comparing {cpu} with {other}")

    x, truth = simulated_features(args.stars, args.member_fraction, args.seed)
    settings = DecSettings(pretrain_epochs=args.pretrain_epochs, cluster_epochs=args.cluster_epochs)
    print(f"field: {len(x)} stars, {int(truth.sum())} true members, k={args.clusters}, "
          f"{settings.pretrain_epochs} pretraining + <= {settings.cluster_epochs} "
          "clustering epochs")

    ref, t_ref = train_on(cpu, x, args.clusters, settings, args.seed)
    res, t_res = train_on(other, x, args.clusters, settings, args.seed)
    ari = adjusted_rand_score(ref.labels, res.labels)
    m_ref, m_res = members(ref, truth), members(res, truth)
    jac = jaccard(m_ref, m_res)
    print(f"{'device':<24}{'seconds':>10}{'members':>10}{'recall':>9}{'epochs':>8}")
    for dev, r, t, m in ((cpu, ref, t_ref, m_ref), (other, res, t_res, m_res)):
        recall = np.sum(m & truth) / truth.sum()
        print(f"{str(dev):<24}{t:>10.2f}{int(m.sum()):>10}{recall:>9.3f}{r.epochs_run:>8}")
    print(f"adjusted Rand index of labels {ari:.4f} (>= {args.min_ari}), "
          f"Jaccard of member sets {jac:.4f} (>= {args.min_jaccard})")
    if ari >= args.min_ari and jac >= args.min_jaccard:
        print("OK: the two devices agree within tolerance")
        return 0
    print("MISMATCH: the two devices disagree beyond tolerance", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
