"""DEC engine: blobs separated, q and p, reproducibility, one compilation, stopping rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from ocdec.errors import OcdecError
from ocdec.methods import dec
from ocdec.methods.dec import DecSettings, centroids_from_labels, fit_dec, target_distribution

# n is deliberately not a multiple of the batch size: the remainder is dropped per epoch.
N, K = 1203, 3
SETTINGS = DecSettings(pretrain_epochs=8, cluster_epochs=8, batch_size=64, min_cluster_epochs=8,
                       tol=0.0, log_every_s=0.0)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_blobs(n_samples=N, centers=K, n_features=4, cluster_std=1.0, random_state=3)
    return ((x - x.min(0)) / (x.max(0) - x.min(0))).astype(np.float32), y


@pytest.fixture(scope="module")
def runs(blobs):
    """Two fits with seed 0 and one with seed 1, with trace counts around each."""
    x, _ = blobs
    before = dict(dec.TRACE_COUNTS)
    first = fit_dec(x, K, SETTINGS, seed=0)
    after_first = dict(dec.TRACE_COUNTS)
    again = fit_dec(x, K, SETTINGS, seed=0)
    after_again = dict(dec.TRACE_COUNTS)
    other = fit_dec(x, K, SETTINGS, seed=1)
    return {"first": first, "again": again, "other": other, "before": before,
            "after_first": after_first, "after_again": after_again}


def test_dec_separates_blobs(runs, blobs):
    _, y = blobs
    for name in ("first", "other"):
        assert adjusted_rand_score(y, runs[name].labels) > 0.95


def test_q_is_a_distribution_and_labels_are_its_argmax(runs):
    q = runs["first"].q
    assert q.shape == (N, K) and q.dtype == np.float32
    assert np.all(q >= 0) and np.all(q <= 1)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(runs["first"].labels, q.argmax(axis=1))


def test_target_distribution_sharpens_q(runs):
    q = runs["first"].q
    p = target_distribution(q)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)

    def entropy(a: np.ndarray) -> np.ndarray:
        return -(a * np.log(np.clip(a, 1e-30, None))).sum(axis=1)

    assert entropy(p).mean() < entropy(q).mean()
    # With equal group sizes (f_j) p keeps each row's argmax and raises its maximum.
    sym = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.3, 0.2, 0.5]], dtype=np.float32)
    ps = target_distribution(sym)
    np.testing.assert_array_equal(ps.argmax(axis=1), sym.argmax(axis=1))
    assert np.all(ps.max(axis=1) > sym.max(axis=1))
    # f_j normalisation: a big group's pull is reduced relative to q^2 alone.
    skew = np.array([[0.6, 0.4]] * 9 + [[0.4, 0.6]], dtype=np.float32)
    assert target_distribution(skew)[0, 1] > (0.4**2 / (0.4**2 + 0.6**2))


def test_same_seed_is_bitwise_identical_and_other_seed_differs(runs):
    first, again, other = runs["first"], runs["again"], runs["other"]
    assert np.array_equal(first.q, again.q)
    assert np.array_equal(first.latent, again.latent)
    assert first.history.equals(again.history)
    assert not np.array_equal(first.q, other.q)


def test_epoch_function_is_compiled_once_and_reused(runs):
    before, after_first, after_again = runs["before"], runs["after_first"], runs["after_again"]
    for name in ("train_epoch_pretrain", "train_epoch_cluster", "predict"):
        # Eight epochs and several predictions, at most one trace; none for the second fit.
        assert after_first.get(name, 0) - before.get(name, 0) <= 1
        assert after_again.get(name, 0) == after_first.get(name, 0)
    assert after_first.get("train_epoch_cluster", 0) >= 1


def test_history_and_cluster_changes(runs):
    res = runs["first"]
    h = res.history
    assert list(h.columns) == ["seed", "phase", "epoch", "loss", "label_change"]
    assert (h["phase"] == "pretrain").sum() == SETTINGS.pretrain_epochs
    assert h.loc[h["phase"] == "pretrain", "label_change"].isna().all()
    cl = h[h["phase"] == "cluster"]
    assert len(cl) == res.epochs_run == SETTINGS.cluster_epochs
    assert cl["label_change"].between(0, 1).all()
    pre = h[h["phase"] == "pretrain"]["loss"].to_numpy()
    assert pre[-1] < pre[0]  # the autoencoder learned to reconstruct
    cc = res.cluster_changes
    for _, g in cc.groupby("epoch"):
        assert g["n_after"].sum() == N
        np.testing.assert_array_equal(g["n_after"] - g["n_before"], g["n_in"] - g["n_out"])
    # The label change of a check equals the moved stars summed over clusters (each move counted
    # once as n_out) divided by n.
    last = cc[cc["epoch"] == cc["epoch"].max()]
    assert cl["label_change"].iloc[-1] == pytest.approx(last["n_out"].sum() / N)


def test_stopping_rule_waits_for_min_epochs(blobs):
    x, _ = blobs
    s = DecSettings(pretrain_epochs=2, cluster_epochs=8, batch_size=64, min_cluster_epochs=3,
                    tol=1.01)
    res = fit_dec(x, K, s, seed=0)
    assert res.converged and res.epochs_run == 3
    # A tiny cluster-level tolerance can only be met by a check where no star moved at all.
    s0 = DecSettings(pretrain_epochs=2, cluster_epochs=4, batch_size=64, min_cluster_epochs=1,
                     tol=1.01, cluster_tol=1e-9)
    res0 = fit_dec(x, K, s0, seed=0)
    moved = res0.cluster_changes.groupby("epoch")["change"].max()
    assert res0.converged == bool((moved == 0).any())
    first_still = moved.index[(moved == 0).to_numpy()]
    assert res0.epochs_run == (int(first_still[0]) if res0.converged else 4)
    # A cluster_tol that no check meets keeps training to the epoch limit despite tol.
    s1 = DecSettings(pretrain_epochs=2, cluster_epochs=3, batch_size=64, min_cluster_epochs=1,
                     tol=1.01, cluster_tol=-1.0)
    res1 = fit_dec(x, K, s1, seed=0)
    assert not res1.converged and res1.epochs_run == 3


def test_caller_initial_centroids(blobs):
    x, y = blobs
    seen = {}

    def init(latent: np.ndarray, k: int, seed: int) -> np.ndarray:
        seen["shape"], seen["k"], seen["seed"] = latent.shape, k, seed
        return centroids_from_labels(latent, y, k)

    s = DecSettings(pretrain_epochs=4, cluster_epochs=2, batch_size=64)
    res = fit_dec(x, K, s, seed=5, init_centroids_fn=init)
    assert seen == {"shape": (N, s.hidden[-1]), "k": K, "seed": 5}
    assert adjusted_rand_score(y, res.initial_labels) > 0.99
    with pytest.raises(OcdecError, match="initial centroids"):
        fit_dec(x, K, s, seed=5, init_centroids_fn=lambda z, k, seed: np.zeros((k + 1, 2)))


def test_fewer_stars_than_one_batch(blobs):
    x, _ = blobs
    s = DecSettings(**{**SETTINGS.__dict__, "batch_size": 4096})  # one batch of all rows per epoch
    res = fit_dec(x, K, s, seed=0)
    pre = res.history[res.history["phase"] == "pretrain"]["loss"].to_numpy()
    assert pre[-1] < pre[0] and res.epochs_run == SETTINGS.cluster_epochs
    np.testing.assert_allclose(res.q.sum(axis=1), 1.0, atol=1e-5)


def test_idec_term_and_chunked_prediction(runs, blobs):
    x, y = blobs
    idec = fit_dec(x, K, DecSettings(**{**SETTINGS.__dict__, "reconstruction_weight": 0.5}), seed=0)
    assert not np.array_equal(idec.q, runs["first"].q)  # the reconstruction term is trained
    assert adjusted_rand_score(y, idec.labels) > 0.95
    # Predicting q in chunks of 100 rows (13 chunks, the last padded) gives the same answer.
    chunked = fit_dec(x, K, DecSettings(**{**SETTINGS.__dict__, "predict_chunk": 100}), seed=0)
    np.testing.assert_allclose(chunked.q, runs["first"].q, atol=1e-4)
    np.testing.assert_array_equal(chunked.labels, runs["first"].labels)


@pytest.mark.parametrize(
    ("x", "k", "match"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), 2, "NaN"),
        (np.zeros(5), 2, "2-d"),
        (np.zeros((5, 2)), 9, "n_clusters"),
    ],
)
def test_bad_input_is_a_one_line_error(x, k, match):
    with pytest.raises(OcdecError, match=match):
        fit_dec(x, k, DecSettings(pretrain_epochs=1, cluster_epochs=1), seed=0)


def test_bad_settings_are_errors():
    with pytest.raises(OcdecError, match="batch_size"):
        DecSettings(batch_size=0)
    with pytest.raises(OcdecError, match="hidden"):
        DecSettings(hidden=())


def test_weighted_mixture_layer_keeps_a_small_compact_cluster_and_pads():
    """A compact group of 150 inside a broad field of 1,500, DEC started from the calibrated
    posterior: the mixture layer (weights, scales) keeps the group, plain DEC's layer (one width,
    no weights) does not; padded inputs of two sizes compile once."""
    rng = np.random.default_rng(0)
    cluster = rng.normal(0.0, 0.3, (150, 3))
    field = rng.normal(0.0, 3.0, (1500, 3))
    x = np.vstack([cluster, field]).astype(np.float32)
    truth = np.r_[np.ones(150, bool), np.zeros(1500, bool)]
    r2 = (x.astype(float) ** 2).sum(axis=1)
    log_ratio = np.log(1500 / 150) - 3 * np.log(3.0 / 0.3) - r2 / 18 + r2 / 0.18
    # log_ratio: log field over cluster density; p0: the generating mixture's cluster posterior
    p0 = 1 / (1 + np.exp(np.clip(log_ratio, -50, 50)))
    init = np.stack([p0, 1 - p0], axis=1)
    s = DecSettings(hidden=(3,), pretrain_epochs=10, cluster_epochs=10, batch_size=128,
                    learning_rate=1e-4, alpha=20.0, min_cluster_epochs=3, cluster_tol=0.01,
                    mixture=True, whiten_cluster=0, train_encoder=False)
    before = dict(dec.TRACE_COUNTS)
    res = fit_dec(x, 2, s, seed=0, init_assignment=init, pad_to=2048)
    first = dict(dec.TRACE_COUNTS)
    assert res.q.shape == (len(x), 2) and res.latent.shape[0] == len(x)
    np.testing.assert_allclose(res.q.sum(axis=1), 1.0, atol=1e-5)
    member = res.q[:, 0] >= 0.5
    f1 = 2 * (member & truth).sum() / (member.sum() + truth.sum())
    assert f1 > 0.9
    # Plain DEC's kernel from the same start: the balancing target grows the group into the field
    # (measured 815 stars, 85 of them true).
    plain = fit_dec(x, 2, DecSettings(**{**s.__dict__, "mixture": False}), seed=0,
                    init_assignment=init, pad_to=2048)
    plain_member = plain.q[:, 0] >= 0.5
    assert 2 * (plain_member & truth).sum() / (plain_member.sum() + truth.sum()) < 0.5
    mid = dict(dec.TRACE_COUNTS)
    fit_dec(x[:-100], 2, s, seed=1, init_assignment=init[:-100], pad_to=2048)
    assert first.get("train_epoch_cluster_frozen", 0) - before.get(
        "train_epoch_cluster_frozen", 0) <= 1
    # 100 rows fewer, same bucket: nothing new is compiled.
    for name in ("train_epoch_pretrain", "train_epoch_cluster_frozen", "predict"):
        assert dec.TRACE_COUNTS[name] == mid[name]
    with pytest.raises(OcdecError, match="pad_to"):
        fit_dec(x, 2, s, seed=0, init_assignment=init, pad_to=100)
    with pytest.raises(OcdecError, match="initial assignment"):
        fit_dec(x, 2, s, seed=0, init_assignment=init[:, :1], pad_to=2048)


def test_keys_and_shuffles_are_the_eager_ones_bit_for_bit():
    """The seed's keys (split in one program) and each epoch's shuffle (the epoch folded in
    inside the shuffle's program) are what the eager calls they replace give."""
    import jax

    for seed in (0, 7, 2**31 - 1, 2**31, 2**32 + 5, -1):
        keys = dec.SeedKeys.from_seed(seed)
        eager = jax.random.split(jax.random.key(seed), 3)
        for got, want in zip((keys.init, keys.pretrain, keys.cluster), eager, strict=True):
            np.testing.assert_array_equal(jax.random.key_data(got), jax.random.key_data(want))
    key = dec.SeedKeys.from_seed(3).pretrain
    for epoch in (1, 2, 40):
        want = jax.random.permutation(jax.random.fold_in(key, epoch), 1203)[:1152]
        got = dec._epoch_batches(key, epoch, n=1203, batch_size=64)
        np.testing.assert_array_equal(np.asarray(got).ravel(), np.asarray(want))


def test_a_fit_runs_no_eager_programs(caplog):
    """A mixture-layer fit (padded, whitened) compiles only its own programs: no identity,
    conversion, broadcast or random-key program of eager JAX calls (each is traced, lowered and
    loaded once per process: 19 of the 26 a default-method job ran)."""
    import jax

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    init = np.stack([np.r_[np.ones(50), np.zeros(250)], np.r_[np.zeros(50), np.ones(250)]], 1)
    s = DecSettings(hidden=(3,), pretrain_epochs=2, cluster_epochs=2, batch_size=64,
                    min_cluster_epochs=1, mixture=True, whiten_cluster=0, train_encoder=False)
    jax.clear_caches()
    with jax.log_compiles(True), caplog.at_level("WARNING", logger="jax"):
        fit_dec(x, 2, s, seed=0, init_assignment=init, pad_to=512)
    compiled = {r.getMessage().split("jit(")[1].split(")")[0] for r in caplog.records
                if r.getMessage().startswith("Compiling jit(")}
    assert {"_scan_batches", "_predict"} <= compiled
    eager = compiled - {"_new_autoencoder", "_new_optimizer", "_seed_keys", "_epoch_batches",
                        "_scan_batches", "_predict"}
    assert not eager, f"eager programs: {sorted(eager)}"


def _fingerprint_of_new_autoencoder(learning_rate: float) -> str:
    from flax import nnx

    model, optimizer = dec._new_autoencoder(dec.SeedKeys.from_seed(0).init, n_features=4,
                                            hidden=(8, 2), learning_rate=learning_rate)
    return dec._graphdef_fingerprint(nnx.split((model, optimizer))[0])


def test_a_graph_fingerprint_is_the_same_in_every_process_and_names_the_rate() -> None:
    """Stored DEC programs are keyed by the graph definition's fingerprint: it must not hold
    addresses (another process's would differ) and must tell optimizers' rates apart (optax's
    own transformation is a pair of closures that say nothing of it)."""
    import subprocess
    import sys

    here = _fingerprint_of_new_autoencoder(1e-3)
    assert " at 0x" not in here and "_Adam(learning_rate=0.001)" in here
    assert _fingerprint_of_new_autoencoder(2e-3) != here
    code = ("import sys; sys.path.insert(0, 'scripts'); sys.path.insert(0, 'tests');"
            "import test_dec; print(test_dec._fingerprint_of_new_autoencoder(1e-3), end='')")
    root = Path(__file__).resolve().parents[1]
    there = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                           text=True, timeout=300, check=True).stdout
    assert there == here


