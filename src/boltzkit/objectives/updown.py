"""Up-down fine-tuning of a deep belief network (Hinton, Osindero & Teh, 2006, section 5 and
appendix B): a contrastive wake-sleep algorithm on a DBN whose layers below the top RBM have
untied recognition (bottom-up) and generative (top-down) weights.

For one batch ``x`` (with labels ``y`` when the top RBM has label units), ``L`` RBMs:

1. **wake**: ``h_0 = x``, ``h_l ~ q(h_l | h_{l-1})`` for ``l = 1 .. L-1`` (recognition weights);
   the generative weights learn to reconstruct each layer from the one above, the delta rule
   ``dW_l = h_l^T (h_{l-1} - p_{l-1}) / B``, ``db_{l-1} = mean(h_{l-1} - p_{l-1})`` with
   ``p_{l-1} = E[h_{l-1} | h_l]``;
2. **top**: ``k`` Gibbs sweeps in the top RBM from ``[h_{L-1}, y]`` (CD-k, the label units
   sampled with the rest) and its contrastive update;
3. **sleep**: from the top RBM's negative ``h~_{L-1}``, ``h~_{l-1} ~ p(h_{l-1} | h~_l)`` down to
   ``h~_1`` and the probabilities ``v~ = E[v | h~_1]`` at the bottom (as the paper's code does);
   the recognition weights learn to predict each layer from the one below,
   ``dR_l = h~_{l-1}^T (h~_l - q_l) / B``, ``dr_l = mean(h~_l - q_l)``, ``q_l = E_q[h_l | h~_{l-1}]``.

All three are one surrogate loss whose autograd gradient (negated) is exactly those rules,
the sampled states held constant::

    loss = - mean sum_{l<L} log p(h_{l-1} | h_l)          (wake; generative parameters)
           + mean F_top([h_{L-1}, y]) - mean F_top(negatives)   (top RBM)
           - mean sum_{l<L} log q(h~_l | h~_{l-1})          (sleep; recognition parameters)

Each parameter appears in one term only (the loss refuses a DBN whose recognition weights
are still tied), so any ``torch.optim`` optimizer, clipping and schedule applies. With
centered RBMs the generative terms use the centered states, ``(h_l - lambda_l)`` in place
of ``h_l`` in the wake rule and in the top RBM's statistics: the same rules for the
centered energy (the uncentered case is the one tested against the formulas). With
Bernoulli units ``d/dz [x z - softplus(z)] = x - sigmoid(z)``: the delta rule above.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..models.dbn import DBN
from ..units import bernoulli
from .base import Objective
from .free_energy_gap import FreeEnergyGap


class UpDown(Objective):
    """The up-down surrogate of the module docstring for the DBN it is called with.

    Args:
        top: the top RBM's contrastive objective (a :class:`FreeEnergyGap` over CD-k chains,
            which start at the wake states).
        generator: the wake and sleep draws (owned, saved in :meth:`state_dict`).

    Batches are ``x`` ``(B, D)``, or ``[x, y]`` ``(B, D + classes)`` with the one-hot label in
    the last columns when the top RBM has label units.
    """

    def __init__(self, top: FreeEnergyGap, generator: torch.Generator):
        self.top, self.generator = top, generator
        self.sums = {"wake": 0.0, "sleep": 0.0, "batches": 0}
        self.wake: list[Tensor] = []  # the last batch's states, for inspection and tests
        self.sleep: list[Tensor] = []

    @torch.no_grad()
    def wake_states(self, model: DBN, x: Tensor) -> list[Tensor]:
        """``[h_0 = x, h_1, ..., h_{L-1}]``, each ``h_l ~ q(h_l | h_{l-1})``."""
        states = [x]
        for layer in range(model.depth - 1):
            states.append(bernoulli(model.recognition_mean(layer, states[-1]), self.generator))
        return states

    @torch.no_grad()
    def sleep_states(self, model: DBN, top: Tensor) -> list[Tensor]:
        """``[v~, h~_1, ..., h~_{L-1} = top]``: a top-down pass from the top RBM's negative
        ``h~_{L-1}``, sampling every layer but the visible one (its probabilities)."""
        states = [top]
        for layer in reversed(range(model.depth - 1)):
            rbm = model.rbms[layer]
            a = rbm.visible_input(states[0])
            states.insert(0, rbm.visible.mean(a) if layer == 0 else rbm.visible.sample(a, self.generator))
        return states

    def loss(self, model: DBN, batch: Tensor) -> Tensor:
        if model.depth > 1 and model.tied:
            raise ValueError("up-down needs untied recognition weights: build DBN(..., recognition=True) "
                             "and call model.untie() first (else the sleep phase would train the "
                             "generative weights too)")
        width = model.n_visible
        x, y = batch[:, :width], batch[:, width:]
        wake = self.wake_states(model, x)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        wake_loss = -sum((model.generative_log_prob(layer, wake[layer], wake[layer + 1]).mean()
                          for layer in range(model.depth - 1)), zero)
        top_loss = self.top.loss(model.top, torch.cat([wake[-1], y], dim=1))
        sleep = self.sleep_states(model, self.top.negatives[:, : model.top_width])
        sleep_loss = -sum((model.recognition_log_prob(layer, sleep[layer + 1], sleep[layer]).mean()
                           for layer in range(model.depth - 1)), zero)
        self.wake, self.sleep = wake, sleep
        self.sums["wake"] += wake_loss.item()
        self.sums["sleep"] += sleep_loss.item()
        self.sums["batches"] += 1
        return wake_loss + top_loss + sleep_loss

    def epoch_metrics(self) -> dict[str, float]:
        """``wake_nll`` and ``sleep_nll``: the epoch's mean of the wake and sleep terms (nats
        per example: how well the generative weights reconstruct the recognition samples, and
        the recognition weights the generated ones), and the top sampler's own metrics."""
        batches = self.sums["batches"]
        metrics = ({"wake_nll": self.sums["wake"] / batches, "sleep_nll": self.sums["sleep"] / batches}
                   if batches else {})
        self.sums = {"wake": 0.0, "sleep": 0.0, "batches": 0}
        return {**metrics, **self.top.epoch_metrics()}

    def state_dict(self) -> dict[str, Any]:
        return {"top": self.top.state_dict(), "generator": self.generator.get_state(),
                "sums": dict(self.sums)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.top.load_state_dict(state["top"])
        self.generator.set_state(state["generator"])
        self.sums = dict(state["sums"])
