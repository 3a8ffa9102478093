"""Deep Embedded Clustering (Xie, Girshick & Farhadi 2016) in JAX, Flax NNX and Optax.

An autoencoder (dense encoder of ``hidden`` widths, the last being the latent size, and a mirrored
decoder, ReLU between layers) is pretrained on the reconstruction error; K-Means in the latent space
gives the initial centroids; then encoder and centroids are trained together so that the Student-t
soft assignment q moves towards the sharpened target p (KL(P || Q)), optionally keeping the
reconstruction loss too (IDEC, Guo et al. 2017).

How the work is laid out for speed and reproducibility:

- One Python call trains one whole epoch: a jitted function draws the epoch's permutation from a
  ``jax.random`` key (Gaia rows are sky-ordered, so batches must be shuffled) and runs every
  mini-batch step inside one ``jax.lax.scan``. The model and optimizer travel through the scan as an
  ``nnx.split`` state and are merged inside the step, so there is no Python dispatch per batch.
- The remainder of ``n / batch_size`` is dropped per epoch; each epoch has a fresh permutation, so
  every star is seen, just not in every epoch.
- The jitted functions live at module level with the graph definition as a static argument, so an
  ensemble of seeds on the same input compiles once (the Optax transformation is cached per learning
  rate so that graph definitions compare equal).
- All randomness comes from keys derived from ``seed``; inputs are float32. On CPU the same seed and
  input give bitwise-identical q. JAX uses a GPU when one is installed and visible. The network's
  matrix products ask for full float32 precision (:data:`PRECISION`): on an NVIDIA GPU JAX's
  default multiplies float32 in TF32 (10-bit mantissas), which on an H200 moved a simulated
  field's DEC labels away from the CPU's (adjusted Rand index 0.92) and trained no faster once
  compiled (it compiled about 4 s sooner), DEC's small steps being bound by a fixed cost per step
  there. On a CPU the products are float32 either way.
- q over all stars is predicted in fixed-size chunks (``lax.map``): memory stays bounded at any n.

Stopping rule. DEC stops when fewer than ``tol`` (0.1 %) of the labels changed between two target
updates. At 400,000 stars 0.1 % is 400 stars: a whole open cluster of a few hundred members can
move to another group and the rule still says "converged". So the rule here is checked only after
``min_cluster_epochs``, and every check also records, per cluster, how many stars entered and left
it (``DecResult.cluster_changes``); ``cluster_tol`` makes the stop require every cluster's own
relative change to be below it too, which is the rule that means something for a small cluster.

Weighted Student-t mixture (``mixture=True``; off by default, so the thesis keeps plain DEC).
Plain DEC's kernel has one common width and no mixing weights, and its target p = q^2 / f,
normalised by the cluster frequency f, pulls towards balanced clusters: a compact cluster of a few
hundred stars next to a broad field of thousands loses its edge stars or swallows field. The
mixture layer (the Student-t mixture generalisation of DEC's layer used for imbalanced clusters)
uses a proper D-dimensional Student-t density per cluster with mixing weights pi_j and per-cluster
scales s_j,

    q_ij ∝ pi_j s_j^-D (1 + |z_i - mu_j|^2 / (alpha s_j^2))^(-(alpha + D) / 2),

the weights re-estimated from q (mean q_ij) at every target update (``update_weights``), the log
scales trained with the centroids (``learn_scales``; else re-estimated as q-weighted RMS
distances). The target stays DEC's p = q^2 / f: with q carrying pi_j, dividing by f_j ≈ n pi_j
cancels one factor of pi_j, so the target sharpens without the balancing pull. Encoder and
centroids are trained on KL(P || Q) as in DEC (``train_encoder=False`` freezes the encoder).
``fit_dec``'s ``init_assignment`` starts centroids, weights and scales from a caller's soft
grouping; ``whiten_cluster`` then maps the latent space linearly so that this initial cluster's
covariance is the identity (with a linear encoder every seed then starts from the same geometry up
to a rotation).

Padding (``pad_to``): an input is padded with masked rows to a fixed size, so runs on inputs of
different sizes within one bucket share compiled programs; masked rows count in no loss, target,
weight, scale or label statistic.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx

from ocdec.errors import OcdecError
from ocdec.methods.base import HISTORY_COLUMNS
from ocdec.progress import Progress
from ocdec.stored_programs import stored_program

# Full float32 in the network's matrix products (and so in their gradients) on every device.
PRECISION = jax.lax.Precision.HIGHEST

log = logging.getLogger(__name__)

# How many times each jitted function was traced (compiled); tests use it to show that an epoch is
# one compiled program reused across epochs and seeds.
TRACE_COUNTS: Counter[str] = Counter()

InitCentroidsFn = Callable[[np.ndarray, int, int], np.ndarray]


@dataclass(frozen=True)
class DecSettings:
    """DEC hyperparameters (defaults: the thesis architecture, Adam, a target update per epoch)."""

    hidden: tuple[int, ...] = (50, 50, 40)  # encoder widths; the last is the latent size
    pretrain_epochs: int = 20
    cluster_epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3  # Adam, both phases
    alpha: float = 1.0  # Student-t degrees of freedom
    update_interval: int = 1  # epochs between target-distribution updates (and stop checks)
    tol: float = 0.001  # stop when fewer than this fraction of labels changed ...
    min_cluster_epochs: int = 5  # ... but never before this many clustering epochs
    cluster_tol: float | None = None  # also require each cluster's relative change below this
    reconstruction_weight: float = 0.0  # > 0 gives IDEC
    mixture: bool = False  # weighted Student-t mixture: weights pi_j and scales s_j (docstring)
    learn_scales: bool = True  # mixture scales trained with the centroids (else moment updates)
    train_encoder: bool = True  # False: self-training moves only the clustering layer
    update_weights: bool = True  # mixture weights re-estimated at each target update
    # Mixture only: after pretraining, a fixed linear map makes this initial cluster's latent
    # covariance the identity (the isotropic Student-t kernel then sees it as the input did).
    whiten_cluster: int | None = None
    # The pretrained embedding is rescaled (one factor) to this RMS spread per latent dimension
    # before clustering; None keeps the raw scale. The Student-t kernel has a fixed width (alpha),
    # so with inputs in [0, 1] the raw embedding is so small (measured RMS 0.08) that q is nearly
    # uniform and DEC merges well-separated groups (ARI 1.0 -> 0.71 on four blobs).
    latent_rms: float | None = 1.0
    predict_chunk: int = 32_768  # rows per chunk when predicting q for all stars
    kmeans_n_init: int = 4
    kmeans_sample: int = 20_000  # latent K-Means fitted on at most this many stars
    log_every_s: float = 5.0  # progress lines at most this often (plus first and last)

    def __post_init__(self) -> None:
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise OcdecError(f"DEC hidden widths must be positive integers, got {self.hidden}")
        for name in ("batch_size", "update_interval", "predict_chunk", "kmeans_n_init"):
            if int(getattr(self, name)) < 1:
                raise OcdecError(f"DEC setting {name} must be >= 1, got {getattr(self, name)}")
        for name in ("pretrain_epochs", "cluster_epochs", "min_cluster_epochs"):
            if int(getattr(self, name)) < 0:
                raise OcdecError(f"DEC setting {name} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not self.alpha > 0:
            raise OcdecError("DEC learning_rate and alpha must be > 0")
        if self.reconstruction_weight < 0:
            raise OcdecError("DEC reconstruction_weight must be >= 0")


@dataclass
class DecResult:
    q: np.ndarray  # (n, k) soft assignments, float32, rows sum to 1
    labels: np.ndarray  # (n,) argmax of q
    history: pd.DataFrame  # seed, phase, epoch, loss, label_change
    latent: np.ndarray  # (n, latent) embedding after clustering
    centroids: np.ndarray  # (k, latent) final centroids
    initial_centroids: np.ndarray  # (k, latent) the K-Means (or caller's) initial centroids
    initial_labels: np.ndarray  # (n,) argmax of q at the initial centroids
    # One row per stop check and cluster: epoch, cluster, n_before, n_after, n_in, n_out, change
    # ((n_in + n_out) / max(n_before, 1)). Lets a caller judge convergence of one small cluster.
    cluster_changes: pd.DataFrame = field(default_factory=pd.DataFrame)
    converged: bool = False  # the stopping rule fired before cluster_epochs ran out
    epochs_run: int = 0  # clustering epochs actually run
    seconds: dict[str, float] = field(default_factory=dict)  # pretrain, init, cluster
    # The trained model (DecModel): embed(x) and assign(z, alpha) place stars it was not trained on.
    model: DecModel | None = None


# --------------------------------------------------------------------------------------- model


class Autoencoder(nnx.Module):
    """Dense autoencoder: ReLU after every layer except the latent layer and the output layer.

    Weights start Glorot-uniform with zero biases, as in the Keras DEC the thesis used. All kernels
    come from a single ``jax.random.uniform`` draw: XLA compiles each random-number kernel
    separately, and one draw per layer (Flax's default) measured 8 to 10 s of CPU compilation for
    this six-layer network against under a second for one draw.
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...], key: jax.Array) -> None:
        dims = (n_features, *hidden)
        back = dims[::-1]
        zeros = nnx.initializers.zeros_init()
        rngs = nnx.Rngs(0)  # unused: both initialisers are deterministic

        def dense(a: int, b: int) -> nnx.Linear:
            return nnx.Linear(a, b, kernel_init=zeros, precision=PRECISION, rngs=rngs)

        self.encoder = nnx.List([dense(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)])
        self.decoder = nnx.List([dense(a, b) for a, b in zip(back[:-1], back[1:], strict=True)])
        layers = [*self.encoder, *self.decoder]
        sizes = [layer.in_features * layer.out_features for layer in layers]
        draws = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
        start = 0
        for layer, size in zip(layers, sizes, strict=True):
            limit = math.sqrt(6.0 / (layer.in_features + layer.out_features))
            shape = (layer.in_features, layer.out_features)
            layer.kernel[...] = limit * draws[start : start + size].reshape(shape)
            start += size

    @staticmethod
    def _run(layers: nnx.List, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(layers):
            x = layer(x)
            if i < len(layers) - 1:
                x = jax.nn.relu(x)
        return x

    def encode(self, x: jax.Array) -> jax.Array:
        return self._run(self.encoder, x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self._run(self.decoder, z)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


class DecModel(nnx.Module):
    """The pretrained autoencoder plus trainable cluster centroids in latent space.

    ``latent_scale`` (fixed, not trained) multiplies the encoder output: the Student-t kernel is
    not scale-free, so the embedding DEC clusters is brought to a set spread (see latent_rms).
    """

    def __init__(self, autoencoder: Autoencoder, centroids: jax.Array,
                 latent_scale: float = 1.0, mixture: bool = False,
                 learn_scales: bool = False) -> None:
        self.autoencoder = autoencoder
        self.centroids = nnx.Param(_on_device(centroids))
        self.latent_scale = nnx.Variable(_on_device(latent_scale))
        self.mixture = mixture  # static (part of the graph definition)
        if mixture:
            k = int(self.centroids[...].shape[0])
            # Weights are re-estimated from q at each target update; scales either trained with
            # the centroids (learn_scales) or re-estimated too.
            kind = nnx.Param if learn_scales else nnx.Variable
            self.log_scales = kind(_on_device(np.zeros(k)))
            dim = int(self.centroids[...].shape[1])
            self.latent_matrix = nnx.Variable(_on_device(np.eye(dim)))
            self.log_weights = nnx.Variable(_on_device(np.full(k, -math.log(k))))

    def embed(self, x: jax.Array) -> jax.Array:
        return self.transform(self.autoencoder.encode(x))

    def transform(self, z_raw: jax.Array) -> jax.Array:
        """The encoder output as the clustering layer sees it (fixed scale / linear map)."""
        z = z_raw * self.latent_scale[...]
        return jnp.matmul(z, self.latent_matrix[...], precision=PRECISION) if self.mixture else z

    def assign(self, z: jax.Array, alpha: float) -> jax.Array:
        if self.mixture:
            return mixture_assignment(z, self.centroids[...], self.log_scales[...],
                                      self.log_weights[...], alpha)
        return soft_assignment(z, self.centroids[...], alpha)


def soft_assignment(z: jax.Array, centroids: jax.Array, alpha: float) -> jax.Array:
    """Student-t kernel q_ij = (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2), rows normalised."""
    d2 = jnp.sum((z[:, None, :] - centroids[None, :, :]) ** 2, axis=-1)
    # The exponent and row normalisation are done in log space: stable for far-away stars.
    logits = -0.5 * (alpha + 1.0) * jnp.log1p(d2 / alpha)
    return jax.nn.softmax(logits, axis=-1)


def mixture_assignment(z: jax.Array, centroids: jax.Array, log_scales: jax.Array,
                       log_weights: jax.Array, alpha: float) -> jax.Array:
    """Weighted Student-t mixture posterior (module docstring), rows normalised in log space."""
    d2 = jnp.sum((z[:, None, :] - centroids[None, :, :]) ** 2, axis=-1)
    dim = z.shape[-1]
    s2 = jnp.exp(2.0 * log_scales)
    logits = (log_weights - dim * log_scales
              - 0.5 * (alpha + dim) * jnp.log1p(d2 / (alpha * s2)))
    return jax.nn.softmax(logits, axis=-1)


def mixture_statistics(latent: np.ndarray, q: np.ndarray, centroids: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """M-step of the mixture layer: log mixing weights (mean q) and log scales (q-weighted RMS
    distance to each centroid per latent dimension), float32."""
    q = np.asarray(q, np.float64)
    w = q.sum(axis=0)
    d2 = ((latent[:, None, :].astype(np.float64) - centroids[None].astype(np.float64)) ** 2).sum(-1)
    s2 = (q * d2).sum(axis=0) / np.maximum(w, 1e-12) / latent.shape[1]
    weights = np.maximum(w / max(w.sum(), 1e-12), 1e-6)
    return (np.log(weights / weights.sum()).astype(np.float32),
            (0.5 * np.log(np.maximum(s2, 1e-8))).astype(np.float32))


def target_distribution(q: np.ndarray) -> np.ndarray:
    """DEC's target p_ij = (q_ij^2 / f_j) / sum_j'(q_ij'^2 / f_j'), with f_j = sum_i q_ij.

    Plain float32 numpy: cheap at any n (n x k), deterministic, and it needs no compilation.
    """
    q = np.asarray(q, dtype=np.float32)
    weight = q**2 / q.sum(axis=0)
    return (weight / weight.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.partial(nnx.jit, static_argnames=("n_features", "hidden", "learning_rate"))
def _new_autoencoder(
    key: jax.Array, n_features: int, hidden: tuple[int, ...], learning_rate: float
) -> tuple[Autoencoder, nnx.Optimizer]:
    # Built under jit: one compilation instead of one per eager initialiser and optimizer slot.
    TRACE_COUNTS["new_autoencoder"] += 1
    model = Autoencoder(n_features, hidden, key)
    return model, nnx.Optimizer(model, _adam(learning_rate), wrt=nnx.Param)


@functools.partial(nnx.jit, static_argnames=("learning_rate",))
def _new_optimizer(model: DecModel, learning_rate: float) -> nnx.Optimizer:
    TRACE_COUNTS["new_optimizer"] += 1
    return nnx.Optimizer(model, _adam(learning_rate), wrt=nnx.Param)


@dataclass(frozen=True)
class _Adam:
    """``optax.adam(learning_rate)``, described by its rate: optimizers with the same rate have
    equal graph definitions (one compilation), and the definition's repr says what the program
    runs (optax's own transformation is a pair of closures, whose repr is their addresses), so
    that stored programs can be keyed by it (:func:`_graphdef_fingerprint`)."""

    learning_rate: float

    def init(self, params: Any) -> Any:
        return _optax_adam(self.learning_rate).init(params)

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        return _optax_adam(self.learning_rate).update(updates, state, params, **extra)


@functools.lru_cache(maxsize=16)
def _optax_adam(learning_rate: float) -> optax.GradientTransformation:
    return optax.adam(learning_rate)


def _adam(learning_rate: float) -> _Adam:
    return _Adam(float(learning_rate))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _graphdef_fingerprint(graphdef: nnx.GraphDef) -> str:
    """A graph definition as text that is the same in every process: its repr without object
    addresses (the functions it holds are named; the optimizer is an :class:`_Adam`)."""
    return _ADDRESS.sub("", repr(graphdef))


# ------------------------------------------------------------------------------ jitted programs


def _loss(
    model: Autoencoder | DecModel,
    xb: jax.Array,
    pb: jax.Array,
    phase: str,
    alpha: float,
    reconstruction_weight: float,
    mb: jax.Array | None = None,
) -> jax.Array:
    def mean(v: jax.Array) -> jax.Array:
        # Per-star values averaged over the batch; with a mask, over its real (unmasked) rows.
        return v.mean() if mb is None else jnp.sum(v * mb) / jnp.maximum(jnp.sum(mb), 1.0)

    if phase == "pretrain":
        assert isinstance(model, Autoencoder)
        if mb is None:
            return jnp.mean((model(xb) - xb) ** 2)
        return mean(jnp.mean((model(xb) - xb) ** 2, axis=-1))
    assert isinstance(model, DecModel)
    z_raw = model.autoencoder.encode(xb)
    if phase == "cluster_frozen":
        z_raw = jax.lax.stop_gradient(z_raw)
    q = model.assign(model.transform(z_raw), alpha)
    # KL(P || Q) per star, averaged over the batch; 0 log 0 = 0.
    kl = mean(jnp.sum(jax.scipy.special.xlogy(pb, pb) - pb * jnp.log(q + 1e-12), axis=-1))
    if reconstruction_weight > 0:
        rec = (model.autoencoder.decode(z_raw) - xb) ** 2
        kl = kl + reconstruction_weight * (jnp.mean(rec) if mb is None
                                           else mean(jnp.mean(rec, axis=-1)))
    return kl


@stored_program(static_argnames=("n", "batch_size"))
def _epoch_batches(key: jax.Array, epoch: int, *, n: int, batch_size: int) -> jax.Array:
    """Row indices of one epoch's mini-batches: a fresh permutation from the phase's ``key`` with
    the epoch folded in, the remainder dropped.

    A program of its own (not inside the epoch) so that both phases share one compiled shuffle;
    the fold is made inside it (eagerly it took two more programs and two dispatches an epoch).
    """
    TRACE_COUNTS["epoch_batches"] += 1
    n_batches = n // batch_size
    key = jax.random.fold_in(key, epoch)
    return jax.random.permutation(key, n)[: n_batches * batch_size].reshape(n_batches, batch_size)


def _train_epoch(
    state: nnx.State,
    x: jax.Array,
    target: jax.Array,
    key: jax.Array,
    epoch: int,
    *,
    graphdef: nnx.GraphDef,
    batch_size: int,
    phase: str,
    alpha: float,
    reconstruction_weight: float,
    mask: jax.Array | None = None,
) -> tuple[nnx.State, jax.Array]:
    """One epoch: mini-batches shuffled by the phase's ``key`` with ``epoch`` folded in, all
    steps in one jitted lax.scan."""
    batches = _epoch_batches(key, epoch, n=x.shape[0], batch_size=batch_size)
    return _scan_batches(state, x, target, mask, batches, graphdef=graphdef, phase=phase,
                         alpha=alpha, reconstruction_weight=reconstruction_weight)


@stored_program(static_argnames=("graphdef", "phase", "alpha", "reconstruction_weight"),
                fingerprints={"graphdef": lambda g: _graphdef_fingerprint(g)})
def _scan_batches(
    state: nnx.State,
    x: jax.Array,
    target: jax.Array,
    mask: jax.Array | None,
    batches: jax.Array,
    *,
    graphdef: nnx.GraphDef,
    phase: str,
    alpha: float,
    reconstruction_weight: float,
) -> tuple[nnx.State, jax.Array]:
    """Every mini-batch of an epoch as one step of a lax.scan: no Python between batches.

    ``mask`` (padded inputs) gives masked rows no weight; None (an empty pytree, so its own
    compiled program) is the plain unweighted mean.
    """
    TRACE_COUNTS[f"train_epoch_{phase}"] += 1

    def step(state: nnx.State, idx: jax.Array) -> tuple[nnx.State, jax.Array]:
        model, optimizer = nnx.merge(graphdef, state)
        loss_fn = functools.partial(_loss, phase=phase, alpha=alpha,
                                    reconstruction_weight=reconstruction_weight,
                                    mb=None if mask is None else mask[idx])
        loss, grads = nnx.value_and_grad(loss_fn)(model, x[idx], target[idx])
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    state, losses = jax.lax.scan(step, state, batches)
    return state, jnp.mean(losses)


@stored_program(static_argnames=("graphdef", "chunk", "alpha"),
                fingerprints={"graphdef": lambda g: _graphdef_fingerprint(g)})
def _predict(
    state: nnx.State, x: jax.Array, *, graphdef: nnx.GraphDef, chunk: int, alpha: float
) -> tuple[jax.Array, jax.Array]:
    """Latent z and soft assignment q of every row, computed chunk by chunk (x padded to chunks)."""
    TRACE_COUNTS["predict"] += 1
    model = nnx.merge(graphdef, state)
    xs = x.reshape(-1, chunk, x.shape[-1])

    def one(xc: jax.Array) -> tuple[jax.Array, jax.Array]:
        z = model.embed(xc)
        return z, model.assign(z, alpha)

    z, q = jax.lax.map(one, xs)
    return z.reshape(x.shape[0], -1), q.reshape(x.shape[0], -1)


# ------------------------------------------------------------------------------------ helpers

_device_logged = False


def _log_device_once() -> None:
    global _device_logged
    if not _device_logged:
        _device_logged = True
        log.info("JAX backend %s, devices %s", jax.default_backend(), jax.devices())


def _on_device(x: np.ndarray | float) -> jax.Array:
    """A host value on the JAX device as float32 (numpy converts it, rounding as JAX does).
    ``jnp.asarray`` of a host array and ``jnp.zeros``, ``eye`` or ``full`` each run a small
    program of their own (an identity, a conversion, a broadcast), traced, lowered and loaded
    from the compilation cache once per process and shape (with the random keys' programs, 19 of
    a default-method job's 26), for values a transfer gives the same, bit for bit. ``np.array``
    copies: on the CPU backend ``device_put`` may share a float32 array's memory, and the caller's
    array must not change under the device value."""
    return jax.device_put(np.array(x, dtype=np.float32))


def _padded(x: np.ndarray, chunk: int) -> tuple[jax.Array, int]:
    """x padded with zero rows to a multiple of ``chunk`` (chunk shrunk for small inputs)."""
    chunk = min(chunk, x.shape[0])
    pad = (-x.shape[0]) % chunk
    return _on_device(np.pad(x, ((0, pad), (0, 0)))), chunk


class _Predictor:
    """The one predict program (``_predict``) bound to one input, padded to whole chunks once:
    calling it gives latent z and q of the input's rows under the model's current state."""

    def __init__(self, x: np.ndarray, chunk: int, alpha: float) -> None:
        self.rows = x.shape[0]
        self.xp, self.chunk = _padded(x, chunk)
        self.alpha = float(alpha)

    def __call__(self, model: DecModel) -> tuple[np.ndarray, np.ndarray]:
        graphdef, state = nnx.split(model)
        z, q = _predict(state, self.xp, graphdef=graphdef, chunk=self.chunk, alpha=self.alpha)
        return np.asarray(z)[: self.rows], np.asarray(q)[: self.rows]


def predict(model: DecModel, x: np.ndarray, alpha: float, chunk: int = 32_768
            ) -> tuple[np.ndarray, np.ndarray]:
    """Latent z and soft assignment q of every row of ``x`` under a trained model (for example
    ``DecResult.model`` on stars it was not trained on), with fit_dec's own chunked program."""
    return _Predictor(np.ascontiguousarray(x, dtype=np.float32), chunk, alpha)(model)


def kmeans_centroids(latent: np.ndarray, n_clusters: int, seed: int, *, n_init: int = 4,
                     sample: int = 20_000) -> np.ndarray:
    """Default initialisation: scikit-learn K-Means on a seeded sample of at most ``sample``."""
    from ocdec.methods.kmeans import fit_kmeans

    _, centroids, _ = fit_kmeans(latent, n_clusters, seed, n_init=n_init, fit_sample=sample)
    return centroids.astype(np.float32)


def centroids_from_labels(latent: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Mean latent vector of each label 0..n_clusters-1: seeds DEC with a caller's grouping (for
    example a group of stars picked around a density peak in proper motion and parallax)."""
    labels = np.asarray(labels)
    out = np.zeros((n_clusters, latent.shape[1]), dtype=np.float32)
    for j in range(n_clusters):
        sel = labels == j
        if not sel.any():
            raise OcdecError(f"initial label {j} has no stars; cannot place its centroid")
        out[j] = latent[sel].mean(axis=0)
    return out


def _cluster_change_rows(epoch: int, before: np.ndarray, after: np.ndarray, k: int) -> list[dict]:
    rows = []
    for j in range(k):
        was, now = before == j, after == j
        n_in, n_out = int((now & ~was).sum()), int((was & ~now).sum())
        n_before = int(was.sum())
        rows.append({"epoch": epoch, "cluster": j, "n_before": n_before, "n_after": int(now.sum()),
                     "n_in": n_in, "n_out": n_out, "change": (n_in + n_out) / max(n_before, 1)})
    return rows


def _progress(settings: DecSettings, seed: int, phase: str, total: int) -> Progress:
    """Epochs of one DEC phase: a bar on a terminal (gone when done: the seed's summary line
    stays), a log line every ``log_every_s`` otherwise."""
    return Progress(f"DEC seed {seed} {phase}", total, unit="epoch",
                    every_s=settings.log_every_s, logger=log, leave=False)


# ---------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class SeedKeys:
    """Every random key of one DEC run, derived from its seed in this one place: the autoencoder's
    initial weights, the pretraining shuffles and the self-training shuffles (one key per epoch
    is folded in from each)."""

    init: jax.Array
    pretrain: jax.Array
    cluster: jax.Array

    @classmethod
    def from_seed(cls, seed: int) -> SeedKeys:
        # as uint32, the low 32 bits that jax.random.key keeps of a Python int: a traced int32
        # argument would overflow from 2**31
        return cls(*_seed_keys(np.uint32(seed % 2**32)))


@stored_program()
def _seed_keys(seed: np.uint32) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The seed's key split in three, in one program (eager: four, with the unstacking)."""
    init, pretrain, cluster = jax.random.split(jax.random.key(seed), 3)
    return init, pretrain, cluster


def pretrain_autoencoder(
    x: np.ndarray, settings: DecSettings, seed: int, history: list[dict] | None = None,
    mask: np.ndarray | None = None, keys: SeedKeys | None = None,
) -> Autoencoder:
    """A fresh autoencoder (weights from ``keys``, by default those of ``seed``) trained on the
    reconstruction MSE; ``seed`` labels the history rows and progress lines."""
    _log_device_once()
    x = np.ascontiguousarray(x, dtype=np.float32)
    keys = SeedKeys.from_seed(seed) if keys is None else keys
    model, optimizer = _new_autoencoder(keys.init, n_features=x.shape[1],
                                        hidden=tuple(int(h) for h in settings.hidden),
                                        learning_rate=float(settings.learning_rate))
    if settings.pretrain_epochs == 0:  # the default method's linear encoder: set up, not trained
        return model
    graphdef, state = nnx.split((model, optimizer))
    xj = _on_device(x)
    mj = None if mask is None else _on_device(mask)
    batch = min(settings.batch_size, x.shape[0])
    with _progress(settings, seed, "pretrain", settings.pretrain_epochs) as progress:
        for epoch in range(1, settings.pretrain_epochs + 1):
            state, loss = _train_epoch(state, xj, xj, keys.pretrain, epoch,
                                       graphdef=graphdef, batch_size=batch, phase="pretrain",
                                       alpha=1.0, reconstruction_weight=0.0, mask=mj)
            loss = float(loss)
            if not math.isfinite(loss):
                raise OcdecError(
                    f"DEC pretraining diverged at epoch {epoch} (loss {loss}); "
                    "check the features for extreme values or lower the learning rate")
            progress.update(1, loss=loss)
            if history is not None:
                history.append({"seed": seed, "phase": "pretrain", "epoch": epoch, "loss": loss,
                                "label_change": math.nan})
    nnx.update((model, optimizer), state)
    return model


def _checked_input(x: np.ndarray, n_clusters: int, init_assignment: np.ndarray | None,
                   pad_to: int | None
                   ) -> tuple[np.ndarray, int, np.ndarray | None, np.ndarray | None]:
    """fit_dec's input as float32 (padded to ``pad_to`` rows), its real row count, the initial
    assignment as float64 and the padding mask (1 for real rows; None without padding)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise OcdecError(f"DEC needs a 2-d feature array with at least 2 rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise OcdecError("DEC features contain NaN or infinite values; drop or fill those stars")
    if not 1 <= n_clusters <= x.shape[0]:
        raise OcdecError(f"DEC n_clusters must be between 1 and {x.shape[0]}, got {n_clusters}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    if init_assignment is not None:
        init_assignment = np.asarray(init_assignment, dtype=np.float64)
        if init_assignment.shape != (n, n_clusters) or not np.isfinite(init_assignment).all() \
                or (init_assignment < 0).any() or (init_assignment.sum(axis=0) <= 0).any():
            raise OcdecError(f"initial assignment must be non-negative with shape "
                             f"{(n, n_clusters)} and no empty cluster")
    mask: np.ndarray | None = None
    if pad_to is not None:
        if pad_to < n:
            raise OcdecError(f"DEC pad_to ({pad_to}) is smaller than the input ({n} rows)")
        mask = np.zeros(pad_to, np.float32)
        mask[:n] = 1.0
        x = np.pad(x, ((0, pad_to - n), (0, 0)))
    return x, n, init_assignment, mask


def _scaled_latent(model: DecModel, latent0: np.ndarray, settings: DecSettings,
                   init_assignment: np.ndarray | None) -> np.ndarray:
    """Fix the map from the encoder output to the clustering layer's space (whitened on the
    initial cluster, or rescaled to ``latent_rms``) in ``model``; the embedding under it."""
    if settings.mixture and settings.whiten_cluster is not None and init_assignment is not None:
        w = init_assignment[:, settings.whiten_cluster]
        w = w / w.sum()
        mu = w @ latent0.astype(np.float64)
        d = latent0.astype(np.float64) - mu
        cov = (d * w[:, None]).T @ d + 1e-9 * np.eye(d.shape[1])
        # z -> z L^-T with L L^T = cov: the cluster's latent covariance becomes the identity.
        whitener = np.linalg.inv(np.linalg.cholesky(cov)).T
        model.latent_matrix[...] = _on_device(whitener)
        return (latent0.astype(np.float64) @ whitener).astype(np.float32)
    if settings.latent_rms is not None:
        rms = float(np.sqrt(latent0.var(axis=0).mean()))
        scale = settings.latent_rms / rms if rms > 0 else 1.0
        model.latent_scale[...] = _on_device(scale)
        return latent0 * np.float32(scale)
    return latent0


def _initial_centroids(latent0: np.ndarray, n_clusters: int, seed: int, settings: DecSettings,
                       init_centroids_fn: InitCentroidsFn | None,
                       init_assignment: np.ndarray | None) -> np.ndarray:
    """The caller's assignment's weighted latent means, the caller's function's or K-Means'."""
    if init_assignment is not None:
        w = init_assignment / init_assignment.sum(axis=0)
        centroids0 = (w.T @ latent0.astype(np.float64)).astype(np.float32)
    elif init_centroids_fn is None:
        centroids0 = kmeans_centroids(latent0, n_clusters, seed, n_init=settings.kmeans_n_init,
                                      sample=settings.kmeans_sample)
    else:
        centroids0 = np.asarray(init_centroids_fn(latent0, n_clusters, seed), dtype=np.float32)
    if centroids0.shape != (n_clusters, latent0.shape[1]) or not np.isfinite(centroids0).all():
        raise OcdecError(f"initial centroids must be finite with shape "
                         f"{(n_clusters, latent0.shape[1])}, got {centroids0.shape}")
    return centroids0


def _start_clustering_layer(model: DecModel, latent0: np.ndarray, centroids0: np.ndarray,
                            settings: DecSettings, init_assignment: np.ndarray | None) -> None:
    """Centroids and, for the mixture layer, weights and scales at their initial values."""
    model.centroids[...] = _on_device(centroids0)
    if settings.mixture:
        k = centroids0.shape[0]
        start = (init_assignment if init_assignment is not None
                 else np.eye(k)[np.argmin(
                     ((latent0[:, None, :] - centroids0[None]) ** 2).sum(-1), axis=1)])
        log_w, log_s = mixture_statistics(latent0, start, centroids0)
        model.log_weights[...] = _on_device(log_w)
        model.log_scales[...] = _on_device(log_s)


def _target(q_all: np.ndarray, n: int) -> jax.Array:
    """DEC's target for the first ``n`` rows; padded rows get their own q as target (the mask
    keeps them out of the loss)."""
    p = np.asarray(q_all, dtype=np.float32).copy()
    p[:n] = target_distribution(q_all[:n])
    return _on_device(p)


@dataclass
class _SelfTraining:
    """Where self-training stands: the latest embedding (every row, padding included), q and
    labels of the real rows, and the stop checks so far."""

    latent: np.ndarray
    q: np.ndarray
    labels: np.ndarray
    initial_labels: np.ndarray
    change_rows: list[dict] = field(default_factory=list)
    converged: bool = False
    epochs_run: int = 0


def _target_update(model: DecModel, predictor: _Predictor, n: int, settings: DecSettings,
                   run: _SelfTraining, epoch: int) -> tuple[float, jax.Array]:
    """A target update and stop check on ``model`` (in sync with training): the mixture layer's
    M-step, then q, labels and the stopping rule in ``run``; returns the fraction of labels
    changed and the new target."""
    if settings.mixture:
        # M-step of the mixture layer, then q under the new weights and scales.
        latent, q_all = predictor(model)
        log_w, log_s = mixture_statistics(latent[:n], q_all[:n], np.asarray(model.centroids[...]))
        if settings.update_weights:
            model.log_weights[...] = _on_device(log_w)
        if not settings.learn_scales:
            model.log_scales[...] = _on_device(log_s)
    run.latent, q_all = predictor(model)
    run.q = q_all[:n]
    new_labels = run.q.argmax(axis=1)
    change = float(np.mean(new_labels != run.labels))
    rows = _cluster_change_rows(epoch, run.labels, new_labels, run.q.shape[1])
    run.change_rows.extend(rows)
    run.labels = new_labels
    worst = max(r["change"] for r in rows)
    if epoch >= settings.min_cluster_epochs and change < settings.tol and (
        settings.cluster_tol is None or worst < settings.cluster_tol
    ):
        run.converged = True
    return change, _target(q_all, n)


def _self_train(model: DecModel, x: np.ndarray, n: int, settings: DecSettings, seed: int,
                key: jax.Array, predictor: _Predictor, mask: np.ndarray | None,
                history: list[dict]) -> _SelfTraining:
    """Train the clustering layer (and the encoder, ``train_encoder``) on KL(P || Q), the target
    updated every ``update_interval`` epochs, until the stopping rule or ``cluster_epochs``."""
    optimizer = _new_optimizer(model, learning_rate=float(settings.learning_rate))
    graphdef, state = nnx.split((model, optimizer))
    xj = _on_device(x)
    mj = None if mask is None else _on_device(mask)
    batch = min(settings.batch_size, x.shape[0])
    latent, q_all = predictor(model)
    labels = q_all[:n].argmax(axis=1)
    run = _SelfTraining(latent=latent, q=q_all[:n], labels=labels, initial_labels=labels)
    target = _target(q_all, n)
    with _progress(settings, seed, "cluster", settings.cluster_epochs) as progress:
        for epoch in range(1, settings.cluster_epochs + 1):
            state, loss = _train_epoch(
                state, xj, target, key, epoch, graphdef=graphdef,
                batch_size=batch, phase="cluster" if settings.train_encoder else "cluster_frozen",
                alpha=float(settings.alpha),
                reconstruction_weight=float(settings.reconstruction_weight), mask=mj)
            loss = float(loss)
            if not math.isfinite(loss):
                raise OcdecError(f"DEC clustering diverged at epoch {epoch} (loss {loss})")
            run.epochs_run = epoch
            last = epoch == settings.cluster_epochs
            change = math.nan
            if epoch % settings.update_interval == 0 or last:
                nnx.update((model, optimizer), state)
                change, target = _target_update(model, predictor, n, settings, run, epoch)
                if settings.mixture:  # the M-step changed the model's weights or scales
                    state = nnx.state((model, optimizer))
            history.append({"seed": seed, "phase": "cluster", "epoch": epoch, "loss": loss,
                            "label_change": change})
            fields: dict[str, object] = {"loss": loss}
            if not math.isnan(change):
                fields["label_change"] = f"{100 * change:.4g}%"
            progress.update(1, **fields)
            if run.converged:
                break
    if settings.cluster_epochs == 0:
        nnx.update((model, optimizer), state)
    return run


def fit_dec(
    x: np.ndarray,
    n_clusters: int,
    settings: DecSettings,
    seed: int,
    init_centroids_fn: InitCentroidsFn | None = None,
    *,
    init_assignment: np.ndarray | None = None,
    pad_to: int | None = None,
) -> DecResult:
    """Pretrain, initialise the centroids, self-train; see the module docstring.

    ``init_centroids_fn(latent, n_clusters, seed) -> (n_clusters, latent_dim)`` replaces the default
    K-Means initialisation (``latent`` is the pretrained embedding of ``x``); use
    :func:`centroids_from_labels` to seed the clusters from a grouping of the stars.
    ``init_assignment`` (n, n_clusters), soft weights of each star in each cluster, replaces both:
    centroids are the weighted latent means and, with ``settings.mixture``, the mixing weights and
    scales start at its weighted moments. ``pad_to`` (>= n) pads the input with masked rows so that
    inputs of different sizes up to it share compiled programs.
    """
    x, n, init_assignment, mask = _checked_input(x, n_clusters, init_assignment, pad_to)
    keys = SeedKeys.from_seed(seed)
    seconds: dict[str, float] = {}
    history: list[dict] = []

    t0 = time.perf_counter()
    autoencoder = pretrain_autoencoder(x, settings, seed, history, mask=mask, keys=keys)
    predictor = _Predictor(x, settings.predict_chunk, settings.alpha)
    # The embedding comes from the same compiled predict program as later q (dummy centroids).
    model = DecModel(autoencoder, np.zeros((n_clusters, settings.hidden[-1]), np.float32),
                     mixture=settings.mixture, learn_scales=settings.learn_scales)
    latent0 = _scaled_latent(model, predictor(model)[0][:n], settings, init_assignment)
    seconds["pretrain"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    centroids0 = _initial_centroids(latent0, n_clusters, seed, settings, init_centroids_fn,
                                    init_assignment)
    seconds["init"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _start_clustering_layer(model, latent0, centroids0, settings, init_assignment)
    run = _self_train(model, x, n, settings, seed, keys.cluster, predictor, mask, history)
    seconds["cluster"] = time.perf_counter() - t0
    log.info("DEC seed %d: %d stars, k=%d, %d clustering epochs, %s, %.2f s (%s %.2f s)",
             seed, n, n_clusters, run.epochs_run,
             "converged" if run.converged else "epoch limit reached", sum(seconds.values()),
             "pretrain" if settings.pretrain_epochs else "model set-up", seconds["pretrain"])
    return DecResult(
        q=run.q.astype(np.float32),
        labels=run.labels,
        history=pd.DataFrame(history, columns=HISTORY_COLUMNS),
        latent=run.latent[:n],
        centroids=np.asarray(model.centroids[...]),
        initial_centroids=centroids0,
        initial_labels=run.initial_labels,
        cluster_changes=pd.DataFrame(run.change_rows),
        converged=run.converged,
        epochs_run=run.epochs_run,
        seconds=seconds,
        model=model,
    )