def test_the_adam_wrapper_updates_as_optax_adam_bit_for_bit() -> None:
    import jax
    import optax

    rng = np.random.default_rng(4)
    params = {"w": rng.normal(size=(5, 3)).astype(np.float32), "b": np.zeros(3, np.float32)}
    ours, theirs = dec._adam(1e-3), optax.adam(1e-3)
    s1, s2 = ours.init(params), theirs.init(params)
    for _ in range(3):
        grads = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
        u1, s1 = ours.update(grads, s1, params)
        u2, s2 = theirs.update(grads, s2, params)
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_every_matrix_product_asks_for_full_float32_precision() -> None:
    """On an NVIDIA GPU JAX multiplies float32 in TF32 unless told otherwise, which moved DEC's
    labels away from the CPU's on the H200 (tests/data/flops_h200.json's machine; README). Every
    dot of the network, its mixture layer and their gradients must carry HIGHEST precision."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    auto = dec.Autoencoder(3, (8, 4), jax.random.key(0))
    model = dec.DecModel(auto, jnp.zeros((2, 4)), mixture=True)
    x = jnp.ones((5, 3), jnp.float32)

    def loss(m: dec.DecModel) -> jax.Array:
        return jnp.sum(m.assign(m.embed(x), 1.0)) + jnp.sum(m.autoencoder(x))

    jaxpr = jax.make_jaxpr(nnx.grad(loss))(model)
    dots = []

    def collect(jaxpr) -> None:  # the jaxpr and those inside its equations (pjit, custom_jvp)
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                dots.append(eqn.params["precision"])
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        collect(inner)

    collect(jaxpr.jaxpr)
    # forward: the encoder twice (embed, then the autoencoder), the decoder and the latent
    # matrix, 7 products; backward: two for each but the input gradient of the encoder's first
    # layer (the input is no parameter), 11
    assert len(dots) == 18
    highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
    assert all(p == highest for p in dots), dots


@pytest.mark.parametrize("mixture", [False, True])
def test_the_compiled_programs_multiply_at_full_precision(mixture: bool) -> None:
    """The programs a fit runs, lowered as it lowers them: every epoch program (each phase, with
    and without a mask, with the reconstruction term) and the prediction carry HIGHEST on each
    dot (StableHLO's dot_general lines)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    x = jnp.ones((32, 3), jnp.float32)
    batches = jnp.arange(32).reshape(4, 8)
    auto, optimizer = dec._new_autoencoder(jax.random.key(0), n_features=3, hidden=(6, 4),
                                           learning_rate=1e-3)
    model = dec.DecModel(auto, jnp.zeros((2, 4)), mixture=mixture)
    cases = [("pretrain", (auto, optimizer), x, 0.0)] if not mixture else []
    cases += [(phase, (model, dec._new_optimizer(model, learning_rate=1e-3)),
               jnp.full((32, 2), 0.5, jnp.float32), weight)
              for phase in ("cluster", "cluster_frozen") for weight in (0.0, 0.5)]
    texts = []
    for phase, pair, target, weight in cases:
        graphdef, state = nnx.split(pair)
        for mask in (None, jnp.ones(32, jnp.float32)):
            texts.append(dec._scan_batches.lower(
                state, x, target, mask, batches, graphdef=graphdef, phase=phase, alpha=1.0,
                reconstruction_weight=weight).as_text())
    graphdef, state = nnx.split(model)
    texts.append(dec._predict.lower(state, x, graphdef=graphdef, chunk=8, alpha=1.0).as_text())
    for text in texts:
        dots = [line for line in text.splitlines() if "dot_general" in line]
        assert dots and all("HIGHEST" in line for line in dots), dots
