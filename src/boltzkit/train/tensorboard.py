"""``train.tensorboard: true``: every epoch's numeric metrics as TensorBoard scalars.

Written with PyTorch's own writer (``torch.utils.tensorboard``) to ``RUN/tensorboard``;
view with ``tensorboard --logdir RUN/tensorboard``. The writer needs the ``tensorboard``
package (``pip install 'boltzkit[tensorboard]'``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError


class TensorBoardLog:
    """Every numeric metric of an epoch as a scalar at step ``epoch``."""

    def __init__(self, folder: Path):
        self.writer = self.writer_class()(log_dir=str(folder))

    @staticmethod
    def writer_class() -> type:
        """PyTorch's ``SummaryWriter``, or a ConfigError saying how to install it (checked
        before a run directory is written)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError("train.tensorboard: true needs the tensorboard package: pip install "
                              f"'boltzkit[tensorboard]' (or pip install tensorboard); {err}") from None
        return SummaryWriter

    def log(self, metrics: dict[str, Any]) -> None:
        epoch = int(metrics["epoch"])
        for name, value in metrics.items():
            if name != "epoch" and isinstance(value, int | float) and not isinstance(value, bool) \
                    and math.isfinite(value):
                self.writer.add_scalar(name, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
