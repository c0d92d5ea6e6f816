"""oneDNN products in the closed-form RBM and DBM updates (``train.product_kernel``) and in
AIS and mean-field evaluation (``eval.product_kernel``): the kernel computes ``x W^T``;
inside ``products_in`` every product goes through it and nowhere else; the update equals
torch's to float32 rounding (gradients and weights after several steps, plain and
centered, CD and PCD, and a DBM's mean field and chains); AIS in oneDNN brackets the
exact log Z; ``auto`` picks oneDNN on AMD CPUs only; the wiring through the trainer and
into DBN layers; and the errors that name the key."""

from __future__ import annotations

import contextlib
import copy
import math
import pickle

import pytest
import torch

from boltzkit import onednn
from boltzkit.config import load_config
from boltzkit.errors import ConfigError
from boltzkit.estimate import dbm as dbm_estimate
from boltzkit.estimate.ais import ais_log_partition
from boltzkit.estimate.dbm import dbm_ais_log_partition, evaluate_dbm
from boltzkit.estimate.exact import exact_log_partition
from boltzkit.families.task import set_products
from boltzkit.models.dbm import DBM
from boltzkit.models.rbm import RBM
from boltzkit.objectives.dbm import DBMLearning
from boltzkit.objectives.free_energy_gap import FreeEnergyGap
from boltzkit.sampling.dbm import DBMChains
from boltzkit.sampling.gibbs import ContrastiveChains, PersistentChains
from boltzkit.train import Fit
from helpers import product_test_rbm

pytestmark = pytest.mark.skipif(not onednn.available(), reason="this PyTorch has no oneDNN linear kernel")
DIGITS = ["data.limit=200", "train.epochs=1", "train.batch_size=50", "train.metrics_examples=0",
          "eval.every=0", "threads=1", "train.gradient=closed_form"]


def _rbm(centered: bool = False) -> RBM:
    return product_test_rbm(64, 20, 0.3, centered)


def _binary(n: int, width: int, seed: int) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, width), 0.4), generator=torch.Generator().manual_seed(seed))


def _count_linear_calls(monkeypatch) -> list[tuple[int, ...]]:
    """Record the weight shape of every :func:`onednn.linear` call from now on."""
    calls: list[tuple[int, ...]] = []
    real = onednn.linear
    monkeypatch.setattr(onednn, "linear",
                        lambda x, w, b=None: calls.append(tuple(w.shape)) or real(x, w, b))
    return calls


def test_an_unknown_kernel_is_refused_and_float64_or_the_gpu_multiply_in_torch(monkeypatch):
    model = _rbm()
    for wrong in ("oneDNN", "mkl"):
        with pytest.raises(ValueError, match=f"product_kernel '{wrong}' is not a kernel; accepted: auto, torch, onednn"):
            ais_log_partition(model, betas=10, runs=4, product_kernel=wrong)
    assert onednn.kernel_for("onednn", torch.ones(2), torch.ones(2)) == "onednn"
    assert onednn.kernel_for("onednn", torch.ones(2), torch.ones(2, dtype=torch.float64)) == "torch"
    assert onednn.kernel_for("onednn", torch.ones(2, device="meta")) == "torch"
    assert onednn.kernel_for("torch", torch.ones(2)) == "torch"
    wide = DBM([8, 4, 3], generator=torch.Generator().manual_seed(0)).double()
    calls = _count_linear_calls(monkeypatch)
    results = evaluate_dbm(wide, _binary(6, 8, 1).double(), _binary(6, 8, 2).double(), ais_runs=4, ais_betas=20,
                           seed_generator=torch.Generator().manual_seed(0), product_kernel="onednn")
    assert results["product_kernel"] == "torch" and calls == []  # reports the kernel that ran


def test_the_kernel_multiplies_by_the_transposed_weight():
    x, weight = torch.randn(7, 30), torch.randn(11, 30)
    assert torch.allclose(onednn.linear(x, weight), x @ weight.T, atol=1e-5)
    assert torch.allclose(onednn.linear(x.T.contiguous().T, weight), x @ weight.T, atol=1e-5)  # any layout


