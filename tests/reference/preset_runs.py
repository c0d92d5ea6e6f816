"""Train each preset briefly and save the final weights: the regression reference.

Run as a script in a fresh process, so that the numerical environment can be pinned
before PyTorch loads: one thread, AVX2 kernels in ATen and MKL's conditional numerical
reproducibility (``MKL_CBWR=AVX2``), which give the same bits on Intel AVX-512 and AMD
AVX2 machines. ``tests/test_preset_regression.py`` runs it and compares the weights to
``tests/reference/weights/*.safetensors``, saved by this script before the model-family
refactor (``python tests/reference/preset_runs.py OUT [--mnist FILE]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PINNED_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2",
              "MKL_CBWR": "AVX2"}

# name -> (preset, overrides); short runs that still cross an epoch boundary
CASES: dict[str, tuple[str, list[str]]] = {
    "rbm-digits": ("rbm-digits", ["train.epochs=2", "data.limit=400"]),
    "rbm-digits-cd": ("rbm-digits", ["train.epochs=2", "data.limit=400", "train.method=cd"]),
    "rbm-digits-pt": ("rbm-digits", ["train.epochs=2", "data.limit=400", "train.method=pt",
                                     "train.k=1", "train.pt.temperatures=4"]),
    "grbm-digits": ("grbm-digits", ["train.epochs=2", "data.limit=400"]),
    "rbm-potts": ("rbm-potts", ["train.epochs=2", "data.potts.examples=600"]),
    "bm-digits": ("rbm-digits", ["model={type: bm, n_hidden: 3}", "train.epochs=1",
                                 "data.limit=96", "train.k=1", "train.positive_steps=3"]),
    "mlp-digits": ("rbm-digits", ["model={type: mlp, hidden_layers: [32, 16], batch_norm: true, "
                                  "dropout: 0.1}", "train.epochs=2",
                                  "data.limit=400", "data.binarize=none",
                                  "train.optimizer={name: adam, lr: 0.001}"]),
    "rbm-mnist": ("rbm-mnist", ["train.epochs=1", "data.limit=300", "model.n_hidden=50",
                                "train.metrics_examples=200"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mnist", type=Path, help="mnist.npz (the rbm-mnist case is skipped without it)")
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    args = parser.parse_args()

    import torch

    from boltzkit import load_config
    from boltzkit.train import train

    torch.set_num_threads(1)
    done = {}
    for name, (preset, overrides) in CASES.items():
        if args.only and name not in args.only:
            continue
        if name == "rbm-mnist":
            if args.mnist is None:
                continue
            overrides = [*overrides, f"data.dir={args.mnist.parent}"]
        # torch's products (MKL, pinned above): train.product_kernel auto would pick oneDNN on
        # AMD CPUs, whose bits MKL_CBWR does not pin
        config = load_config(preset, [*overrides, "device=cpu", "threads=1", "train.product_kernel=torch"])
        torch.manual_seed(config.seed)  # as the command line does
        result = train(config, args.out / name, progress=False)
        done[name] = result.history[-1]
    (args.out / "summary.json").write_text(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
