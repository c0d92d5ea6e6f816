"""What a model family declares: the :class:`Family` record every part of boltzkit reads.

Build, the task lookup, the command line's and ``evaluate``'s gates, metric directions,
presets and the test registry all read a family's record instead of testing its name,
so a new family is one module (its config section, model builder, task) and one
:func:`~boltzkit.families.registry.register` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from ..sections import Section

if TYPE_CHECKING:
    from .task import Task

Direction = Literal["maximize", "minimize"]

COMMON_METRICS: dict[str, Direction | None] = {
    "loss": "minimize",  # the training objective's value, averaged over the epoch
    "lr": None,
    "seconds": None,
    "epoch": None,
    "step": None,
    "lr_backoffs": None,  # train.backoff: times the rate was lowered after a NaN loss
}
"""Metrics the trainer logs for every family (None: not a quantity to optimise)."""
COMMON_PREFIXES = ("grad_norm/",)
"""Informative metrics named per parameter (``train.log_grad_norms``)."""

LIKELIHOOD_KEYS = ("log_likelihood_exact", "log_likelihood_ais", "log_likelihood_bound", "iwae_bound")
"""Where a family's ``Task.evaluate`` reports the split's log-likelihood (nats per example)
or a lower bound on it, best first: enumerated, AIS, a variational bound (DBN, DBM), a
VAE's importance-weighted bound. An evaluation that uses AIS also reports ``ais_reliable``
(1 or 0). Every family that samples and evaluates reports at least one of them."""


def reported_likelihood(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first of :data:`LIKELIHOOD_KEYS` in ``results`` as ``{"kind", "value",
    "reliable"}`` (``reliable``: ``ais_reliable`` as a bool, None without AIS); None when
    the results hold none."""
    kind = next((key for key in LIKELIHOOD_KEYS if isinstance(results.get(key), float)), None)
    if kind is None:
        return None
    reliable = results.get("ais_reliable")
    return {"kind": kind, "value": results[kind], "reliable": None if reliable is None else bool(reliable)}


class ModelSection(Section):
    """The base of every family's ``model`` config section; ``type`` names the family."""

    type: str


def split_metrics(**directions: Direction | None) -> dict[str, Direction | None]:
    """``split_metrics(recon_error="minimize")`` -> the ``train_`` and ``val_`` variants."""
    return {f"{split}_{name}": d for name, d in directions.items() for split in ("train", "val")}


@dataclass(frozen=True)
class Capabilities:
    """What a family's trained models can do beyond training.

    Attributes:
        sample: ``boltzkit sample`` draws from it (the family gives ``sample``).
        exact_likelihood: small models get an exact log-likelihood.
        ais_likelihood: annealed importance sampling estimates its log-likelihood.
        evaluate: ``boltzkit evaluate`` reports on it (the task implements ``evaluate``).
        seeds_mlp: an MLP's first hidden layers can start from it (``model.pretrained``);
            the model then has ``hidden_affines() -> [(A_1, c_1), ...]``, one pair per layer
            with ``A_l`` ``(H_{l-1}, H_l)`` and ``c_l`` ``(H_l,)``: layer ``l`` of the
            MLP computes ``act(x A_l + c_l)`` from the layer below. Optionally (a DBM) also
            ``input_features(x) -> (B, E)``, extra input columns computed once per example,
            and ``augmented_affines()``, the same pairs with ``A_1`` over ``[x, features]``
            (``model.pretrained_input: augmented``).
        lr_find: the range test applies (a single-optimizer :class:`GradientStep`).
        sample_labels: ``boltzkit sample --label`` draws a chosen class: the family's
            ``sample`` takes ``label=``, and a model trained with labels has ``classes > 0``.
        one_pass: samples come from one pass of a generator network (a VAE's decoder, a
            GAN's generator), not from a Markov chain: ``--steps`` does not apply.
    """

    sample: bool = False
    exact_likelihood: bool = False
    ais_likelihood: bool = False
    evaluate: bool = False
    seeds_mlp: bool = False
    lr_find: bool = True
    sample_labels: bool = False
    one_pass: bool = False


@dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: the ``model.type`` that selects it.
        description: one line for listings.
        section: its ``model`` config section (validates only its own keys).
        build: ``(section, data_info, generator) -> nn.Module``: the model, with fresh
            parameters, for data described by ``data_info`` (``n_features``, ...).
        task: the :class:`~boltzkit.families.task.Task` that trains it on data.
        metrics: every metric its runs log, with its direction (None: informative only).
        capabilities: see :class:`Capabilities`.
        unit_interval: ``section -> bool``: whether the data must lie in [0, 1].
        figures: the figure files a run of this family writes.
        presets: the built-in presets that train it.
        sample: ``(model, n, steps, generator, temperatures, min_beta) -> (states, means)``,
            each ``(n, D)``: ``n`` samples after ``steps`` sweeps (tempered with
            ``temperatures >= 2``); required with ``capabilities.sample``.
        default_metric: ``tune.metric`` when the config names none.
        data_defaults: ``data`` keys this family wants unlike others (an MLP trains on grey
            values, not binarized ones): a config switched to this family by an override
            gets them, with a warning, unless the same overrides set them.
    """

    name: str
    description: str
    section: type[ModelSection]
    build: Callable[[Any, Mapping[str, Any], torch.Generator], nn.Module]
    task: type[Task]
    metrics: Mapping[str, Direction | None]
    capabilities: Capabilities = Capabilities()
    unit_interval: Callable[[Any], bool] = lambda section: False
    figures: tuple[str, ...] = ("curves.png",)
    presets: tuple[str, ...] = field(default_factory=tuple)
    sample: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
    default_metric: str = "val_loss"
    data_defaults: Mapping[str, Any] = field(default_factory=dict)

    def direction(self, metric: str) -> Direction | None:
        """``maximize`` / ``minimize`` as declared, None for informative or unknown metrics."""
        return {**COMMON_METRICS, **self.metrics}.get(metric)

    def logs(self, metric: str) -> bool:
        """Whether ``metric`` is declared by this family or by the trainer."""
        return metric in self.metrics or metric in COMMON_METRICS or metric.startswith(COMMON_PREFIXES)
