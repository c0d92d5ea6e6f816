"""The negative phase of a free-energy-gap objective, as one interface over our samplers."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor


class NegativeSampler(ABC):
    """Draws the model samples ``v~`` that a training update contrasts with the data.

    Per update the objective calls :meth:`negatives` with the data batch and, where
    ``uses_data_input``, its hidden input ``a = (s(v) - mu) W`` (detached; CD chains start
    from it). Where ``uses_model_input``, it then hands back ``a~`` of the samples, which
    the free energy needs anyway, through :meth:`observe` (persistent chains draw their
    next hidden state from it, saving a matrix product). State round-trips through
    :meth:`state_dict`; the generator is part of it.
    """

    uses_data_input = False
    uses_model_input = False

    @abstractmethod
    def negatives(self, model, v_data: Tensor, data_input: Tensor | None) -> Tensor:
        """Negative visible samples, ``(N, D)``."""

    def observe(self, model, model_input: Tensor) -> None:  # noqa: B027 (optional hook)
        """Receive ``a~`` of the samples just returned (default: not needed)."""

    def epoch_metrics(self) -> dict[str, float]:
        return {}

    @abstractmethod
    def state_dict(self) -> dict: ...

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...
