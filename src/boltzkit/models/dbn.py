"""Deep belief network: a stack of RBMs trained greedily, one layer at a time.

With ``L`` RBMs over the layers ``h_0 = v, h_1, ..., h_L`` (RBM ``l`` joins ``h_{l-1}`` and
``h_l``), the DBN is the directed model of Hinton, Osindero & Teh (2006)::

    p(v, h_1, ..., h_L) = p(h_{L-1}, h_L) * prod_{l=1}^{L-1} p(h_{l-1} | h_l)

the top RBM an undirected joint over its two layers, each lower RBM used only for its
top-down conditional ``p(h_{l-1} | h_l)``. The approximate posterior used for training
the next layer, for the bound and for classification is the bottom-up product of the
RBMs' own conditionals ``q(h_l | h_{l-1})``.

Two options of Hinton, Osindero & Teh (2006) extend it:

- **Labels** (``classes > 0``): the top RBM's visible layer is ``[h_{L-1}, y]`` with ``y`` one
  softmax group of ``classes`` label units (:class:`~boltzkit.units.LabelledUnits`). The model
  then generates images of a chosen class (the label clamped during the top RBM's Gibbs
  chain) and classifies: the class whose ``[h_{L-1}, y]`` has the lowest free energy.
- **Untied recognition weights** (``recognition=True``): after greedy training, up-down
  fine-tuning (:mod:`boltzkit.objectives.updown`) moves the generative weights of the layers
  below the top (each RBM's ``weight`` and visible bias, read top-down by :meth:`DBN.down`)
  and separate recognition weights (``recognition[l]``, read bottom-up by :meth:`DBN.up`)
  apart. Until :meth:`DBN.untie` copies them, the recognition weights are the RBMs' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..units import Units, bernoulli
from .rbm import RBM


def log_conditional(units: Units, x: Tensor, a: Tensor) -> Tensor:
    """``log p(x | a)`` of a layer given its input ``a``, ``(B, n), (B, n) -> (B,)``.

    Every unit family has ``p(x | a) = exp(-self_energy(x) + scaled(x) . a - log_partition(a))``
    (:mod:`boltzkit.units`), e.g. for Bernoulli units ``sum_i x_i z_i - softplus(z_i)`` with
    ``z = b + a``; for Gaussian units it is a log density.
    """
    return -units.self_energy(x) + (units.scaled(x) * a).sum(dim=-1) - units.log_partition(a)


class Recognition(nn.Module):
    """The untied bottom-up weights of one layer: ``q(h | x) = prod_j sigmoid(z_j)^h_j
    (1 - sigmoid(z_j))^(1 - h_j)`` with ``z = x A + c``, ``A`` ``(n_in, n_out)``, ``c`` ``(n_out,)``
    (the form of :meth:`RBM.hidden_affine`, which they start from)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def logits(self, x: Tensor) -> Tensor:
        """``z = x A + c``, ``(B, n_in) -> (B, n_out)``."""
        return x @ self.weight + self.bias

    def extra_repr(self) -> str:
        return f"n_in={self.weight.shape[0]}, n_out={self.weight.shape[1]}"


