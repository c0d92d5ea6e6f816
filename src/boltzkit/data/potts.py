"""A synthetic Potts chain: sequences with a known distribution, for categorical RBMs.

Sequences ``x_1 .. x_L`` over ``k`` states (one-hot encoded, ``L * k`` features) drawn
exactly from

    p(x) = exp(J sum_i [x_i = x_{i+1}] + sum_i h_{x_i}) / Z

with a coupling ``J`` between neighbours and a field ``h`` (``h_s = field * s / (k - 1)``
favours high states). The chain is sampled forward from its transfer matrix
``T_ab = exp(J [a = b] + h_b)``, and ``log p(x)`` is exact, so a model's fit can be
compared with the true distribution's entropy.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class PottsChain:
    def __init__(self, length: int, states: int, coupling: float = 1.0, field: float = 0.0):
        if length < 2 or states < 2:
            raise ValueError(f"Invalid Potts chain: length {length}, states {states} (need >= 2 each)")
        self.length, self.states = length, states
        self.h = field * np.arange(states) / (states - 1)
        self.transfer = np.exp(coupling * np.eye(states) + self.h[None, :])  # T[a, b]
        # backward messages: beta[i][a] = sum over x_{i+1..L} given x_i = a
        self.messages = [np.ones(states)]
        for _ in range(length - 1):
            self.messages.insert(0, self.transfer @ self.messages[0])
        self.log_z = float(np.log(np.exp(self.h) @ self.messages[0]))
        self.coupling = coupling

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` sequences of state indices, ``(n, length)``, drawn exactly."""
        rng = np.random.default_rng(seed)
        x = np.empty((n, self.length), dtype=np.int64)
        first = np.exp(self.h) * self.messages[0]
        x[:, 0] = rng.choice(self.states, size=n, p=first / first.sum())
        for i in range(1, self.length):
            weights = self.transfer[x[:, i - 1]] * self.messages[i][None, :]  # (n, k)
            cumulative = np.cumsum(weights / weights.sum(1, keepdims=True), axis=1)
            x[:, i] = (rng.random((n, 1)) > cumulative).sum(1).clip(max=self.states - 1)
        return x

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact ``log p(x)`` of index sequences ``(n, length)``."""
        same = (x[:, 1:] == x[:, :-1]).sum(1)
        return self.coupling * same + self.h[x].sum(1) - self.log_z


def one_hot(x: np.ndarray, states: int) -> Tensor:
    """Index sequences ``(n, L)`` as one-hot features ``(n, L * states)`` (float32)."""
    return torch.nn.functional.one_hot(torch.from_numpy(x), states).reshape(len(x), -1).float()
