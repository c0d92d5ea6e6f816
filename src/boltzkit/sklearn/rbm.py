"""scikit-learn estimators over boltzkit's RBMs: a drop-in ``BernoulliRBM`` and a
Gaussian-Bernoulli ``GaussianRBM``, both transformers (``transform`` = ``E[h | x]``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import onednn
from ..estimate.evaluate import binary_view
from ..estimate.multipath import multipath_log_partition
from ..estimate.pseudo_likelihood import pseudo_log_likelihood
from ..seeding import make_generator
from ..train.fit import Fit
from ._core import as_tensor, in_memory_dataset, run_config, seed_from

ACCEPT_SPARSE = "csr"
DTYPES = (np.float64, np.float32)


@dataclass
class LikelihoodEstimate:
    """Average log-likelihood of examples by forward AIS, with its spread and a verdict.

    ``per_example = -F(v) - log Z``; ``low`` / ``high`` carry the ``+-3 sigma`` interval
    of ``log Z`` over to the mean. Forward AIS is a stochastic *lower* bound on ``log Z``
    (so an upper bound on the likelihood in expectation) that can miss modes it never
    visits while its interval stays narrow; ``verdict`` (from several annealing paths and
    the data's lower bound on ``log Z``) says whether there is a sign of that.
    """

    per_example: np.ndarray
    mean: float
    low: float
    high: float
    log_z: float
    ess: float
    runs: int
    betas: int
    verdict: str


class _RBMTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """The estimator machinery shared by the RBM transformers (see :class:`BernoulliRBM`)."""

    _visible = "bernoulli"
    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "method": [StrOptions({"cd", "pcd", "pt"})],
        "k": [Interval(Integral, 1, None, closed="left")],
        "centered": ["boolean"],
        "optimizer": [dict, None],
        "schedule": [dict, None],
        "device": [str],
        "product_dtype": [StrOptions({"float32", "bfloat16"})],
        "product_kernel": [StrOptions({"auto", "torch", "onednn"})],
    }

    def __init__(self, n_components=256, *, learning_rate=0.1, batch_size=10, n_iter=10, verbose=0,
                 random_state=None, method="pcd", k=1, centered=False, optimizer=None, schedule=None,
                 device="cpu", product_dtype="float32", product_kernel="auto"):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.centered = centered
        self.optimizer = optimizer
        self.schedule = schedule
        self.device = device
        self.product_dtype = product_dtype
        self.product_kernel = product_kernel

    # ------------------------------------------------------------------ training

    def _config(self, seed: int, epochs: int):
        """This estimator's keywords as a run config (one place turns them into training)."""
        return run_config(type(self).__name__, {
            "seed": seed,
            "device": self.device,
            "model": {"type": "rbm", "n_hidden": self.n_components, "visible": self._visible,
                      "centered": self.centered},
            "train.method": self.method,
            "train.k": self.k,
            "train.epochs": max(epochs, 1),
            "train.batch_size": self.batch_size,
            "train.gradient": "auto",
            "train.product_dtype": self.product_dtype,
            "train.product_kernel": self.product_kernel,
            "train.optimizer": dict(self.optimizer) if self.optimizer else
            {"name": "sgd", "lr": self.learning_rate},
            "train.schedule": dict(self.schedule) if self.schedule else {"name": "constant"},
            # the per-epoch metrics cost time; only verbose output shows them
            "train.metrics_examples": 1000 if self.verbose else 0,
        })

    _keeps_reference = False

    def _session(self, X, seed: int, epochs: int) -> Fit:
        """A training session on ``X``: a fresh model, or this estimator's where fitted (its
        optimizer's state carried over, with the learning rate the parameters now say)."""
        x = as_tensor(X, torch.float32)
        config = self._config(seed, epochs)
        session = Fit(config, in_memory_dataset(x))
        if hasattr(self, "rbm_"):
            session.model.load_state_dict(self.rbm_.state_dict())
            step = session.train_step()
            step.load_state_dict(self._step_state)
            rate = config.train.optimizer.lr  # set_params may have changed it since
            for group in step.optimizer.param_groups:
                group["lr"] = rate
            step.schedule.base_lrs = [rate] * len(step.optimizer.param_groups)
        elif self._keeps_reference:
            # what log_likelihood's AIS starts from and bounds log Z with: a binary sample of
            # at most 5,000 examples drawn at random from the first data seen (uint8)
            g = make_generator(seed, "sklearn.reference")
            rows = torch.randperm(len(x), generator=g)[:5000]
            self._reference = binary_view(x[rows].clamp(0, 1), g).to(torch.uint8)
        self._session_params = self.get_params()
        return session

    def fit(self, X, y=None):
        """Train on ``X`` (``(n_samples, n_features)``, dense or sparse) for ``n_iter`` epochs
        of mini-batches of ``batch_size``, drawn in a fresh random order each epoch.

        Returns:
            self
        """
        self._validate_params()
        X = validate_data(self, X, accept_sparse=ACCEPT_SPARSE, dtype=DTYPES)
        for name in ("rbm_", "_step_state", "random_state_", "_live", "_reference"):
            self.__dict__.pop(name, None)  # a new fit starts over
        session = self._session(X, seed_from(self.random_state), self.n_iter)
        if self.n_iter > 0:
            started = time.perf_counter()

            def report(epoch: int, metrics: dict) -> None:
                nonlocal started
                if self.verbose:
                    print(f"[{type(self).__name__}] Iteration {epoch + 1}, pseudo-likelihood = "
                          f"{metrics.get('train_pseudo_log_likelihood', float('nan')):.2f} (exact, first "
                          f"{min(len(X), 1000)} examples), time = {time.perf_counter() - started:.2f}s")
                started = time.perf_counter()

            session.run(on_epoch_end=report)
        self._keep(session, X.dtype)
        return self

    def partial_fit(self, X, y=None):
        """One update from the batch ``X`` (as scikit-learn's ``partial_fit``): the model,
        the optimizer's state and the persistent chains carry over between calls.

        Returns:
            self
        """
        self._validate_params()
        first = not hasattr(self, "rbm_")
        X = validate_data(self, X, accept_sparse=ACCEPT_SPARSE, dtype=DTYPES, reset=first)
        if not hasattr(self, "random_state_"):
            self.random_state_ = check_random_state(self.random_state)
        # one session serves every later call (it is rebuilt from the saved state after
        # pickling or fit): an update then costs what the update costs
        session = self.__dict__.get("_live")
        if session is None or self._session_params != self.get_params():  # set_params since: rebuild
            self._keep_step_state()
            session = self._session(X, seed_from(self.random_state_), 1)
        self._live = session
        step, model = session.train_step(), session.model.train()
        step(model, as_tensor(X, torch.float32, session.device))
        self._keep(session, X.dtype)
        return self

    def _keep_step_state(self) -> None:
        live = self.__dict__.pop("_live", None)
        if live is not None:
            self._step_state = live.train_step().state_dict()

    def __getstate__(self):
        state = super().__getstate__()
        live = state.pop("_live", None)  # holds generators, which do not pickle: keep their state
        if live is not None:
            state["_step_state"] = live.train_step().state_dict()
        return state

    def _keep(self, session: Fit, dtype) -> None:
        """Keep the trained model and what partial_fit continues from; export the
        scikit-learn attributes (the centered model's plain equivalent) in ``dtype``."""
        self.rbm_ = session.model.eval()
        self._step_state = session.train_step().state_dict()
        self._n_features_out = self.n_components
        plain = self.rbm_.without_offsets()

        def export(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(dtype)

        self.components_ = export(plain.weight.T)
        self.intercept_hidden_ = export(plain.hidden.bias)
        self.intercept_visible_ = export(plain.visible.bias)
        self.h_samples_ = export(self._chain_hidden())
        self.history_ = list(session.history)

    def _chain_hidden(self) -> torch.Tensor:
        """The persistent chains' hidden states ``(n_chains, n_components)`` (zeros for CD)."""
        sampler = self._step_state["objective"]
        hidden = sampler.get("hidden")
        if hidden is not None and hidden.dim() == 3:  # parallel tempering: the beta = 1 replica
            hidden = hidden[0]
        return hidden if hidden is not None else torch.zeros(self.batch_size, self.n_components)

    # ------------------------------------------------------------------ using the model

    def _tensor(self, X) -> tuple[torch.Tensor, np.dtype]:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=ACCEPT_SPARSE, dtype=DTYPES, reset=False)
        return as_tensor(X, torch.float32, self.rbm_.weight.device), X.dtype

    @torch.no_grad()
    def transform(self, X):
        """Hidden-unit probabilities ``E[h | x] = sigmoid(x W + c)``, ``(n_samples, n_components)``,
        in the dtype of ``X``."""
        x, dtype = self._tensor(X)
        return self.rbm_.hidden_mean(x).cpu().numpy().astype(dtype)

    @torch.no_grad()
    def free_energy(self, X) -> np.ndarray:
        """``F(x) = -log sum_h exp(-E(x, h))`` per example (up to the centered model's constant)."""
        x, _ = self._tensor(X)
        return self.rbm_.free_energy(x).cpu().numpy().astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class BernoulliRBM(_RBMTransformer):
    """A drop-in for :class:`sklearn.neural_network.BernoulliRBM`, trained by boltzkit.

    The constructor, methods and fitted attributes have scikit-learn's names and meaning:
    ``learning_rate`` scales the mean gradient of each mini-batch of ``batch_size``;
    ``n_iter`` passes over the data; the default is PCD-1 with ``batch_size`` persistent
    chains and plain SGD, as in scikit-learn. Differences, all on purpose: each pass
    draws the batches in a new random order (scikit-learn keeps the data order, in
    slices of even size; ours end with a smaller batch when ``batch_size`` does not divide
    the data), the visible biases start at the log-odds of the data means and the chains
    at the data (scikit-learn: zeros), ``h_samples_`` is zeros with ``method="cd"`` (no
    persistent chains), and training runs in float32 with PyTorch (outputs keep the dtype
    of ``X``). ``log_likelihood`` starts AIS from (a binary sample of at most 5,000 of) the
    data of ``fit`` or of the first ``partial_fit`` batch. ``components_`` etc. describe the
    plain (uncentered) equivalent model, so
    ``transform(X) == sigmoid(X @ components_.T + intercept_hidden_)``.

    Beyond scikit-learn:
        method: ``"cd"``, ``"pcd"`` or ``"pt"`` (parallel tempering).
        k: Gibbs sweeps (or tempering rounds) per update.
        centered: centered RBM (Melchior et al., 2016): better conditioned gradients.
        optimizer: a ``train.optimizer`` mapping, e.g. ``{"name": "sgd", "lr": 0.05,
            "momentum": 0.9}`` (replaces ``learning_rate``).
        schedule: a ``train.schedule`` mapping, e.g. ``{"name": "cosine"}``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        product_dtype: ``"bfloat16"`` multiplies in bfloat16 during training
            (``train.product_dtype``: 2.3x faster than scikit-learn on a CPU with AVX-512
            BF16, no likelihood cost measured; docs/RESULTS.md), ``"float32"`` otherwise.
        product_kernel: ``"onednn"`` runs the float32 products in oneDNN during training
            and in :meth:`log_likelihood`'s AIS (``train.product_kernel``: faster on AMD
            CPUs, where MKL takes its AVX2 path; CPU only), ``"torch"`` in torch's matmul,
            ``"auto"`` (default) oneDNN on AMD CPUs for products of at least 8 M
            multiply-adds (``n_components * n_features * batch_size``) and torch elsewhere.
    Methods beyond scikit-learn: :meth:`pseudo_log_likelihood` (exact, every unit),
    :meth:`log_likelihood` (AIS, with its interval and a verdict), :meth:`free_energy`.

    Fitted attributes: ``components_`` ``(n_components, n_features)``,
    ``intercept_hidden_``, ``intercept_visible_``, ``h_samples_`` (the persistent chains'
    hidden states), ``n_features_in_``, ``feature_names_in_`` (named columns only),
    ``rbm_`` (the :class:`boltzkit.RBM`), ``history_`` (per-epoch metrics).
    """

    _keeps_reference = True

    @torch.no_grad()
    def score_samples(self, X) -> np.ndarray:
        """scikit-learn's pseudo-likelihood convention: for each example one unit ``i``,
        drawn with ``random_state``, is flipped, and ``D * log sigmoid(F(x~) - F(x))`` is
        returned (``D`` = features): a noisy, unbiased estimate of the exact
        pseudo-log-likelihood that :meth:`pseudo_log_likelihood` computes."""
        check_is_fitted(self)
        v = validate_data(self, X, accept_sparse=ACCEPT_SPARSE, dtype=DTYPES, reset=False)
        v = v.toarray() if sp.issparse(v) else np.array(v)
        rng = check_random_state(self.random_state)
        index = (np.arange(v.shape[0]), rng.randint(0, v.shape[1], v.shape[0]))
        flipped = v.copy()
        flipped[index] = 1 - flipped[index]
        device = self.rbm_.weight.device
        fe = self.rbm_.free_energy(torch.as_tensor(v, dtype=torch.float32, device=device))
        fe_flipped = self.rbm_.free_energy(torch.as_tensor(flipped, dtype=torch.float32, device=device))
        difference = (fe_flipped - fe).cpu().numpy().astype(np.float64)
        return -v.shape[1] * np.logaddexp(0, -difference)

    @torch.no_grad()
    def pseudo_log_likelihood(self, X) -> np.ndarray:
        """The exact pseudo-log-likelihood ``sum_i log p(x_i | x_-i)`` per example (nats;
        every unit, no random draw), for binary ``X``."""
        x, _ = self._tensor(X)
        return pseudo_log_likelihood(self.rbm_, x).cpu().numpy().astype(np.float64)

    def gibbs(self, v) -> np.ndarray:
        """One Gibbs step from ``v``: ``h ~ p(h | v)``, then ``v' ~ p(v | h)``; returns ``v'``
        as a boolean array (as scikit-learn does), drawn with ``random_state_``."""
        check_is_fitted(self)
        if not hasattr(self, "random_state_"):
            self.random_state_ = check_random_state(self.random_state)
        rng = self.random_state_
        v = np.asarray(v.toarray() if sp.issparse(v) else v, dtype=np.float64)
        p_h = 1 / (1 + np.exp(-(v @ self.components_.T.astype(np.float64) + self.intercept_hidden_)))
        h = rng.uniform(size=p_h.shape) < p_h
        p_v = 1 / (1 + np.exp(-(h @ self.components_.astype(np.float64) + self.intercept_visible_)))
        return rng.uniform(size=p_v.shape) < p_v

    @torch.no_grad()
    def log_likelihood(self, X, *, ais_runs: int = 100, ais_betas: int = 14501,
                       random_state=None) -> LikelihoodEstimate:
        """Log-likelihood of ``X`` (nats per example; grey levels are binarized once, seeded
        by ``random_state``, as ``boltzkit evaluate`` does) by forward AIS along several
        paths from the training data (:mod:`boltzkit.estimate.multipath`, as ``boltzkit
        evaluate`` does), with the chosen path's interval and ESS and the verdict (see
        :class:`LikelihoodEstimate`)."""
        x, _ = self._tensor(X)
        reference = getattr(self, "_reference", None)
        if reference is None:
            raise ValueError(f"{type(self).__name__}.log_likelihood needs the training sample that fit "
                             "keeps; this estimator was fitted by an earlier boltzkit: fit it again")
        seed = seed_from(random_state)
        x = binary_view(x, make_generator(seed, "sklearn.binarize", x.device))  # likelihoods of binary X
        generator = make_generator(seed, "sklearn.log_likelihood", x.device)
        kernel = onednn.resolve(self.product_kernel, x.device, "product_kernel")
        multi = multipath_log_partition(self.rbm_, reference.float(), ais_betas, ais_runs, generator,
                                        product_kernel=kernel)
        ais, log_z = multi.best, multi.log_z
        per_example = (-self.rbm_.free_energy(x).to(torch.float64) - log_z).cpu().numpy()
        mean = float(per_example.mean())
        low, high = multi.interval
        return LikelihoodEstimate(per_example, mean, mean + log_z - high, mean + log_z - low, log_z,
                                  ais.ess, ais.runs, ais.n_betas, multi.verdict)


class GaussianRBM(_RBMTransformer):
    """A Gaussian-Bernoulli RBM transformer for real-valued features: the visible units
    are Gaussian with a learned standard deviation per feature, ``transform`` gives
    ``E[h | x] = sigmoid((x / sigma) W + c)``. Standardize the features first (e.g.
    ``make_pipeline(StandardScaler(), GaussianRBM())``); Gaussian units want a much
    smaller rate than binary ones (default 0.001). Keywords and attributes as
    :class:`BernoulliRBM`, plus ``sigma_`` (``(n_features,)``); ``components_`` and the
    intercepts describe ``E(x, h) = sum_i (x_i - b_i)^2 / (2 sigma_i^2) - c.h - (x / sigma) W h``.
    """

    _visible = "gaussian"

    def __init__(self, n_components=256, *, learning_rate=0.001, batch_size=10, n_iter=10, verbose=0,
                 random_state=None, method="pcd", k=1, centered=False, optimizer=None, schedule=None,
                 device="cpu", product_dtype="float32", product_kernel="auto"):
        super().__init__(n_components, learning_rate=learning_rate, batch_size=batch_size, n_iter=n_iter,
                         verbose=verbose, random_state=random_state, method=method, k=k, centered=centered,
                         optimizer=optimizer, schedule=schedule, device=device, product_dtype=product_dtype,
                         product_kernel=product_kernel)

    def _keep(self, session: Fit, dtype) -> None:
        super()._keep(session, dtype)
        self.sigma_ = self.rbm_.visible.sigma.detach().cpu().numpy().astype(dtype)

    @torch.no_grad()
    def score_samples(self, X) -> np.ndarray:
        """The unnormalised log-density ``-F(x)`` per example (its normaliser ``log Z`` is
        the same for every example, so scores rank examples as the density does)."""
        return -self.free_energy(X)
