import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# unexpected errors raise in tests instead of becoming the CLI's one-line "internal error"
os.environ["BOLTZKIT_DEBUG"] = "1"

SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist.npz"


@pytest.fixture
def mnist_path() -> Path:
    """The development copy of MNIST (../shared/data/mnist.npz or $BOLTZKIT_MNIST)."""
    path = Path(os.environ.get("BOLTZKIT_MNIST", SHARED_MNIST)).resolve()
    if not path.is_file():
        pytest.skip(f"MNIST not available at {path} (set BOLTZKIT_MNIST to an mnist.npz)")
    return path


@pytest.fixture
def diverge_above(monkeypatch):
    """``diverge_above(rate)``: from now on a gradient step whose learning rate exceeds
    ``rate`` meets a NaN loss, as a real divergence would (the step raises before any
    update). Rates that diverge for real (1e30) are now refused as bad input."""
    from boltzkit.families.steps import GradientStep, NonFiniteLoss

    def install(rate: float) -> None:
        step = GradientStep.__call__

        def maybe_diverge(self, model, batch):
            if self.lr > rate:
                raise NonFiniteLoss(float("nan"), self.lr)
            return step(self, model, batch)

        monkeypatch.setattr(GradientStep, "__call__", maybe_diverge)

    return install