@pytest.mark.parametrize("centered", [False, True])
def test_products_in_routes_every_product_to_onednn_inside_the_block_only(monkeypatch, centered):
    model = _rbm(centered)
    v, h = _binary(5, 64, 3), _binary(5, 20, 4)
    calls = []
    real = onednn.linear
    monkeypatch.setattr(onednn, "linear", lambda x, w: calls.append(w.shape) or real(x, w))
    with model.products_in(None, "onednn"), torch.no_grad():
        inside_h, inside_v = model.hidden_input(v), model.visible_input(h)
    assert calls == [(20, 64), (64, 20)]  # W^T for v W, W for h W^T
    with torch.no_grad():
        assert torch.allclose(inside_h, model.hidden_input(v), atol=1e-5)
        assert torch.allclose(inside_v, model.visible_input(h), atol=1e-5)
    assert len(calls) == 2 and model._onednn_weight is None  # outside: torch again


def test_a_nested_rbm_block_holds_until_it_ends_and_copies_leave_it_behind(monkeypatch):
    model, v = _rbm(), _binary(5, 64, 3)
    calls = _count_linear_calls(monkeypatch)
    with torch.no_grad(), model.products_in(None, "onednn"):
        with model.products_in(None, "torch"):
            model.hidden_input(v)
        assert calls == []  # the inner torch block multiplied in torch
        model.hidden_input(v)
        assert len(calls) == 1  # and the outer oneDNN block holds again after it
        twin = copy.deepcopy(model)
        restored = pickle.loads(pickle.dumps(model))
    with torch.no_grad():
        for other in (twin, restored):
            other.weight.add_(1.0)  # a copy's own W, not a stale copy of the original's
            assert torch.equal(other.hidden_input(v), v @ other.weight)
    assert len(calls) == 1


def test_a_dbm_copied_inside_the_block_multiplies_in_torch(monkeypatch):
    model, v = _dbm(centered=False), _binary(6, 64, 7)
    calls = _count_linear_calls(monkeypatch)
    with torch.no_grad(), model.products_in("onednn"):
        with model.products_in("torch"):
            model.recognition(v)
        assert calls == []
        wide = copy.deepcopy(model).double()  # the exact enumeration's float64 copy
        restored = pickle.loads(pickle.dumps(model))
        wide.recognition(v.double()), restored.recognition(v)
        assert calls == []  # neither copy kept the block's kernel
        model.recognition(v)
    assert calls and model._onednn is False


@pytest.mark.parametrize("method, centered", [("cd", False), ("pcd", True)])
def test_the_onednn_update_equals_torchs_for_several_steps(monkeypatch, method, centered):
    """Same seed, same batches: gradients and weights after 5 SGD steps agree to float32
    rounding; a wrong product (a missing transpose, a term of the wrong sign) moves them by
    the size of the gradient itself. The oneDNN run did use the kernel: for the sampling
    products and, once per step, for the fused weight gradient ``(D, 2B) x (H, 2B)^T``."""
    batches = [_binary(16, 64, 10 + i) for i in range(5)]
    shapes = []
    real = onednn.linear
    monkeypatch.setattr(onednn, "linear", lambda x, w: shapes.append(tuple(w.shape)) or real(x, w))
    results = {}
    for kernel in ("torch", "onednn"):
        model = _rbm(centered)
        objective = FreeEnergyGap(_sampler(method), 0.1 if centered else 0.0)
        objective.product_kernel = kernel
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        grads = []
        for batch in batches:
            optimizer.zero_grad()
            objective.write_gradients(model, batch)
            grads.append(model.weight.grad.clone())
            optimizer.step()
        results[kernel] = (model.weight.detach().clone(), grads)
    assert shapes.count((20, 32)) == 5 and shapes.count((20, 64)) >= 10  # gradients; v W per step
    (w_torch, g_torch), (w_onednn, g_onednn) = results["torch"], results["onednn"]
    for a, b in zip(g_torch, g_onednn, strict=True):
        assert torch.allclose(a, b, atol=1e-5 * a.abs().max().item()), (a - b).abs().max()
    assert torch.allclose(w_torch, w_onednn, atol=1e-5)
    assert (w_torch - _rbm(centered).weight).abs().max() > 1e-2  # the weights did move


def _sampler(method: str):
    generator = torch.Generator().manual_seed(5)
    return ContrastiveChains(1, generator) if method == "cd" else PersistentChains(16, generator)


