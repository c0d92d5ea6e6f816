"""Deep belief networks (``model.type: dbn``): a stack of RBMs pretrained greedily, one
stage per layer (``layer1``, ``layer2``, ...), each RBM with the run's objective (CD, PCD
or PT, centering) and optimizer unless ``model.layer_overrides`` changes them for that
layer; samples (Gibbs in the top RBM, then a top-down pass), a likelihood lower bound,
and the weights to start an MLP from (``model.pretrained`` of an MLP run).

With ``model.labels: true`` the top RBM also sees the class as one softmax group (Hinton,
Osindero & Teh 2006): its batches are ``[h_{L-1}, y]``, samples can be drawn for a chosen
class (``boltzkit sample --label``, ``samples_by_label.png``) and the model classifies by
free energy (``val_label_accuracy``). With ``model.updown_epochs > 0`` a last stage
``updown`` fine-tunes the whole network by the up-down algorithm
(:mod:`boltzkit.objectives.updown`), with the run's ``train`` optimizer and schedule."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from ..data import Dataset
from ..errors import ConfigError
from ..estimate.dbn_bound import DBNBound, dbn_log_likelihood_bound, top_log_partition
from ..estimate.evaluate import binary_view
from ..estimate.monitor import likelihood_metrics, rbm_metrics
from ..estimate.pseudo_likelihood import reconstruction_error
from ..models.dbn import DBN
from ..models.rbm import RBM
from ..objectives.base import Objective
from ..objectives.free_energy_gap import FreeEnergyGap
from ..objectives.updown import UpDown
from ..sampling.gibbs import ContrastiveChains
from ..seeding import make_generator
from .contract import Capabilities, Family, ModelSection, split_metrics
from .rbm import CURVE_GROUPS, GenerativeTask, RBMTask, negative_sampler
from .registry import register
from .steps import Stage, TrainStep
from .task import LabelledBatches, Task, without_closed_form

LAYER_KEYS = ("method", "k", "pt", "n_chains", "epochs", "optimizer", "schedule", "gradient",
              "clip_grad_norm", "clip_grad_value")
"""``train`` keys a layer may override; the others (batch size, checkpoints, monitoring,
early stopping) belong to the whole run."""
EVALUATE_SAMPLES = 100
"""Importance draws per example for ``boltzkit evaluate``'s bound."""
METRIC_SAMPLES = 10
"""Importance draws per example for the in-training bound (``eval.every``)."""


