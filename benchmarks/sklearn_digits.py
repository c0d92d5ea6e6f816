"""The "RBM features for digit classification" pipeline with boltzkit's drop-in, beside
scikit-learn's own RBM, raw pixels, and an RBM-pretrained MLP (fine-tuned) against the
same MLP from random weights.

Data and pipelines come from ``examples/rbm_features_digits.py`` (the 8x8 digits and four
one-pixel shifts, 80 / 20 split with ``random_state=0``). One thread; times include the
RBM and the classifier.

    python benchmarks/sklearn_digits.py
"""

from __future__ import annotations

import os

os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from rbm_features_digits import CLASSIFIERS, PIPELINES, logistic, nudged_digits  # noqa: E402
from sklearn_rbm import cpu_name  # noqa: E402

from boltzkit.sklearn import BernoulliRBM  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    x, y = nudged_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    BernoulliRBM(n_components=4, n_iter=1).fit(x_train[:50])  # warm-up: first-call costs
    models = {"logistic regression on raw pixels": logistic, **PIPELINES, **CLASSIFIERS}
    rows = []
    for name, make in models.items():
        started = time.perf_counter()
        model = make().fit(x_train, y_train)
        row = {"model": name, "test_accuracy": model.score(x_test, y_test),
               "seconds": time.perf_counter() - started}
        rows.append(row)
        print(f"{name:58s} {row['test_accuracy']:.4f} {row['seconds']:7.1f} s", flush=True)
    result = {"command": "python benchmarks/sklearn_digits.py", "cpu": cpu_name(), "threads": 1,
              "train_examples": len(x_train), "test_examples": len(x_test), "rows": rows,
              "target": "test accuracy >= 0.97 with the drop-in RBM pipeline"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sklearn_digits.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS / 'sklearn_digits.json'}")


if __name__ == "__main__":
    main()
