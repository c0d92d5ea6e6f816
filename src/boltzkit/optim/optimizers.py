"""Optimizers by name: every ``torch.optim`` class, with its keyword arguments checked."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .keywords import check_keywords, finite_number


def optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    """Map lowercase names (``sgd``, ``adam``, ``adamw``, ``nadam``, ...) to classes."""
    classes = {}
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
        ):
            classes[name.lower()] = obj
    return classes


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    classes = optimizer_classes()
    try:
        return classes[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; accepted: {', '.join(sorted(classes))}"
        ) from None


def optimizer_arguments(name: str) -> list[str]:
    """The keyword arguments the optimizer's constructor accepts (besides ``params``)."""
    signature = inspect.signature(optimizer_class(name).__init__)
    return [p for p in signature.parameters if p not in ("self", "params")]


def check_optimizer_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first keyword the optimizer does not take."""
    check_keywords(kwargs, optimizer_arguments(name), f"torch.optim.{optimizer_class(name).__name__}",
                   hint=". To switch optimizers, set the whole section, e.g. "
                        f"--set 'train.optimizer={{name: {name}, lr: 0.001}}'")


NEEDS_CLOSURE = ("lbfgs",)


def check_optimizer_values(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for keyword values the optimizer would refuse or misuse:
    NaN/inf, wrong types and ranges (found by building it on a one-element probe, so
    torch's own checks apply, ``weight_decay`` included, which parameter groups would
    otherwise bypass), and optimizers that need a closure per step."""
    cls = optimizer_class(name)
    if name.lower() in NEEDS_CLOSURE:
        raise ValueError(f"torch.optim.{cls.__name__} needs a closure at every step, which boltzkit's "
                         "training loop does not pass; accepted: sgd, adam, adamw, rmsprop or any "
                         "other torch.optim class")
    for key, value in kwargs.items():
        numbers = value if isinstance(value, list | tuple) else [value]  # betas come in pairs
        if any(isinstance(v, float) and not finite_number(v) for v in numbers):
            raise ValueError(f"torch.optim.{cls.__name__}: {key}={value!r} is not finite")
        low, high = BOUNDS.get(key, (None, None))
        if low is not None and finite_number(value) and not low <= value <= high:
            raise ValueError(f"torch.optim.{cls.__name__}: {key}={value!r}; accepted: {low} to {high}")
    probe = torch.zeros(1, requires_grad=True)
    try:
        cls([probe], **kwargs)
    except (TypeError, ValueError, RuntimeError, IndexError, KeyError) as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"torch.optim.{cls.__name__} refuses {dict(kwargs)}: {detail}") from None


BOUNDS = {"momentum": (0.0, 1.0), "dampening": (0.0, 1.0), "weight_decay": (0.0, 1e4)}
"""Keywords torch checks only from below: a momentum above 1 can only diverge, and a weight
decay beyond 1e4 is a typo (AdamW's decoupled decay of 10 with a small rate is fine)."""


NO_DECAY_MARKERS = ("bias", "log_sigma", "log_scale")


def parameter_groups(
    model: nn.Module, weight_decay: float | None = None, decay_biases: bool = False
) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed and a non-decayed group.

    Biases, variances (``log_sigma``) and other one-dimensional parameters (batch-norm
    scales) get no weight decay unless ``decay_biases``; the others get ``weight_decay``
    (``None``: the optimizer's default). Decaying biases pulls the model
    toward arbitrary offsets instead of toward small couplings (Hinton, "A practical guide
    to training RBMs", 2010, section 10; the same holds for deep nets).
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or any(marker in name for marker in NO_DECAY_MARKERS)
        (no_decay if exempt and not decay_biases else decay).append(param)
    groups: list[dict[str, Any]] = [{"params": decay}]
    if weight_decay is not None:  # else the optimizer's own default (AdamW: 0.01)
        groups[0]["weight_decay"] = weight_decay
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [group for group in groups if group["params"]]


def build_optimizer(
    params: Iterable[nn.Parameter] | Iterable[dict], name: str, **kwargs: Any
) -> torch.optim.Optimizer:
    """``torch.optim.<name>(params, **kwargs)``, with a one-line error on bad arguments.

    Where the class has a fused kernel and the caller chose neither ``fused`` nor
    ``foreach``, the fused kernel is used: on CPU it saves a few passes over memory.
    """
    check_optimizer_kwargs(name, kwargs)
    cls = optimizer_class(name)
    params = list(params)
    try:
        if _wants_fused(name, kwargs, params):
            try:
                return cls(params, fused=True, **kwargs)
            except (RuntimeError, ValueError, TypeError):
                pass  # this class or setting has no fused kernel here: use the default
        return cls(params, **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"torch.optim.{cls.__name__}: {err}") from None


def _wants_fused(name: str, kwargs: Mapping[str, Any], params: list) -> bool:
    """Use the fused kernel (one pass over each tensor) unless the user chose otherwise."""
    if "fused" not in optimizer_arguments(name) or "fused" in kwargs or "foreach" in kwargs:
        return False
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    return all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)


def make_optimizer(model: nn.Module, optimizer_config) -> torch.optim.Optimizer:
    """The optimizer a ``train.optimizer`` config section describes, with parameter groups."""
    kwargs = optimizer_config.kwargs()
    if "weight_decay" not in optimizer_arguments(optimizer_config.name):
        return build_optimizer(model.parameters(), optimizer_config.name, **kwargs)
    groups = parameter_groups(model, kwargs.pop("weight_decay", None), optimizer_config.decay_biases)
    return build_optimizer(groups, optimizer_config.name, **kwargs)


def clip_gradients(model: nn.Module, train_config) -> None:
    """Clip by global norm (``train.clip_grad_norm``) and/or by value (``clip_grad_value``)."""
    if train_config.clip_grad_value is not None:
        nn.utils.clip_grad_value_(model.parameters(), train_config.clip_grad_value)
    if train_config.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), train_config.clip_grad_norm)
