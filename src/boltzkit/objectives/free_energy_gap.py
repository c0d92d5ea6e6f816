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

from torch import Tensor

from ..models.rbm import RBM
from ..sampling.negative import NegativeSampler
from .base import Objective


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

    def epoch_metrics(self) -> dict[str, float]:
        return self.sampler.epoch_metrics()

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