class DBNSection(ModelSection):
    type: Literal["dbn"] = "dbn"
    layers: list[int] = Field(default_factory=lambda: [100, 100])
    """Hidden layer widths, bottom first: one RBM per layer."""
    visible: Literal["bernoulli", "gaussian"] = "bernoulli"
    """The bottom RBM's visible units (``gaussian`` for real-valued, standardized data);
    every layer above is Bernoulli."""
    learn_variance: bool = True
    """Gaussian visible units: learn each unit's standard deviation (else it stays 1)."""
    init_std: float = Field(0.01, ge=0, le=100)
    centered: bool = False
    """Every RBM centered (Melchior, Fischer & Wiskott, 2016)."""
    offset_rate: float = Field(0.01, gt=0, le=1)
    propagate: Literal["probabilities", "samples"] = "probabilities"
    """What the next layer is trained on: the hidden probabilities ``E[h | x]`` of the layer
    below (Hinton, Osindero & Teh 2006 use them, less noise), or binary samples of them (the
    DBN's own bottom-up posterior ``q``)."""
    layer_overrides: list[dict[str, Any]] = Field(default_factory=list)
    """One mapping per layer (bottom first; fewer than the layers: the rest take ``train``),
    of ``train`` keys applied as ``--set train.KEY=VALUE`` would be (a dotted key changes one
    value, a mapping replaces a section), e.g. ``[{}, {epochs: 5, optimizer.lr: 0.01}]``.
    Accepted keys: method, k, pt, n_chains, epochs, optimizer, schedule, gradient,
    clip_grad_norm, clip_grad_value."""
    labels: bool = False
    """The top RBM also sees the class label as one softmax group of label units (needs
    labelled data): generation of a chosen class and classification by free energy."""
    updown_epochs: int = Field(0, ge=0, le=100000)
    """Epochs of up-down (wake-sleep) fine-tuning after the greedy stages (0: none); it
    unties the recognition and generative weights of the layers below the top and trains
    with the run's ``train`` optimizer, schedule and clipping."""
    updown_k: int = Field(3, ge=1, le=1000)
    """Gibbs sweeps in the top RBM per up-down update (CD-k from the wake states; Hinton,
    Osindero & Teh 2006 use 3, later 6 and 10)."""

    @field_validator("layers")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if not value or any(width < 1 for width in value):
            raise ValueError(f"expected at least one hidden layer width, each >= 1, got {value}")
        return value

    @model_validator(mode="after")
    def _labels(self) -> DBNSection:
        if self.labels and len(self.layers) == 1 and self.visible != "bernoulli":
            raise ConfigError(f"config key 'model.labels': true needs the top RBM's other visible units "
                              f"binary, and a one-layer DBN over {self.visible} units has none; use "
                              "visible: bernoulli or at least two model.layers")
        return self

    @model_validator(mode="after")
    def _overrides(self) -> DBNSection:
        if len(self.layer_overrides) > len(self.layers):
            raise ConfigError(f"config key 'model.layer_overrides': {len(self.layer_overrides)} mappings "
                              f"for {len(self.layers)} layers (model.layers: {self.layers}); give at most "
                              "one per layer")
        from ..config import TrainConfig  # config imports the families: only at validation time

        defaults = TrainConfig().model_dump(mode="json")
        for index, override in enumerate(self.layer_overrides):
            # against the defaults here (the run's train section is not visible to a model
            # section); the task validates each layer again against the run's own
            layer_train_config(defaults, override, index)
        return self


def layer_train_config(train: Mapping[str, Any], override: Mapping[str, Any], index: int):
    """The ``train`` section of layer ``index``: ``train`` (a dumped section) with
    ``override`` applied, validated; a :class:`ConfigError` names the key as
    ``model.layer_overrides[index].KEY``."""
    from pydantic import ValidationError

    from ..config import TrainConfig, apply_overrides, format_validation_error

    prefix = f"model.layer_overrides[{index}]"
    for key in override:
        if str(key).split(".")[0] not in LAYER_KEYS:
            raise ConfigError(f"config key '{prefix}.{key}': not a per-layer key; accepted: "
                              f"{', '.join(LAYER_KEYS)} (the others apply to the whole run: set them "
                              "in train)")
    raw = apply_overrides({"train": dict(train)}, {f"train.{key}": value for key, value in override.items()})
    try:
        return TrainConfig.model_validate(raw["train"])
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, TrainConfig, prefix=f"{prefix}.")) from None


def build_dbn(section: DBNSection, data_info: Mapping[str, Any], generator: torch.Generator) -> DBN:
    options = {"learn_variance": section.learn_variance} if section.visible == "gaussian" else None
    classes = data_info["n_classes"] if section.labels else 0
    return DBN(data_info["n_features"], section.layers, section.visible, section.init_std, generator,
               centered=section.centered, visible_options=options, classes=classes,
               recognition=section.updown_epochs > 0)


@torch.no_grad()
def labelled_top_metrics(top: RBM, train: Tensor, validation: Tensor) -> dict[str, float]:
    """:func:`~boltzkit.estimate.monitor.rbm_metrics` of a top RBM whose visible layer holds
    label units, on ``[h_{L-1}, y]`` states, without the pseudo-likelihood (defined for
    Bernoulli or categorical layers, not a mixed one): reconstruction error, mean free
    energy and the free-energy gap."""
    metrics: dict[str, float] = {}
    for prefix, v in (("train", train), ("val", validation)):
        if len(v):
            metrics[f"{prefix}_recon_error"] = reconstruction_error(top, v).mean().item()
            metrics[f"{prefix}_free_energy"] = top.free_energy(v).mean().item()
    if "val_free_energy" in metrics:
        metrics["free_energy_gap"] = metrics["val_free_energy"] - metrics["train_free_energy"]
    return metrics


