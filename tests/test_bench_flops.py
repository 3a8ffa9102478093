"""scripts/bench flops mode: its FLOP counts and what it reports (never how fast anything is)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "scripts" / "bench"

if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))


def _info(vendor: str, family: int, model: int, flags: str, mhz: float | None) -> dict:
    return {"vendor": vendor, "family": family, "model": model, "name": "test", "mhz": mhz,
            "flags": set(flags.split())}


def test_nominal_peak_applies_the_datapath_the_flags_do_not_show():
    from bench.flops import nominal_peak

    zen4 = nominal_peak(2, _info("AuthenticAMD", 0x19, 0x11, "avx avx2 fma avx512f", 2600.0))
    assert zen4["flop_per_cycle"] == 32  # AVX-512 on 256-bit pipes: 8 lanes x FMA x 2
    assert zen4["gflops"] == pytest.approx(2 * 2.6 * 32)
    intel = nominal_peak(4, _info("GenuineIntel", 6, 85, "avx avx2 fma avx512f", 2000.0))
    assert intel["flop_per_cycle"] == 64 and intel["gflops"] == pytest.approx(512.0)
    zen1 = nominal_peak(1, _info("AuthenticAMD", 0x17, 0x01, "avx avx2 fma", 3000.0))
    assert zen1["flop_per_cycle"] == 16
    assert nominal_peak(2, _info("AuthenticAMD", 0x19, 0x11, "avx fma", None))["gflops"] is None


def test_dense_flops_by_hand():
    from bench.flops import dense_flops

    # 4 -> 50 -> 50 -> 40 and back: in x out sums to 9400 per sample
    pre = dense_flops(4, (50, 50, 40), 1, "pretrain")
    assert pre["forward"] == 2 * 9400
    assert pre["total"] == 3 * 2 * 9400 - 2 * 4 * 50  # no input gradient for the data
    clu = dense_flops(4, (50, 50, 40), 10, "cluster", k=3)
    assert clu["forward"] == 10 * (2 * 4700 + 3 * 3 * 40)


def test_loop_cost_multiplies_a_scan_body_xla_counts_once():
    """XLA counts a scan's body once whatever its length; loop_cost finds that out by compiling
    one trip too and gives the trips' total, and the step's operations."""
    import jax
    import jax.numpy as jnp

    from bench.flops import loop_cost

    c, w = jnp.ones((256, 50), jnp.float32), jnp.eye(50, dtype=jnp.float32)

    def lower(trips: int):
        def chain(c, w):
            return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), c, None, length=trips)[0]
        return jax.jit(chain).lower(c, w)

    cost = loop_cost(lower, 40)
    dot = 2.0 * 256 * 50 * 50
    assert cost["xla_counts"] in ("body once", "every trip")
    assert cost["flops"] == pytest.approx(40 * dot, rel=0.02)
    assert cost["per_trip"]["flops"] == pytest.approx(dot, rel=0.02)
    assert cost["n_kernels"] >= 1


@pytest.mark.slow
def test_flops_mode_on_a_tiny_field(tmp_path):
    """Thesis mode's DEC on 2,500 simulated rows, one epoch per phase: XLA's count of each
    training step agrees with the dense layers' (the layers are nearly all of the work), the
    achieved rate is positive and below what the machine's multiply reaches, and the report is
    written. About 10 s on two cores, nearly all of it XLA compiling DEC's programs."""
    from bench.cli import main

    out = tmp_path / "flops.json"
    md = tmp_path / "flops.md"
    assert main(["flops", "--rows", "2500", "--dec-epochs", "1,1", "--k-values", "2",
                 "--matmul-sizes", "128,256", "--repeats", "1", "--no-probe",
                 "--workdir", str(tmp_path / "work"), "--json", str(out),
                 "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "flops" and report["k"] == 2
    assert report["n_trained"] == report["n_stars"] > 1000
    for name in ("pretrain", "cluster"):
        phase = report["phases"][name]
        assert phase["epochs"] == 1
        assert phase["steps_per_epoch"] == report["n_trained"] // 256
        assert 0.95 < phase["xla_over_dense"] < 1.25, name
        assert phase["flops"] == pytest.approx(phase["step_flops"] * phase["steps_per_epoch"])
    assert report["phases"]["pretrain"]["step_flops"] > report["phases"]["cluster"]["step_flops"]
    (predict,) = report["predict"]
    assert predict["calls"] >= 2 and 0.95 < predict["xla_over_dense"] < 1.25
    assert report["dec_flops"] > report["train_flops"] > 0
    machine = report["machine_rate"]
    assert [r["size"] for r in machine["numpy_sizes"]] == [128, 256]
    assert machine["numpy_1thread"]["threads"] == 1 and machine["numpy_1thread"]["size"] == 256
    assert machine["numpy"]["best_gflops"] == max(r["best_gflops"]
                                                  for r in machine["numpy_sizes"])
    ceiling = max(machine["numpy"]["best_gflops"], machine["jax"]["best_gflops"],
                  machine["small_dot"]["best_gflops"])
    warm = report["achieved"]["training, warm"]
    assert 0 < warm["gflops"] < 1.5 * ceiling
    as_run = report["achieved"]["DEC stage, as run (with predict, K-Means start, compilation)"]
    assert 0 < as_run["gflops"] < warm["gflops"]  # compilation and the rest only add time
    assert all(0 < p["warm_cpu_per_wall"] < 3 for p in report["phases"].values())
    text = md.read_text()
    assert "| scope | GFLOP |" in text and "nominal peak" in text and "Why:" in text


def test_report_of_a_gpu_run_names_latency_not_a_negative_split() -> None:
    """bench flops' report of thesis DEC on an H200 (tests/data/flops_h200.json: 434,000 rows,
    session 26). There a DEC-shaped dot chained alone takes longer than a whole training step, so
    splitting the step into fixed, dense-layer and other time gave "-166 us in the other
    operations"; the report must say the device is latency-bound instead, set the rates against
    the GPU's multiply, not the host CPU's sgemm, and not take the GPU's multiply for the CPU
    beating its nominal peak ("at least 40.97 GHz")."""
    from bench.flops import flops_text

    report = json.loads((Path(__file__).parent / "data" / "flops_h200.json").read_text())
    assert report["machine_rate"]["jax"]["backend"] == "gpu"
    why = flops_text(report).split("Why:")[1]
    assert not re.search(r"-\d[\d,]* us", why)
    assert "bound by the latency of its operations" in why
    assert "DEC ran on cuda:0" in why and "of JAX's dot there" in why
    assert "numpy's sgemm" not in why and "one thread's sgemm" not in why
    assert "above the reported clock" not in flops_text(report)
    assert "cores busy" not in why and "L2 cache" not in why
    achieved = flops_text(report).split("Achieved rate:")[1].split("Thesis mode")[0]
    assert "training, warm" in achieved and "17.2%" not in achieved  # no sgemm share


def test_report_of_a_cpu_run_keeps_the_split() -> None:
    """The same report as if it ran on a CPU whose chained dot is fast: the step is split."""
    from bench.flops import flops_text

    report = json.loads((Path(__file__).parent / "data" / "flops_h200.json").read_text())
    for rate in (report["machine_rate"]["jax"], *report["machine_rate"]["jax_sizes"]):
        rate["backend"], rate["device"] = "cpu", "TFRT_CPU_0"
    report["machine_rate"]["small_dot"]["best_gflops"] *= 100
    why = flops_text(report).split("Why:")[1]
    assert "us in the other operations" in why and "bound by the latency" not in why
    assert "of numpy's sgemm" in why and "one thread's sgemm" in why and "cores busy" in why
