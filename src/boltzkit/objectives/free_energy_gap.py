"""The free-energy gap: CD-k, PCD-k and PT-k as one surrogate loss over a sampler.

For an RBM, ``d/dtheta log p(v) = -dF(v)/dtheta + E_model[dF/dtheta]``. Replacing the model
expectation by samples ``v~`` of a negative-phase sampler gives the contrastive-divergence
family, and

    loss = mean F(v_data) - mean F(v~)        (v~ treated as a constant)

has exactly that (negated) gradient, so any ``torch.optim`` optimizer, weight decay,
clipping and schedule applies unchanged. The sampler decides the estimator: chains
started at the batch (CD-k, Hinton 2002), persistent chains (PCD-k, Tieleman 2008) or
parallel tempering (PT-k, Desjardins et al. 2010); see :mod:`boltzkit.sampling`. The
loss *value* is the free-energy gap between data and negative samples, a useful but not
a likelihood-like number.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import onednn
from ..models.rbm import RBM
from ..sampling.negative import NegativeSampler
from .base import Objective
from .statistics import contrast_product

LINEAR_UNITS = ("bernoulli", "categorical")
PRODUCT_KEYS = ("product_dtype", "product_kernel")


class FreeEnergyGap(Objective):
    """``mean F(v_data) - mean F(v~)`` with ``v~`` from ``sampler``.

    Args:
        sampler: the negative phase (owns its chains and generator).
        offset_rate: how fast a centered RBM's offsets follow the batch means.
    """

    def __init__(self, sampler: NegativeSampler, offset_rate: float = 0.01):
        self.sampler = sampler
        self.offset_rate = offset_rate
        self.negatives: Tensor | None = None  # the last negative samples, for inspection

    def loss(self, model: RBM, v_data: Tensor) -> Tensor:
        model.update_offsets(v_data, self.offset_rate)  # centered models only
        # a hidden input the sampler needs is computed once, in the graph, and reused by
        # the free energy (CD chains start from the data's, PCD chains step from the samples')
        sampler = self.sampler
        data_input = model.hidden_input(v_data) if sampler.uses_data_input else None
        v_model = sampler.negatives(model, v_data, None if data_input is None else data_input.detach())
        model_input = model.hidden_input(v_model) if sampler.uses_model_input else None
        if model_input is not None:
            sampler.observe(model, model_input.detach())
        self.negatives = v_model
        return model.free_energy(v_data, data_input).mean() - model.free_energy(v_model, model_input).mean()

    def product_keys(self, model: RBM) -> frozenset[str]:
        """Both keys, for every model with a closed form: its products go through
        ``hidden_input`` and ``visible_input`` (:meth:`~boltzkit.models.rbm.RBM.products_in`)
        and the weight gradient's one fused product."""
        return frozenset(PRODUCT_KEYS) if self.has_closed_form(model) else frozenset()

    def has_closed_form(self, model: RBM) -> bool:
        """Hidden energies linear in their states (Bernoulli or categorical units), so that
        ``d log_partition(a) / da = E[h | v]``; visible units of those kinds or Gaussian
        (the gradients of its mean and learned variance are written out below)."""
        return model.visible.name in (*LINEAR_UNITS, "gaussian") and model.hidden.name in LINEAR_UNITS

    @torch.no_grad()
    def write_gradients(self, model: RBM, v_data: Tensor) -> float:
        """Per example ``dF(v)/dW = -(s(v) - mu)^T (E[h|v] - lambda)``, ``dF/dc = -E[h|v]``
        (``mu = lambda = 0`` without centering; ``s(v) = v``, or ``v / sigma`` for Gaussian
        units) and the visible terms of :func:`visible_gradients`; the gradient of the gap
        is the data average minus the negatives' average. Same sampler calls, in the same
        order, as :meth:`loss`.

        With :attr:`product_kernel` ``onednn`` the float32 products (sampling and the fused
        weight gradient below) run in :func:`boltzkit.onednn.linear`.
        With :attr:`product_dtype` (bfloat16) every sampling product multiplies in it
        (:meth:`~boltzkit.models.rbm.RBM.products_in`) and the weight gradient is one fused
        product ``[x_data; x_model]^T [-y_data / n_data; y_model / n_model]``, so the data
        and model terms cancel inside the product's float32 accumulation and only their
        difference is rounded; biases, offsets, sampling and the optimizer stay in the
        model's dtype."""
        model.update_offsets(v_data, self.offset_rate)
        sampler = self.sampler
        kernel = onednn.kernel_for(self.product_kernel, model.weight, rows=len(v_data))
        with model.products_in(self.product_dtype, kernel):
            data_input = model.hidden_input(v_data)
            v_model = sampler.negatives(model, v_data, data_input if sampler.uses_data_input else None)
            model_input = model.hidden_input(v_model)
            if sampler.uses_model_input:
                sampler.observe(model, model_input)
        self.negatives = v_model
        m_data, m_model = model.hidden.mean(data_input), model.hidden.mean(model_input)
        x_data, x_model = model.visible.scaled(v_data), model.visible.scaled(v_model)
        y_data, y_model = m_data, m_model
        if model.centered:
            x_data, x_model = x_data - model.visible_offset, x_model - model.visible_offset
            y_data, y_model = m_data - model.hidden_offset, m_model - model.hidden_offset
        grads = {
            model.weight: contrast_product(x_data, y_data, x_model, y_model,
                                           self.product_dtype, kernel),
            model.hidden.bias: m_model.mean(0) - m_data.mean(0),
        }
        for (parameter, data), model_part in zip(visible_gradients(model, v_data, y_data).items(),
                                                  visible_gradients(model, v_model, y_model).values(),
                                                  strict=True):
            grads[parameter] = data - model_part
        for parameter, grad in grads.items():
            if parameter.requires_grad:
                parameter.grad = grad
        gap = model.free_energy(v_data, data_input).mean() - model.free_energy(v_model, model_input).mean()
        return gap.item()

    def epoch_metrics(self) -> dict[str, float]:
        return self.sampler.epoch_metrics()

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def visible_gradients(model: RBM, v: Tensor, y: Tensor) -> dict[Tensor, Tensor]:
    """Batch means of ``dF(v)/d(visible parameters)``; ``y = E[h|v] - lambda``.

    Bernoulli and categorical units: ``dF/db = -v``. Gaussian units, ``F`` holding
    ``sum (v - b)^2 / (2 sigma^2)`` and the weights seeing ``v / sigma``:
    ``dF/db = -(v - b) / sigma^2`` and ``dF/d log sigma = -(v - b)^2 / sigma^2
    + (v / sigma) * (y W^T)`` (zero where ``log sigma`` sits below its floor, as the clamp
    makes it for autograd).
    """
    units = model.visible
    if units.name != "gaussian":
        return {units.bias: -v.mean(0)}
    sigma = units.sigma
    z = (v - units.bias) / sigma
    grads = {units.bias: -(z / sigma).mean(0)}
    if units.log_sigma.requires_grad:
        through_weights = (v / sigma) * (y @ model.weight.T)
        floor = (units.log_sigma >= units.min_log_sigma).to(v.dtype)
        grads[units.log_sigma] = (through_weights - z**2).mean(0) * floor
    return grads
