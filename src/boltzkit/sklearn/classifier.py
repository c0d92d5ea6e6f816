"""A scikit-learn classifier that pretrains its first layer as an RBM, then fine-tunes."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..train.fit import Fit
from ._core import as_tensor, in_memory_dataset, run_config, seed_from
from .rbm import BernoulliRBM, GaussianRBM


class RBMPretrainedClassifier(ClassifierMixin, BaseEstimator):
    """An MLP classifier whose first hidden layer can start from an RBM trained on ``X``
    (greedy pretraining, Hinton & Salakhutdinov 2006), then trained end to end by
    cross-entropy: the "reuse pretrained layers" speed-up as one estimator.

    Args:
        hidden_layer_sizes: widths of the hidden layers.
        activation: ``sigmoid`` (what an RBM's hidden units compute; the pretrained layer
            keeps its meaning), ``relu``, ``tanh``, ... (see ``boltzkit.models.mlp``).
        pretrain: ``"bernoulli"`` (features in [0, 1]), ``"gaussian"`` (standardized
            real features) or None (random initialisation, He or Glorot as ``init``).
        pretrain_iter, pretrain_learning_rate: passes and rate of the RBM (PCD-1, SGD, in
            mini-batches of ``batch_size``); the rate defaults to the RBM's own (0.1 for
            Bernoulli, 0.001 for Gaussian units).
        freeze_pretrained: keep the pretrained layer fixed during fine-tuning.
        learning_rate_init, max_iter, batch_size: Adam's rate, epochs and batch size of
            fine-tuning (``optimizer``, a ``train.optimizer`` mapping, replaces Adam).
        dropout, input_dropout, batch_norm, init: the MLP's knobs (dropout masks come from
            PyTorch's global generator: seed it with ``torch.manual_seed`` for repeatable runs).
        random_state: seeds the RBM, the initial weights and the batch order.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_``,
    ``n_iter_`` (epochs), ``rbm_`` (the pretraining estimator, or None), ``mlp_`` (the
    :class:`boltzkit.MLP`), ``history_`` (per-epoch metrics).
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions({"relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid"})],
        "pretrain": [StrOptions({"bernoulli", "gaussian"}), None],
        "pretrain_iter": [Interval(Integral, 1, None, closed="left")],
        "pretrain_learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "freeze_pretrained": ["boolean"],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [dict, None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "input_dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "init": [StrOptions({"he", "glorot", "lecun"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [str],
    }

    def __init__(self, hidden_layer_sizes=(256,), *, activation="sigmoid", pretrain="bernoulli",
                 pretrain_iter=10, pretrain_learning_rate=None, freeze_pretrained=False,
                 learning_rate_init=0.001, optimizer=None, max_iter=50, batch_size=64, dropout=0.0,
                 input_dropout=0.0, batch_norm=False, init="glorot", random_state=None, verbose=0,
                 device="cpu"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.pretrain = pretrain
        self.pretrain_iter = pretrain_iter
        self.pretrain_learning_rate = pretrain_learning_rate
        self.freeze_pretrained = freeze_pretrained
        self.learning_rate_init = learning_rate_init
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.batch_norm = batch_norm
        self.init = init
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def fit(self, X, y):
        """Pretrain (unless ``pretrain`` is None), then fine-tune on ``(X, y)``; returns self."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                             f"but the data contain only one class: {self.classes_[0]!r}")
        widths = [int(w) for w in np.atleast_1d(self.hidden_layer_sizes)]
        if self.pretrain is not None and not widths:
            raise ValueError(f"{type(self).__name__}: pretrain={self.pretrain!r} needs a hidden layer to "
                             "pretrain; give hidden_layer_sizes or set pretrain=None")
        seed = seed_from(self.random_state)
        config = run_config(type(self).__name__, {
            "seed": seed, "device": self.device,
            "model": {"type": "mlp", "hidden_layers": widths, "activation": self.activation,
                      "init": self.init, "dropout": self.dropout,
                      "input_dropout": self.input_dropout, "batch_norm": self.batch_norm},
            "train.epochs": self.max_iter, "train.batch_size": self.batch_size,
            "train.optimizer": dict(self.optimizer) if self.optimizer else
            {"name": "adam", "lr": self.learning_rate_init},
            "train.metrics_examples": 1000 if self.verbose else 0,
        })
        session = Fit(config, in_memory_dataset(as_tensor(X, torch.float32), torch.as_tensor(codes)))
        self.rbm_ = None
        if self.pretrain is not None:
            rbm_class = BernoulliRBM if self.pretrain == "bernoulli" else GaussianRBM
            rbm = rbm_class(widths[0], n_iter=self.pretrain_iter, batch_size=self.batch_size,
                            random_state=seed, device=self.device)
            if self.pretrain_learning_rate is not None:
                rbm.set_params(learning_rate=self.pretrain_learning_rate)
            self.rbm_ = rbm.fit(X)
            weight, bias = self.rbm_.rbm_.hidden_affine()  # centering and Gaussian scaling folded in
            session.model.load_pretrained_layers([(weight.T.to(session.device), bias.to(session.device))],
                                                 freeze=self.freeze_pretrained)

        def report(epoch: int, metrics: dict) -> None:
            if self.verbose:
                print(f"[{type(self).__name__}] epoch {epoch + 1}, loss = {metrics['loss']:.4f}")

        session.run(on_epoch_end=report)
        self.mlp_ = session.model.eval()
        self.history_ = list(session.history)
        self.n_iter_ = len(self.history_)
        return self

    @torch.no_grad()
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``softmax(logits)``, ``(n_samples, n_classes)``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        logits = self.mlp_(as_tensor(X, torch.float32, self.mlp_.output.weight.device))
        return torch.softmax(logits.to(torch.float64), dim=1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of each example."""
        proba = self.predict_proba(X)  # first: it checks that the estimator is fitted
        return self.classes_[np.argmax(proba, axis=1)]