class LayerObjective(Objective):
    """The objective of RBM ``rbm`` (one layer of the DBN), whatever model the trainer
    passes (the whole DBN): the stage's batches are already that layer's input. It also
    carries ``propagation``, the generator the stage's input is drawn from with
    ``propagate: samples``: saved with the step, so a run resumed in the middle of the
    layer draws the same inputs.

    A labelled run's batches carry the one-hot label in their last columns; the first layer
    (below the top) reads its own visible units only (``lr-find`` also hands it raw batches)."""

    def __init__(self, rbm: RBM, inner: FreeEnergyGap, propagation: torch.Generator):
        self.rbm, self.inner, self.propagation = rbm, inner, propagation

    def loss(self, model: nn.Module, batch: Tensor) -> Tensor:
        return self.inner.loss(self.rbm, batch[:, : self.rbm.n_visible])

    def has_closed_form(self, model: nn.Module) -> bool:
        return self.inner.has_closed_form(self.rbm)

    def product_keys(self, model: nn.Module) -> frozenset[str]:
        return self.inner.product_keys(self.rbm)

    @property
    def product_dtype(self) -> torch.dtype | None:  # the inner objective does the products
        return self.inner.product_dtype

    @product_dtype.setter
    def product_dtype(self, dtype: torch.dtype | None) -> None:
        self.inner.product_dtype = dtype

    @property
    def product_kernel(self) -> str:
        return self.inner.product_kernel

    @product_kernel.setter
    def product_kernel(self, kernel: str) -> None:
        self.inner.product_kernel = kernel

    def write_gradients(self, model: nn.Module, batch: Tensor) -> float:
        return self.inner.write_gradients(self.rbm, batch[:, : self.rbm.n_visible])

    def epoch_metrics(self) -> dict[str, float]:
        return self.inner.epoch_metrics()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "propagation": self.propagation.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.propagation.set_state(state["propagation"])