class DBN(nn.Module):
    """A deep belief network of ``len(layers)`` RBMs.

    Args:
        n_visible: visible units ``D``.
        layers: hidden layer widths ``[H_1, ..., H_L]`` (``L >= 1``).
        visible: ``bernoulli`` or ``gaussian`` units for ``v`` (upper layers are Bernoulli).
        init_std: standard deviation of the Gaussian initial weights.
        generator: random source for the initial weights (drawn bottom layer first, so the
            first RBM starts exactly as an RBM built from the same generator).
        centered: every RBM centered (Melchior, Fischer & Wiskott, 2016).
        visible_options: options of the visible family (``learn_variance``).
        classes: label units of the top RBM (0: none); its visible layer is then
            ``[h_{L-1}, y]``, ``H_{L-1} + classes`` units.
        recognition: hold untied recognition weights for the ``L - 1`` layers below the top
            (up-down fine-tuning); they are used once :meth:`untie` has copied them.

    Buffers: ``data_initialised`` ``(L,)`` marks the RBMs whose visible biases were set
    from the data they see (:meth:`init_layer_from_data`); ``untied`` ``()`` (only with
    recognition weights) whether the recognition weights are in use. Both are saved with
    the weights, so a resumed run does not set them again.

    Which weights serve where: the top-down pass (:meth:`down`, :meth:`generate`, ``p`` in the
    bound) always reads the RBMs' ``weight`` and visible biases (the generative weights); the
    bottom-up pass (:meth:`up`, ``q`` in the bound, :meth:`classify`, :meth:`hidden_affines`
    that seed an MLP) reads the recognition weights once untied, else the RBMs' ``weight`` and
    hidden biases.
    """

    activation = "sigmoid"
    """What its hidden units' means compute: an MLP seeded from it must use the same."""

    def __init__(
        self,
        n_visible: int,
        layers: Sequence[int],
        visible: str = "bernoulli",
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        centered: bool = False,
        visible_options: dict[str, Any] | None = None,
        classes: int = 0,
        recognition: bool = False,
    ):
        super().__init__()
        if not layers:
            raise ValueError("Invalid DBN: no hidden layers (expected at least one width)")
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(f"Invalid DBN visible units {visible!r}; accepted: bernoulli, gaussian")
        if classes and (classes < 2 or (len(layers) == 1 and visible != "bernoulli")):
            raise ValueError(f"Invalid DBN labels: {classes} classes with {len(layers)} layer(s) over "
                             f"{visible} units (need at least 2 classes, and the top RBM's other visible "
                             "units binary: bernoulli visible units or at least two layers)")
        widths = [n_visible, *layers]
        top = len(layers) - 1
        self.rbms = nn.ModuleList(
            RBM(below + (classes if depth == top else 0), above,
                "labelled" if classes and depth == top else visible if depth == 0 else "bernoulli",
                "bernoulli", init_std, generator, centered=centered,
                visible_options={"classes": classes} if classes and depth == top
                else visible_options if depth == 0 else None)
            for depth, (below, above) in enumerate(zip(widths, widths[1:], strict=False)))
        self.classes = classes
        # zeros until untie() copies the RBMs' bottom-up weights in (a fresh model has none)
        self.recognition = nn.ModuleList(Recognition(below, above) for below, above in
                                         zip(widths[:-2], widths[1:-1], strict=True)) if recognition else None
        self.register_buffer("data_initialised", torch.zeros(len(layers), dtype=torch.bool))
        # only with recognition weights: the saved weights of a DBN without them keep their keys
        self.register_buffer("untied", torch.tensor(False) if recognition else None)

    @property
    def n_visible(self) -> int:
        return self.rbms[0].n_visible

    @property
    def depth(self) -> int:
        """The number of RBMs ``L``."""
        return len(self.rbms)

    @property
    def top(self) -> RBM:
        return self.rbms[-1]

    def truncated(self, depth: int) -> DBN:
        """The DBN of the first ``depth`` RBMs, sharing their parameters (not a copy): what
        greedy training has built once layer ``depth`` is trained."""
        if not 1 <= depth <= self.depth:
            raise ValueError(f"Invalid depth: {depth} (expected 1 to {self.depth})")
        view = DBN.__new__(DBN)
        nn.Module.__init__(view)
        view.rbms = nn.ModuleList(self.rbms[:depth])
        view.classes = self.classes if depth == self.depth else 0
        view.recognition = None if self.recognition is None else nn.ModuleList(self.recognition[:depth - 1])
        view.register_buffer("data_initialised", self.data_initialised[:depth])
        view.register_buffer("untied", self.untied)
        return view

    @property
    def top_width(self) -> int:
        """``H_{L-1}``: the top RBM's visible units that are not labels."""
        return self.top.n_visible - self.classes

    @property
    def tied(self) -> bool:
        """Whether the bottom-up pass reads the RBMs' own weights (no up-down fine-tuning yet)."""
        return self.untied is None or not bool(self.untied)

    # ---------------------------------------------------------------- labels

    def label_units(self, labels: Tensor, like: Tensor) -> Tensor:
        """One-hot label units ``y`` of the class indices ``labels`` ``(B,)``, ``(B, classes)`` in
        ``like``'s dtype and device."""
        if not self.classes:
            raise ValueError("this DBN has no label units (built with classes=0)")
        if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < self.classes:
            raise ValueError(f"Invalid label: {int(labels.min())}..{int(labels.max())} (expected 0 to "
                             f"{self.classes - 1})")
        return F.one_hot(labels.long(), self.classes).to(like)

    def top_visible(self, h: Tensor, labels: Tensor | None = None) -> Tensor:
        """The top RBM's visible state ``[h_{L-1}, y]`` (``h_{L-1}`` alone without label units)."""
        if not self.classes:
            return h
        if labels is None:
            raise ValueError("this DBN's top RBM sees labels: pass labels")
        return torch.cat([h, self.label_units(labels, h)], dim=1)

    def label_free_energies(self, h: Tensor) -> Tensor:
        """``F([h_{L-1}, e_y])`` of the top RBM for every class ``y``, ``(B, H_{L-1}) -> (B, classes)``."""
        eye = torch.eye(self.classes, dtype=h.dtype, device=h.device)
        rows = torch.cat([h.repeat_interleave(self.classes, dim=0), eye.repeat(len(h), 1)], dim=1)
        return self.top.free_energy(rows).reshape(len(h), self.classes)

    def top_free_energy(self, h: Tensor) -> Tensor:
        """The top RBM's free energy of ``h_{L-1}`` ``(B, H_{L-1}) -> (B,)``, the label units summed
        out: ``-log sum_y exp(-F([h, e_y]))`` (``F(h)`` itself without labels)."""
        if not self.classes:
            return self.top.free_energy(h)
        return -torch.logsumexp(-self.label_free_energies(h), dim=1)

    def classify(self, v: Tensor) -> Tensor:
        """The generative classifier of Hinton, Osindero & Teh (2006, section 6): the class
        ``argmin_y F([h_{L-1}, e_y])`` with ``h_{L-1}`` from the deterministic bottom-up pass
        (:meth:`up`, probabilities), ``(B, D) -> (B,)`` class indices (the most probable class
        under ``p(y | h_{L-1})``)."""
        return self.label_free_energies(self.up(v, self.depth - 1)).argmin(dim=1)

    @torch.no_grad()
    def clamped_top(self, label: int) -> RBM:
        """The top RBM with its label units clamped to ``e_label``: an RBM over ``h_{L-1}`` and
        ``h_L`` whose hidden layer receives the label's input as extra bias,
        ``c' = c + (e_label - mu_y) W_y`` (``mu_y`` the labels' centering offsets), so that its
        ``p(h_{L-1}, h_L)`` is the top RBM's ``p(h_{L-1}, h_L | y = label)``. A copy: training the
        DBN does not change it."""
        top, n = self.top, self.top_width
        y = self.label_units(torch.tensor([label]), top.weight)[0]
        # its own throwaway generator: the weights are overwritten, the global one is left alone
        rbm = RBM(n, top.n_hidden, "bernoulli", "bernoulli", 0.0, torch.Generator(),
                  centered=top.centered).to(top.weight)
        rbm.weight.copy_(top.weight[:n])
        rbm.visible.bias.copy_(top.visible.bias[:n])
        rbm.visible_offset.copy_(top.visible_offset[:n])
        rbm.hidden_offset.copy_(top.hidden_offset)
        shift = (y - top.visible_offset[n:]) if top.centered else y
        rbm.hidden.bias.copy_(top.hidden.bias + shift @ top.weight[n:])
        return rbm

    # ---------------------------------------------------------------- bottom-up

    def recognition_mean(self, layer: int, x: Tensor) -> Tensor:
        """``E_q[h_{layer+1} | h_layer = x]`` (``layer`` 0-based, below the top RBM: its own
        weights, or the untied recognition weights), ``(B, H_layer) -> (B, H_{layer+1})``."""
        if self.tied or layer == self.depth - 1:
            return self.rbms[layer].hidden_mean(x)
        return torch.sigmoid(self.recognition[layer].logits(x))

    def recognition_log_prob(self, layer: int, h: Tensor, x: Tensor) -> Tensor:
        """``log q(h_{layer+1} = h | h_layer = x)``, ``(B,)``: Bernoulli units,
        ``sum_j h_j z_j - softplus(z_j)``."""
        if self.tied or layer == self.depth - 1:
            rbm = self.rbms[layer]
            return log_conditional(rbm.hidden, h, rbm.hidden_input(x))
        z = self.recognition[layer].logits(x)
        return (h * z - F.softplus(z)).sum(dim=-1)

    def up(self, v: Tensor, depth: int, sample: bool = False,
           generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """The representation at layer ``depth`` (``0 <= depth <= L``), ``(B, D) -> (B, H_depth)``:
        ``h_l = E_q[h_l | h_{l-1}]`` (``sample=False``) or ``h_l ~ q(h_l | h_{l-1})`` from
        ``generator``, for ``l = 1 .. depth``; ``depth = 0`` returns ``v``. The top layer of a
        DBN with labels also needs the class indices ``labels`` ``(B,)``."""
        if not 0 <= depth <= self.depth:
            raise ValueError(f"Invalid depth: {depth} (expected 0 to {self.depth})")
        x = v
        for layer in range(depth):
            if layer == self.depth - 1:
                x = self.top_visible(x, labels)
            mean = self.recognition_mean(layer, x)
            x = bernoulli(mean, generator) if sample else mean
        return x

    def hidden_affines(self) -> list[tuple[Tensor, Tensor]]:
        """One ``(A_l, c_l)`` per RBM (see :meth:`RBM.hidden_affine`): an MLP with sigmoid
        units and these layers computes the mean-field pass :meth:`up` (``sample=False``).
        After :meth:`untie` the layers below the top are the recognition weights; the top
        RBM's label rows are left out (an MLP sees no label: ``y = 0``)."""
        affines = [rbm.hidden_affine() if self.tied or layer == self.depth - 1
                   else (self.recognition[layer].weight.detach().clone(),
                         self.recognition[layer].bias.detach().clone())
                   for layer, rbm in enumerate(self.rbms)]
        weight, bias = affines[-1]
        affines[-1] = (weight[: self.top_width], bias)
        return affines

    @torch.no_grad()
    def untie(self) -> None:
        """Start the recognition weights of the layers below the top from the RBMs'
        (:meth:`RBM.hidden_affine`), once: later calls are no-ops (the flag is saved with the
        weights). From here :meth:`up` reads them and the RBMs' weights are generative only."""
        if self.recognition is None:
            raise ValueError("this DBN holds no recognition weights (built with recognition=False)")
        if bool(self.untied):
            return
        for layer, recognition in enumerate(self.recognition):
            weight, bias = self.rbms[layer].hidden_affine()
            recognition.weight.copy_(weight)
            recognition.bias.copy_(bias)
        self.untied.fill_(True)

    # ---------------------------------------------------------------- top-down

    def down(self, h: Tensor, depth: int, generator: torch.Generator | None = None,
             sample: bool = True) -> tuple[Tensor, Tensor]:
        """The top-down pass from ``h = h_depth`` to the visible layer: ``h_{l-1} ~ p(h_{l-1} | h_l)``
        for ``l = depth .. 1`` (with ``sample=False`` the means ``E[h_{l-1} | h_l]`` are passed
        down instead: deterministic, no random draws). Returns the visible sample and its mean
        ``E[v | h_1]``, each ``(B, D)`` (for ``depth = 0``, ``h`` twice)."""
        if not 0 <= depth <= self.depth:
            raise ValueError(f"Invalid depth: {depth} (expected 0 to {self.depth})")
        x, mean = h, h
        for layer in reversed(range(depth)):
            rbm = self.rbms[layer]
            a = rbm.visible_input(x)
            mean = rbm.visible.mean(a)
            x = rbm.visible.sample(a, generator) if sample else mean
            if layer == self.depth - 1 and self.classes:  # the labels are not a layer below
                mean, x = mean[:, : self.top_width], x[:, : self.top_width]
        return x, mean

    @torch.no_grad()
    def generate(self, n: int, steps: int = 1000, generator: torch.Generator | None = None,
                 temperatures: int = 0, min_beta: float = 0.5, label: int | None = None
                 ) -> tuple[Tensor, Tensor]:
        """``n`` samples of ``v``: ``steps`` Gibbs sweeps in the top RBM (parallel tempering
        with ``temperatures >= 2``) give ``h_{L-1}``, then one top-down pass (:meth:`down`).
        With ``label`` (a DBN with label units) the label units stay clamped to that class
        during the sweeps (:meth:`clamped_top`), so ``h_{L-1} ~ p(h_{L-1} | y = label)``; without,
        they are sampled with the rest. Returns the visible states and their means
        ``E[v | h_1]``, each ``(n, D)``."""
        from ..sampling.draw import draw_samples  # sampling builds on the models

        if steps < 1:
            raise ValueError(f"Invalid number of Gibbs sweeps: {steps} (expected >= 1)")
        if label is not None and not self.classes:
            raise ValueError("this DBN was trained without labels: it cannot generate a given class")
        top = self.top if label is None else self.clamped_top(label)
        top_states, top_means = draw_samples(top, n, steps, generator, temperatures, min_beta)
        top_states, top_means = top_states[:, : self.top_width], top_means[:, : self.top_width]
        if self.depth == 1:
            return top_states, top_means
        return self.down(top_states, self.depth - 1, generator)

    # ---------------------------------------------------------------- likelihood

    def log_joint_over_posterior(self, v: Tensor, latents: Sequence[Tensor]) -> Tensor:
        """The importance log-weight ``log w = log p*(v, h_1..h_{L-1}) - log q(h_1..h_{L-1} | v)``,
        ``(B,)``, of given states ``latents = [h_1, ..., h_{L-1}]`` (each ``(B, H_l)``), where
        ``p* = p * Z_top`` leaves out the top RBM's partition function::

            log p*(v, h) = sum_{l=1}^{L-1} log p(h_{l-1} | h_l) - F_top(h_{L-1})
            log q(h | v) = sum_{l=1}^{L-1} log q(h_l | h_{l-1})

        ``E_q[w] = p(v) Z_top``, so ``log mean(w) - log Z_top`` over draws from ``q`` is a
        stochastic lower bound on ``log p(v)`` (Salakhutdinov & Murray, 2008, section 5, for
        ``L = 2``; the same argument holds for any depth). For ``L = 1`` it is ``-F(v)``.
        ``F_top`` sums the label units out (:meth:`top_free_energy`); ``q`` is the bottom-up
        pass of :meth:`up` (the recognition weights once untied: any ``q`` keeps the bound).
        """
        if len(latents) != self.depth - 1:
            raise ValueError(f"expected {self.depth - 1} latent layers, got {len(latents)}")
        states = [v, *latents]
        log_w = -self.top_free_energy(states[-1])
        for layer, (below, above) in enumerate(zip(states, states[1:], strict=False)):
            log_w = log_w + self.generative_log_prob(layer, below, above)
            log_w = log_w - self.recognition_log_prob(layer, above, below)
        return log_w

    def generative_log_prob(self, layer: int, x: Tensor, h: Tensor) -> Tensor:
        """``log p(h_layer = x | h_{layer+1} = h)`` of a layer below the top RBM, ``(B,)``, from
        RBM ``layer``'s weights and visible biases (:func:`log_conditional`)."""
        rbm = self.rbms[layer]
        return log_conditional(rbm.visible, x, rbm.visible_input(h))

    def sample_posterior(self, v: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """``[h_1, ..., h_{L-1}]`` drawn from the bottom-up ``q(h | v)`` (the top layer ``h_L``
        is summed out analytically by the top RBM's free energy)."""
        states, x = [], v
        for layer in range(self.depth - 1):
            x = bernoulli(self.recognition_mean(layer, x), generator)
            states.append(x)
        return states

    # ---------------------------------------------------------------- initialisation

    def init_from_data(self, data_mean: Tensor) -> None:
        """The first RBM's visible biases (and centering offsets) from the data's means."""
        self.init_layer_from_data(0, data_mean)

    @torch.no_grad()
    def init_layer_from_data(self, layer: int, mean: Tensor) -> None:
        """RBM ``layer``'s visible biases from the mean of what it sees (``E[h_layer]`` over the
        data: log-odds of the means, Hinton 2010, section 8), once: later calls are no-ops."""
        if not bool(self.data_initialised[layer]):
            self.rbms[layer].init_from_data(mean)
            self.data_initialised[layer] = True

    def extra_repr(self) -> str:
        widths = [self.n_visible] + [rbm.n_hidden for rbm in self.rbms]
        return (f"layers={'-'.join(map(str, widths))}" + (f", classes={self.classes}" if self.classes else "")
                + (", recognition" if self.recognition is not None else ""))