def _dbm(centered: bool) -> DBM:
    model = DBM([64, 20, 12], init_std=0.3, generator=torch.Generator().manual_seed(2), centered=centered)
    with torch.no_grad():
        for bias in model.biases:
            bias.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(len(bias)))
    return model


def test_a_dbm_routes_mean_field_and_gibbs_products_to_onednn_inside_the_block_only(monkeypatch):
    model, v = _dbm(centered=True), _binary(6, 64, 7)
    calls = []
    real = onednn.linear
    monkeypatch.setattr(onednn, "linear", lambda x, w: calls.append(tuple(w.shape)) or real(x, w))
    with torch.no_grad():
        reference, sweeps = model.mean_field(v, 5, 0.0)
        with model.products_in("onednn"):
            inside, inside_sweeps = model.mean_field(v, 5, 0.0)
            model.gibbs(inside, 1, torch.Generator().manual_seed(1))
    assert not model._onednn and sweeps == inside_sweeps == 5
    # mean field makes v W_1 once (recognition and every sweep reuse it), mu_1 W_2 and
    # mu_2 W_2^T per sweep; a Gibbs sweep makes each of its four products once
    assert calls.count((20, 64)) == 1 + 1  # v W_1: mean field, gibbs
    assert calls.count((12, 20)) == 1 + 5 + 1  # mu_1 W_2: recognition, each sweep, gibbs
    assert calls.count((20, 12)) == 5 + 1  # mu_2 W_2^T: each sweep, gibbs
    assert calls.count((64, 20)) == 1  # h_1 W_1^T: gibbs only
    for a, b in zip(reference, inside, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("centered", [False, True])
def test_the_onednn_dbm_update_equals_torchs_for_several_steps(centered):
    """Mean field, persistent chains and the two fused weight gradients in oneDNN: weights
    after 4 SGD steps agree with torch's products to float32 rounding (the chains draw
    the same samples while the conditionals agree to rounding)."""
    batches = [_binary(16, 64, 20 + i) for i in range(4)]
    weights = {}
    for kernel in ("torch", "onednn"):
        model = _dbm(centered)
        objective = DBMLearning(DBMChains(16, 1, torch.Generator().manual_seed(3)), 10, 1e-4,
                                offset_rate=0.1 if centered else 0.01)
        objective.product_kernel = kernel
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for batch in batches:
            optimizer.zero_grad()
            objective.write_gradients(model, batch)
            optimizer.step()
        weights[kernel] = [w.detach().clone() for w in model.weights]
    for a, b, start in zip(weights["torch"], weights["onednn"], _dbm(centered).weights, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
        assert (a - start).abs().max() > 1e-2  # the weights did move


def test_the_trainer_sets_the_kernel_for_an_rbm_every_dbn_layer_and_a_dbms_joint_stage():
    step = Fit(load_config("rbm-digits", [*DIGITS, "train.product_kernel=onednn"])).train_step()
    assert step.objective.product_kernel == "onednn"
    dbn = Fit(load_config("dbn-digits", [*DIGITS, "train.product_kernel=onednn"]))
    assert dbn.train_step().objective.product_kernel == "onednn"
    # the DBM's greedy pretraining has no closed form: it runs on autograd and torch's
    # products, and the joint stage gets both settings
    dbm = Fit(load_config("dbm-digits", [*DIGITS, "train.product_kernel=onednn", "model.pretrain_epochs=1",
                                         "model.centered=false"]))
    pretraining = dbm.train_step()
    assert not pretraining.closed_form and pretraining.objective.product_kernel == "torch"
    history = dbm.run()
    joint = dbm.train_step()
    assert joint.closed_form and joint.objective.product_kernel == "onednn"
    assert all(math.isfinite(row["loss"]) for row in history)


@pytest.mark.parametrize("preferred", [True, False])
def test_the_default_auto_kernel_is_onednn_exactly_where_preferred_and_a_closed_form_applies(
        monkeypatch, preferred):
    """``train.product_kernel: auto`` (the default) follows :func:`onednn.preferred` for a
    closed-form update, and is torch, with no error, where there is none (autograd, an MLP)."""
    monkeypatch.setattr(onednn, "preferred", lambda device: preferred)
    expected = "auto" if preferred else "torch"  # auto: each product by its size (kernel_for)
    closed = Fit(load_config("rbm-digits", DIGITS)).train_step()  # DIGITS: closed form
    assert closed.closed_form and closed.objective.product_kernel == expected
    dbm = Fit(load_config("dbm-digits", [*DIGITS, "model.pretrain_epochs=0"])).train_step()
    assert dbm.closed_form and dbm.objective.product_kernel == expected
    surrogate = Fit(load_config("rbm-digits", [*DIGITS, "train.gradient=autograd"])).train_step()
    assert not surrogate.closed_form and surrogate.objective.product_kernel == "torch"
    mlp = Fit(load_config("mlp-digits", [*DIGITS, "train.gradient=auto"])).train_step()
    assert not mlp.closed_form and mlp.objective.product_kernel == expected  # its nn.Linear layers


def test_auto_multiplies_in_onednn_only_products_large_enough_to_repay_it(monkeypatch):
    big, small = torch.rand(784, 500), torch.rand(64, 100)
    monkeypatch.setattr(onednn, "preferred", lambda device: True)
    assert onednn.kernel_for("auto", big, rows=100) == "onednn"  # 39 M multiply-adds
    assert onednn.kernel_for("auto", big, rows=20) == "torch"  # 7.8 M: under the threshold
    assert onednn.kernel_for("auto", big, small, rows=100) == "torch"  # every product must be large
    assert onednn.kernel_for("auto", big) == "torch"  # rows unknown
    assert onednn.kernel_for("onednn", small, rows=1) == "onednn"  # asked for: always
    calls = _count_linear_calls(monkeypatch)
    objective = FreeEnergyGap(ContrastiveChains(1, torch.Generator().manual_seed(0)))
    objective.product_kernel = "auto"
    for n_visible, n_hidden, expected in [(64, 100, 0), (784, 500, 4)]:  # CD-1: v W, h W^T, v~ W, fused dW
        calls.clear()
        objective.write_gradients(RBM(n_visible, n_hidden), _binary(100, n_visible, 1))
        assert len(calls) == expected
    calls.clear()
    with onednn.LinearLayers("auto"):
        torch.nn.functional.linear(torch.rand(100, 64), small.T)
        assert len(calls) == 0
        torch.nn.functional.linear(torch.rand(100, 784), big.T)
        assert len(calls) == 1
    monkeypatch.setattr(onednn, "preferred", lambda device: False)
    assert onednn.kernel_for("auto", big, rows=100) == "torch"


@pytest.mark.parametrize("vendor, preferred", [("AuthenticAMD", True), ("GenuineIntel", False), (None, False)])
def test_onednn_is_preferred_on_amd_cpus_only(tmp_path, vendor, preferred):
    cpuinfo = tmp_path / "cpuinfo"
    if vendor is not None:
        cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 26\n")
    assert onednn.preferred(torch.device("cpu"), cpuinfo) is preferred
    assert onednn.preferred(torch.device("meta"), cpuinfo) is False


@pytest.mark.parametrize("visible, centered", [("bernoulli", False), ("bernoulli", True), ("gaussian", False)])
def test_rbm_ais_multiplies_in_onednn_and_finds_the_exact_log_z(monkeypatch, visible, centered):
    """Both annealing paths (base rate; decoupled layers for Gaussian units) run every
    product in oneDNN with ``product_kernel="onednn"``, and the estimate still holds the
    exact value within its stated interval."""
    model = RBM(24, 10, visible=visible, generator=torch.Generator().manual_seed(3), init_std=0.3,
                centered=centered)
    calls = _count_linear_calls(monkeypatch)
    betas = 1000
    ais = ais_log_partition(model, None, betas, 200, torch.Generator().manual_seed(0), product_kernel="onednn")
    exact = exact_log_partition(model)
    assert ais.log_z_low <= exact <= ais.log_z_high, (ais.log_z, exact)
    # per inverse temperature after the first: v W (the step) and, except at the last, h W^T
    # (the sweep); oneDNN's weight is (out, in)
    assert calls.count((10, 24)) == betas - 1 and calls.count((24, 10)) == betas - 2 and len(calls) == 2 * betas - 3
    calls.clear()
    ais_log_partition(model, None, 50, 10, torch.Generator().manual_seed(0))
    assert not calls  # the default multiplies in torch


def test_dbm_ais_runs_every_product_in_onednn(monkeypatch):
    """Per inverse temperature after the first: the even layers' inputs (one product per
    weight; the energy is taken from them) and, except at the last, the odd layer's input
    (one per weight): all in oneDNN."""
    model = DBM([24, 10, 6], init_std=0.3, generator=torch.Generator().manual_seed(2), centered=True)
    calls = _count_linear_calls(monkeypatch)
    betas = 100
    dbm_ais_log_partition(model, None, betas, 20, torch.Generator().manual_seed(0), product_kernel="onednn")
    steps, sweeps = betas - 1, betas - 2
    # oneDNN's weight is (out, in): x W_1 is (10, 24), x W_1^T (24, 10), x W_2 (6, 10), x W_2^T (10, 6)
    assert {shape: calls.count(shape) for shape in set(calls)} == {
        (10, 24): sweeps,  # v W_1: h1's input in the sweep
        (6, 10): steps,  # h1 W_2: h2's input
        (24, 10): steps,  # h1 W_1^T: v's input
        (10, 6): sweeps}  # h2 W_2^T: h1's input in the sweep


def test_dbm_evaluation_multiplies_in_onednn_and_brackets_the_exact_log_z(monkeypatch):
    model = DBM([24, 10, 6], init_std=0.3, generator=torch.Generator().manual_seed(2), centered=True)
    values = _binary(40, 24, 5)
    calls = _count_linear_calls(monkeypatch)
    in_mean_field = []  # oneDNN products made by the mean-field bounds, apart from AIS's
    real_bounds = dbm_estimate.variational_bounds

    def counted_bounds(*args, **kwargs):
        before = len(calls)
        bounds = real_bounds(*args, **kwargs)
        in_mean_field.append(len(calls) - before)
        return bounds

    monkeypatch.setattr(dbm_estimate, "variational_bounds", counted_bounds)
    results = evaluate_dbm(model, values, values, ais_runs=100, ais_betas=1000, exact_max_units=20,
                           seed_generator=torch.Generator().manual_seed(0), product_kernel="onednn")
    ais = results["ais"]
    assert ais["log_z_low"] <= results["log_z_exact"] <= ais["log_z_high"]
    assert results["log_likelihood_bound_exact_log_z"] <= results["log_likelihood_exact"]
    assert results["product_kernel"] == "onednn"
    # mean field: v W_1 once, then mu_1 W_2 and mu_2 W_2^T per sweep; AIS: 4 per beta but the first
    assert in_mean_field[0] >= 3 and len(calls) - sum(in_mean_field) >= 4 * (1000 - 2)
    assert not model._onednn  # the block ended with the evaluation


def test_eval_product_kernel_reaches_the_evaluation_and_onednn_off_the_cpu_is_refused(monkeypatch):
    config = load_config("dbm-digits", [*DIGITS, "model.pretrain_epochs=0", "eval.product_kernel=onednn"])
    assert Fit(config).task.eval_kernel == "onednn"
    monkeypatch.setattr(onednn, "preferred", lambda device: False)
    auto = load_config("rbm-digits", DIGITS)
    assert auto.eval.product_kernel == "auto" and Fit(auto).task.eval_kernel == "torch"
    with pytest.raises(ConfigError, match=r"config key 'eval.product_kernel': onednn needs a CPU .*device meta"):
        onednn.resolve("onednn", torch.device("meta"), "eval.product_kernel")
    monkeypatch.setattr(onednn, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"'eval.product_kernel': onednn needs .* this PyTorch"):
        Fit(load_config("mlp-digits", [*DIGITS[:-1], "eval.product_kernel=onednn"]))  # before any training


@pytest.mark.parametrize("bias", [True, False])
def test_linear_layers_in_onednn_give_torchs_outputs_and_gradients_even_twice_differentiated(bias):
    """Inside :class:`onednn.LinearLayers` an MLP's ``F.linear`` calls run in oneDNN (counted),
    with torch's outputs and first derivatives; a gradient penalty (``create_graph``) gets
    torch's second derivatives too."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20, bias=bias), torch.nn.Sigmoid(),
                              torch.nn.Linear(20, 5, bias=bias))
    x = torch.rand(16, 30, requires_grad=True)
    results = {}
    for kernel in ("torch", "onednn"):
        net.zero_grad()
        x.grad = None
        with onednn.LinearLayers() if kernel == "onednn" else contextlib.nullcontext():
            y = net(x)
            (slope,) = torch.autograd.grad(y.sum(), x, create_graph=True)  # a WGAN-GP style penalty
            loss = (y ** 2).sum() + (slope ** 2).sum()
        loss.backward()
        results[kernel] = [y.detach(), x.grad, *(p.grad for p in net.parameters())]
    for a, b in zip(*results.values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a - b).abs().max()

def test_linear_layers_route_batches_of_rows_only(monkeypatch):
    calls = _count_linear_calls(monkeypatch)
    x, weight = torch.rand(3, 30), torch.rand(20, 30)
    stacked = torch.rand(4, 3, 30)  # (k, B, K): the VAE's importance samples
    with onednn.LinearLayers():
        torch.nn.functional.linear(x, weight)
        y = torch.nn.functional.linear(stacked, weight)
        assert len(calls) == 2 and torch.allclose(y, stacked @ weight.T, atol=1e-5) and y.shape == (4, 3, 20)
        torch.nn.functional.linear(x[0], weight)  # one vector: torch
        torch.nn.functional.linear(x.double(), weight.double())  # float64: torch
        assert len(calls) == 2
        bias = torch.rand(20)
        by_name = torch.nn.functional.linear(input=x, weight=weight, bias=bias)  # keywords too
        assert len(calls) == 3 and torch.allclose(by_name, x @ weight.T + bias, atol=1e-5)
    torch.nn.functional.linear(x, weight)  # outside the block: torch
    assert len(calls) == 3
    assert onednn.has_linear_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert not onednn.has_linear_layers(_rbm())


def test_an_mlp_trains_in_onednn_to_torchs_weights(monkeypatch):
    """``train.product_kernel: onednn`` on an MLP: its steps run every layer in oneDNN and
    reach torch's weights to float32 rounding after several updates."""
    weights = {}
    for kernel in ("torch", "onednn"):
        session = Fit(load_config("mlp-digits", [*DIGITS, "train.gradient=auto", "model.dropout=0",  # no draws
                                                 f"train.product_kernel={kernel}"]))
        step, model = session.train_step(), session.model
        calls = _count_linear_calls(monkeypatch)
        batch = session.task.batch(torch.arange(50), torch.Generator().manual_seed(0))
        for _ in range(4):
            step(model, batch)
        weights[kernel] = [p.detach().clone() for p in model.parameters()]
        layers = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
        # per step: each layer forward and its weight gradient, every layer but the first its input's
        assert len(calls) == (4 * (3 * layers - 1) if kernel == "onednn" else 0)
    for a, b in zip(weights["torch"], weights["onednn"], strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_a_dbm_refuses_bfloat16_products_naming_where_they_apply():
    config = load_config("dbm-digits", [*DIGITS, "train.product_dtype=bfloat16", "model.pretrain_epochs=0"])
    with pytest.raises(ConfigError, match=r"'train.product_dtype': bfloat16 needs the closed-form gradient of "
                                          r"model.type rbm or dbn .*'dbm' here has none"):
        Fit(config).train_step()


@pytest.mark.parametrize("overrides, family", [
    (["train.gradient=autograd"], "rbm-digits"),
    (["train.gradient=autograd", "model.pretrain_epochs=0"], "dbm-digits"),
])
def test_the_kernel_is_refused_without_a_closed_form_or_dense_layers(overrides, family):
    config = load_config(family, [*DIGITS, "train.product_kernel=onednn", *overrides])
    with pytest.raises(ConfigError, match=r"config key 'train.product_kernel': onednn .*accepted here: auto, torch"):
        Fit(config).train_step()


def test_the_kernel_is_refused_off_the_cpu():
    objective = FreeEnergyGap(_sampler("cd"), 0.0)
    train = load_config("rbm-digits", ["train.product_kernel=onednn"]).train
    with pytest.raises(ConfigError, match=r"'train.product_kernel': onednn needs a CPU .*device meta has none"):
        set_products(objective, _rbm(), train, True, "rbm", torch.device("meta"))
    with pytest.raises(ConfigError, match="product_kernel"):
        load_config("rbm-digits", ["train.product_kernel=mkl"])