class DBNTask(LabelledBatches, GenerativeTask):
    """Greedy layer-wise pretraining: stage ``layer{l}`` trains RBM ``l`` on the data carried
    up through the (fixed) layers below it."""

    summary_keys = ("loss", "train_recon_error", "val_stack_recon_error", "val_log_likelihood",
                    "val_ais_log_likelihood", "val_log_likelihood_bound", "val_label_accuracy", "seconds")
    proxy_name = "negative pseudo-log-likelihood of layer 1"
    range_test_iterations = RBMTask.range_test_iterations
    range_test_caveat = (RBMTask.range_test_caveat + "; the test trains layer 1 only, and the layers "
                         "above take the same rate unless model.layer_overrides sets theirs")

    def __init__(self, config, data: Dataset, device: torch.device):
        super().__init__(config, data, device)
        if config.train.early_stopping is not None:
            raise ConfigError("config key 'train.early_stopping': not available for model.type 'dbn' "
                              "(it would end the whole run, and the metrics change meaning from layer "
                              "to layer); set each layer's epochs with model.layer_overrides")
        section, train = config.model, config.train.model_dump(mode="json")
        overrides = [*section.layer_overrides, *[{}] * (len(section.layers) - len(section.layer_overrides))]
        self.layer_configs = [layer_train_config(train, override, index)
                              for index, override in enumerate(overrides)]
        self._monitors: dict[int, tuple[Tensor, Tensor]] = {}
        self.use_labels(section.labels)
        if self.labels:
            n = config.train.metrics_examples
            # the same rows as the monitoring sets (monitor_sets takes the first n of each split)
            self.monitor_labels = (data.train_labels[:n].to(device),
                                   data.validation_labels[: len(self.monitor_val)].to(device))

    def build_model(self) -> DBN:
        """As an RBM's (the first RBM's visible biases from the data's means); a one-layer DBN
        with labels also sets its label biases from the class frequencies."""
        model = Task.build_model(self)
        mean = self.data.train.mean(dim=0).to(self.device)
        if self.labels and model.depth == 1:
            mean = torch.cat([mean, self._label_frequencies(model)])
        model.init_from_data(mean)
        return model

    def _label_frequencies(self, model: DBN) -> Tensor:
        return self.label_frequencies().to(model.top.weight)

    # ---------------------------------------------------------------- stages

    def stages(self, model: DBN) -> list[Stage]:
        stages = [self._layer_stage(model, layer) for layer in range(model.depth)]
        if self.config.model.updown_epochs:
            stages.append(self._updown_stage(model))
        return stages

    def _updown_stage(self, model: DBN) -> Stage:
        """Up-down fine-tuning of the whole DBN with the run's ``train`` section; the CD-k
        chains of the top RBM and the wake and sleep draws each from their own generator."""
        seed, device, section = self.config.seed, self.device, self.config.model
        epochs = section.updown_epochs

        def build_step() -> TrainStep:
            model.zero_grad(set_to_none=True)
            model.untie()  # a no-op when resumed: the flag is part of the saved weights
            chains = ContrastiveChains(section.updown_k, make_generator(seed, "train.updown.top", device))
            objective = UpDown(FreeEnergyGap(chains, section.offset_rate),
                               make_generator(seed, "train.updown", device))
            # up-down has no closed form: the gradient and product keys choose the layers' updates
            return self.gradient_step(model, objective, epochs, without_closed_form(self.config.train))

        return Stage("updown", epochs, build_step, None, partial(self.updown_metrics, model))

    def _layer_stage(self, model: DBN, layer: int) -> Stage:
        cfg, seed, device = self.layer_configs[layer], self.config.seed, self.device
        # layer 1 draws as an RBM run does, so a one-layer DBN trains exactly like it
        sampler_purpose = "train.sampler" if layer == 0 else f"train.sampler.layer{layer + 1}"
        propagation = make_generator(seed, f"train.propagate.layer{layer + 1}", device)
        sample = self.config.model.propagate == "samples"
        rbm = model.rbms[layer]
        width = model.n_visible

        def build_step() -> TrainStep:
            model.zero_grad(set_to_none=True)  # the layer below's last gradients must not count in clipping
            if layer > 0:  # a no-op when resumed: the flag is part of the saved weights
                model.init_layer_from_data(layer, self._layer_input_mean(model, layer))
            inner = FreeEnergyGap(negative_sampler(cfg, make_generator(seed, sampler_purpose, device)),
                                  self.config.model.offset_rate)
            return self.gradient_step(rbm, LayerObjective(rbm, inner, propagation), cfg.epochs, cfg)

        @torch.no_grad()
        def prepare(batch: Tensor) -> Tensor:
            x = model.up(batch[:, :width], layer, sample=sample, generator=propagation)
            # the top RBM of a labelled run sees [h_{L-1}, y]: the label columns travel along
            return torch.cat([x, batch[:, width:]], dim=1) if layer == model.depth - 1 else x

        return Stage(f"layer{layer + 1}", cfg.epochs, build_step, prepare if layer > 0 else None,
                     partial(self.layer_metrics, model, layer))

    @torch.no_grad()
    def _layer_input_mean(self, model: DBN, layer: int) -> Tensor:
        """``E[h_layer]`` over the training data (grey levels read as probabilities)."""
        total = torch.zeros(model.rbms[layer].n_visible - (model.classes if layer == model.depth - 1 else 0),
                            dtype=torch.float64, device=self.device)
        for chunk in self.train_x.split(4096):
            total += model.up(chunk, layer).sum(dim=0).double()
        mean = (total / len(self.train_x)).to(model.rbms[layer].weight)
        if self.labels and layer == model.depth - 1:
            mean = torch.cat([mean, self._label_frequencies(model)])
        return mean

    # ---------------------------------------------------------------- metrics

    def _layer_monitors(self, model: DBN, layer: int) -> tuple[Tensor, Tensor]:
        """The monitoring sets carried up to RBM ``layer``'s visible layer as binary draws of
        ``q`` (a fixed generator per layer; the layers below no longer change, so they are
        drawn once): states its likelihood-type metrics are defined on."""
        if layer == 0 and not (self.labels and model.depth == 1):
            return self.monitor_train, self.monitor_val
        if layer not in self._monitors:
            generator = make_generator(self.config.seed, f"metrics.layer{layer + 1}", self.device)
            states = [model.up(x, layer, sample=True, generator=generator)
                      for x in (self.monitor_train, self.monitor_val)]
            if self.labels and layer == model.depth - 1:  # the top RBM sees the labels too
                states = [model.top_visible(h, y) for h, y in zip(states, self.monitor_labels, strict=True)]
            self._monitors[layer] = tuple(states)
        return self._monitors[layer]

    @torch.no_grad()
    def layer_metrics(self, model: DBN, layer: int, epoch: int) -> dict[str, float]:
        """After an epoch of layer ``layer``: that RBM's own metrics on its input, the
        reconstruction of ``v`` through the stack built so far and, every ``eval.every``
        epochs, the log-likelihood of that stack (an RBM's for layer 1; the bound of
        :mod:`boltzkit.estimate.dbn_bound` above)."""
        train, val = self._layer_monitors(model, layer)
        stack = model.truncated(layer + 1)
        if stack.classes:
            metrics = labelled_top_metrics(stack.top, train, val)
        else:
            metrics = rbm_metrics(model.rbms[layer], train, val)
        metrics.update(self._stack_metrics(stack, epoch, layer))
        return metrics

    @torch.no_grad()
    def updown_metrics(self, model: DBN, epoch: int) -> dict[str, float]:
        """After an epoch of up-down fine-tuning: the whole network's reconstruction (recognition
        weights up, generative weights down), label accuracy and, every ``eval.every`` epochs,
        the likelihood bound."""
        return self._stack_metrics(model, epoch, model.depth - 1)

    def _stack_metrics(self, stack: DBN, epoch: int, layer: int) -> dict[str, float]:
        """The reconstruction of ``v`` through ``stack`` (up with probabilities, down with the
        generative weights), the generative classifier's accuracy when the top sees labels, and
        every ``eval.every`` epochs the log-likelihood (an RBM's for a one-layer stack without
        labels; the bound of :mod:`boltzkit.estimate.dbn_bound` above)."""
        metrics = {}
        labels = self.monitor_labels if stack.classes else (None, None)
        monitors = (("train", self.monitor_train), ("val", self.monitor_val))
        for (name, v), y in zip(monitors, labels, strict=True):
            if len(v):
                # means all the way down: the metric draws nothing (the run's seed fixes it)
                recon = stack.down(stack.up(v, stack.depth, labels=y), stack.depth, sample=False)[1]
                metrics[f"{name}_stack_recon_error"] = (v - recon).pow(2).sum(dim=1).mean().item()
                if stack.classes:
                    metrics[f"{name}_label_accuracy"] = (stack.classify(v) == y).double().mean().item()
        evaluation = self.config.eval
        if evaluation.every and epoch % evaluation.every == 0:
            quick = evaluation.quick_ais
            generator = make_generator(self.config.seed, f"eval.epoch{epoch}", self.device)
            if layer == 0 and not stack.classes:
                train, val = self._layer_monitors(stack, 0)
                metrics.update(likelihood_metrics(stack.top, self.data.train, train, val, quick.runs,
                                                  quick.betas, evaluation.exact_max_units, generator,
                                                  self.eval_kernel))
            else:
                metrics.update(self._bound_metrics(stack, quick.runs, quick.betas, generator))
        return metrics

    def _bound_metrics(self, stack: DBN, runs: int, betas: int, generator: torch.Generator
                       ) -> dict[str, float]:
        log_z = top_log_partition(stack, self.data.train, ais_runs=runs, ais_betas=betas,
                                  exact_max_units=self.config.eval.exact_max_units, generator=generator,
                                  product_kernel=self.eval_kernel)
        reliable = float(log_z["reliable"])
        metrics = {"bound_log_z": log_z["log_z"], "bound_reliable": reliable, "ais_reliable": reliable}
        for name, v in (("train", self.monitor_train), ("val", self.monitor_val)):
            if len(v):
                bound = dbn_log_likelihood_bound(stack, v, self.data.train, samples=METRIC_SAMPLES,
                                                 generator=generator, top_log_z=log_z)
                metrics[f"{name}_log_likelihood_bound"] = bound.mean
        return metrics

    # ---------------------------------------------------------------- range test

    def proxy_loss(self, model: DBN, batch: Tensor) -> Tensor:
        """Layer 1's negative pseudo-log-likelihood, as for an RBM
        (:meth:`GenerativeTask.pseudo_likelihood_proxy`), on the image part of a labelled batch."""
        if model.depth == 1 and model.classes:
            raise ConfigError("lr-find: a one-layer DBN with model.labels=true has no pseudo-likelihood to "
                              "watch (its only RBM mixes image and label units); use at least two "
                              "model.layers, or tune the rate with boltzkit tune")
        return self.pseudo_likelihood_proxy(model.rbms[0], batch[:, : model.n_visible])

    # ---------------------------------------------------------------- outputs

    def write_figures(self, out: Path, model: DBN, history: list[dict],
                      n_samples: int = 100, steps: int = 1000) -> None:
        """``samples.png`` (Gibbs in the top RBM, then down), ``filters.png`` (layer 1's
        weights), ``curves.png`` and with labels ``samples_by_label.png`` (one row of samples
        per class, the label clamped)."""
        from .. import plots

        generator = make_generator(self.config.seed, "figures", self.device)
        states, means = model.generate(n_samples, steps, generator)
        plots.save_samples(model, states, means, out / "samples.png",
                           f"{n_samples} samples: {steps} Gibbs sweeps in the top RBM, then down",
                           self.data.image_shape, self.data.feature_mean, self.data.feature_std,
                           means_label="E[v|h1]")
        if model.classes:
            per_class = max(1, n_samples // model.classes)
            drawn = [model.generate(per_class, steps, generator, label=label)
                     for label in range(model.classes)]
            pixels = plots.to_pixels(torch.cat([means for _, means in drawn]).cpu(), self.data.feature_mean,
                                     self.data.feature_std)
            plots.save_image_grid(pixels.numpy(), self.data.image_shape, out / "samples_by_label.png",
                                  f"one row per class 0..{model.classes - 1}: {steps} Gibbs sweeps with the "
                                  "label clamped, then down (E[v|h1])", columns=per_class)
        plots.save_filters(model.rbms[0].weight.detach().T.cpu().numpy(), self.data.image_shape,
                           out / "filters.png", title="layer 1 weights")
        groups = {"stack reconstruction error": ["train_stack_recon_error", "val_stack_recon_error"],
                  "log-likelihood bound (nats)": ["train_log_likelihood_bound", "val_log_likelihood_bound"],
                  **CURVE_GROUPS}
        plots.save_curves(history, out / "curves.png", groups, title=f"{out.name} (layers one after another)")

    def evaluate(self, model: DBN, split: str, *, seed: int = 0, progress: bool = False,
                 ais_runs: int | None = None, ais_betas: int | None = None,
                 reverse_examples: int | None = None, reverse_runs: int | None = None,
                 samples: int = EVALUATE_SAMPLES) -> tuple[dict[str, Any], str]:
        """The lower bound of :mod:`boltzkit.estimate.dbn_bound` on ``split`` with
        ``samples`` importance draws per example; AIS settings not given come from
        ``eval.ais``. Reverse AIS is not defined for a DBN. With labels, also the generative
        classifier's error on the split (:meth:`DBN.classify`, binomial standard error)."""
        if reverse_examples:
            raise ConfigError("--reverse-examples: reverse AIS applies to an RBM, not to a DBN "
                              "(its bound already uses importance sampling)")
        values = self.split(split)
        if self.config.model.visible == "bernoulli":
            values = binary_view(values, make_generator(seed, "evaluate.binarize"))
        evaluation = self.config.eval
        bound = dbn_log_likelihood_bound(
            model, values, self.data.train, samples=samples, ais_runs=ais_runs or evaluation.ais.runs,
            ais_betas=ais_betas or evaluation.ais.betas, exact_max_units=evaluation.exact_max_units,
            pseudocount=evaluation.ais.pseudocount,
            generator=make_generator(seed, "evaluate", model.top.weight.device), progress=progress,
            product_kernel=self.eval_kernel)
        results = {"layers": [model.n_visible] + [rbm.n_hidden for rbm in model.rbms],
                   **{f"bound_{k}" if not k.startswith("log_z") else f"top_{k}": v
                      for k, v in bound.to_dict().items()},
                   # the names every likelihood-reporting family shares (the CLI warns on them)
                   "log_likelihood_bound": bound.mean, "ais_reliable": bound.reliable,
                   "ais_verdict": bound.verdict}
        table = format_bound(bound, f"{split} split, {len(values)} examples")
        labels = {"train": self.data.train_labels, "validation": self.data.validation_labels,
                  "test": self.data.test_labels}[split]
        if model.classes and labels is not None:
            weight = model.top.weight
            predicted = torch.cat([model.classify(chunk.to(weight)).cpu() for chunk in values.split(4096)])
            error = (predicted != labels).double().mean().item()
            results["label_error"] = error
            results["label_error_stderr"] = math.sqrt(error * (1 - error) / len(labels))
            table += (f"\ngenerative classifier error (lowest free energy of [h, y]): {100 * error:.2f} % "
                      f"+- {100 * results['label_error_stderr']:.2f}")
        return results, table


def format_bound(bound: DBNBound, title: str) -> str:
    """A plain-text table of a :class:`DBNBound`."""
    high = f"{bound.high:.3f}" if bound.high < float("inf") else "inf"
    rows = [
        ("log-likelihood lower bound", f"{bound.mean:.3f}  [{bound.low:.3f}, {high}]  "
         f"(importance sampling +- {bound.standard_error:.3f} s.e., {bound.samples} draws per example)"),
        ("variational bound (ELBO)", f"{bound.elbo:.3f}"),
        (f"top RBM log Z, {bound.log_z_method}", f"{bound.log_z:.3f}  [{bound.log_z_low:.3f}, "
         f"{bound.log_z_high:.3f}]"),
        ("  verdict", bound.verdict),
        ("layers", f"{bound.layers} RBMs: the bound covers the whole stack (proposal: the "
         "bottom-up posterior through every layer)"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [title, "-" * max(40, len(title))] + [f"{label:<{width}}  {value}" for label, value in rows]
    lines.append("nats per example; the interval adds the +-3 sigma of the draws and of log Z")
    return "\n".join(lines)


def sample_dbn(model: DBN, n: int, steps: int, generator: torch.Generator, temperatures: int = 0,
               min_beta: float = 0.5, label: int | None = None) -> tuple[Tensor, Tensor]:
    """``n`` samples (:meth:`DBN.generate`); ``label`` clamps the top RBM's label units."""
    return model.generate(n, steps, generator, temperatures, min_beta, label)


DBN_FAMILY = register(Family(
    name="dbn",
    description="deep belief network: RBMs pretrained greedily layer by layer (Bernoulli or Gaussian input)",
    section=DBNSection,
    build=build_dbn,
    task=DBNTask,
    metrics={
        **split_metrics(recon_error="minimize", pseudo_log_likelihood="maximize", free_energy=None,
                        stack_recon_error="minimize", log_likelihood="maximize",
                        ais_log_likelihood="maximize", log_likelihood_bound="maximize",
                        label_accuracy="maximize"),
        "wake_nll": None,
        "sleep_nll": None,
        "free_energy_gap": "minimize",
        "exact_log_z": None,
        "ais_log_z": None,
        "ais_ess": "maximize",
        "ais_reliable": None,
        "bound_log_z": None,
        "bound_reliable": None,
        "pt_swap_rate_mean": "maximize",
        "pt_swap_rate_min": "maximize",
    },
    capabilities=Capabilities(sample=True, evaluate=True, seeds_mlp=True, sample_labels=True),
    unit_interval=lambda section: section.visible != "gaussian",
    figures=("samples.png", "filters.png", "curves.png", "samples_by_label.png"),
    presets=("dbn-digits", "dbn-mnist", "dbn-mnist-labels"),
    sample=sample_dbn,
    default_metric="val_stack_recon_error",
))
