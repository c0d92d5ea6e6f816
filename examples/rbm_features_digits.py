"""RBM features for digit classification, with boltzkit's drop-in BernoulliRBM.

The classic scikit-learn pipeline (an RBM's hidden-unit probabilities as features for a
logistic regression, on the 8x8 digits enlarged by one-pixel shifts), unchanged except
for the import, then with what boltzkit adds: a centered RBM, PCD with momentum, more
hidden units and passes. Prints the test accuracy and training time of each, beside
the logistic regression on raw pixels.

    python examples/rbm_features_digits.py
"""

from __future__ import annotations

import time

import numpy as np
from sklearn import neural_network
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale

from boltzkit.sklearn import BernoulliRBM


def nudged_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits and four copies shifted by one pixel (up, left, right, down), as
    in scikit-learn's example: 5 x 1,797 images scaled to [0, 1]."""
    images, labels = load_digits(return_X_y=True)
    images = images.reshape(-1, 8, 8).astype(np.float32)
    shifted = [images]
    for axis, step in ((1, -1), (2, -1), (2, 1), (1, 1)):
        moved = np.roll(images, step, axis=axis)
        edge = 0 if step == 1 else -1  # the row or column that wrapped around is blank
        if axis == 1:
            moved[:, edge, :] = 0
        else:
            moved[:, :, edge] = 0
        shifted.append(moved)
    x = np.concatenate(shifted).reshape(-1, 64)
    return minmax_scale(x, feature_range=(0, 1)), np.tile(labels, 5)


def logistic() -> LogisticRegression:
    """scikit-learn's example uses C=6000; lbfgs, since newton-cg with its tol=1 now stops
    before the first iteration."""
    return LogisticRegression(C=6000, max_iter=2000)


PIPELINES = {
    "scikit-learn's BernoulliRBM (its example)": lambda: neural_network.BernoulliRBM(
        n_components=100, learning_rate=0.06, n_iter=10, random_state=0),
    # scikit-learn's example settings, only the import changed
    "drop-in (scikit-learn's settings)": lambda: BernoulliRBM(
        n_components=100, learning_rate=0.06, n_iter=10, random_state=0),
    # the same model trained the boltzkit way
    "boltzkit: centered PCD, momentum, 400 units": lambda: BernoulliRBM(
        n_components=400, n_iter=40, batch_size=20, centered=True, random_state=0,
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, schedule={"name": "cosine"}),
}


def main() -> dict[str, dict[str, float]]:
    x, y = nudged_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    results = {}
    started = time.perf_counter()
    raw = logistic().fit(x_train, y_train)
    results["logistic regression on raw pixels"] = {
        "accuracy": raw.score(x_test, y_test), "seconds": time.perf_counter() - started}
    for name, make_rbm in PIPELINES.items():
        started = time.perf_counter()
        pipeline = Pipeline([("rbm", make_rbm()), ("logistic", logistic())]).fit(x_train, y_train)
        results[name] = {"accuracy": pipeline.score(x_test, y_test),
                         "seconds": time.perf_counter() - started}
    for name, result in results.items():
        print(f"{name:46s} test accuracy {result['accuracy']:.4f}   {result['seconds']:6.1f} s")
    return results


if __name__ == "__main__":
    main()
