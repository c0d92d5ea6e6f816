"""The weight gradient of an energy-based model's contrastive update, as one product.

For an energy with a bilinear term ``-x W y`` (an RBM's visible and hidden layers, two
neighbouring layers of a DBM), the gradient of ``mean E(data) - mean E(model)`` with
respect to ``W`` is ``x_model^T y_model / n_model - x_data^T y_data / n_data``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import onednn


def contrast_product(x_data: Tensor, y_data: Tensor, x_model: Tensor, y_model: Tensor,
                     dtype: torch.dtype | None = None, kernel: str = "torch") -> Tensor:
    """``x_model^T y_model / n_model - x_data^T y_data / n_data``, ``(D, H)``, from ``x_*``
    ``(n_*, D)`` and ``y_*`` ``(n_*, H)``.

    With the model's dtype and the ``torch`` kernel: two products (``addmm``). With a lower
    ``dtype`` (bfloat16) or the ``onednn`` kernel: one fused product
    ``[x_data; x_model]^T [-y_data / n_data; y_model / n_model]``, so the two terms cancel
    inside the product's float32 accumulation and only their difference is rounded.
    """
    n_data, n_model = len(x_data), len(x_model)
    dtype = dtype or x_data.dtype
    in_onednn = kernel == "onednn" and dtype == x_data.dtype == torch.float32
    if dtype == x_data.dtype and not in_onednn:
        return torch.addmm(x_data.T @ y_data, x_model.T, y_model, beta=-1 / n_data, alpha=1 / n_model)
    y = torch.empty((n_data + n_model, y_data.shape[1]), dtype=y_data.dtype, device=y_data.device)
    torch.mul(y_data, -1 / n_data, out=y[:n_data])
    torch.mul(y_model, 1 / n_model, out=y[n_data:])
    if in_onednn:
        # x^T y is linear(x^T, weight=y^T) in oneDNN's (out, in) layout. oneDNN copies a
        # transposed input into rows itself; writing the two halves of x^T straight into
        # one buffer costs less than stacking them first and letting it copy (0.1 ms of
        # a 2.8 ms CD-1 update on MNIST)
        x_t = torch.empty((x_data.shape[1], n_data + n_model), dtype=x_data.dtype, device=x_data.device)
        x_t[:, :n_data].copy_(x_data.T)
        x_t[:, n_data:].copy_(x_model.T)
        return onednn.linear(x_t, y.T)
    x = torch.cat([x_data, x_model]).to(dtype)
    return (x.T @ y.to(dtype)).to(x_data.dtype)
