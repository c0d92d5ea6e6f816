"""bfloat16 products in the closed-form RBM update (``train.product_dtype``): the products
computed in bfloat16 exactly where asked and nowhere else, the fused weight gradient within
bfloat16's rounding bound of the exact one, the wiring through the trainer, and the errors
and the hardware check."""

from __future__ import annotations

import warnings

import pytest
import torch

from boltzkit.config import load_config
from boltzkit.errors import ConfigError
from boltzkit.models.rbm import RBM
from boltzkit.objectives.free_energy_gap import FreeEnergyGap
from boltzkit.precision import bfloat16_shortfall
from boltzkit.sampling.negative import NegativeSampler
from boltzkit.train import Fit
from helpers import product_test_rbm

UNIT_ROUNDOFF = 2.0**-8
"""bfloat16 keeps 8 significant bits: rounding to nearest moves a value by at most 2^-8 of it."""
DIGITS = ["data.limit=200", "train.epochs=1", "train.batch_size=50", "train.metrics_examples=0",
          "eval.every=0", "threads=1"]


def _rbm(centered: bool = False) -> RBM:
    return product_test_rbm(12, 7, 0.5, centered)


def _binary(n: int, width: int, seed: int) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, width), 0.5), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("centered", [False, True])
def test_products_in_multiplies_in_bfloat16_inside_the_block_only(centered):
    model = _rbm(centered)
    v, h = _binary(5, 12, 3), _binary(5, 7, 4)
    x = v - model.visible_offset if centered else v
    y = h - model.hidden_offset if centered else h
    w16 = model.weight.detach().bfloat16()
    with model.products_in(torch.bfloat16):
        inside_h, inside_v = model.hidden_input(v), model.visible_input(h)
    assert inside_h.dtype == torch.float32
    assert torch.equal(inside_h, (x.bfloat16() @ w16).float())
    assert torch.equal(inside_v, (y.bfloat16() @ w16.T).float())
    assert not torch.equal(inside_h, x @ model.weight)  # the rounding shows: bfloat16 did run
    assert torch.equal(model.hidden_input(v), x @ model.weight)  # outside: float32 again
    with pytest.raises(RuntimeError), model.products_in(torch.bfloat16):
        raise RuntimeError("an error inside the block")
    assert model._product_weight is None
    with model.products_in(torch.float32), torch.no_grad():  # the weights' own dtype: a no-op
        assert torch.equal(model.visible_input(h), y @ model.weight.T)


class _Fixed(NegativeSampler):
    """Negatives that do not depend on the model, so both precisions see the same ones."""

    def __init__(self, negatives: torch.Tensor):
        self.fixed = negatives

    def negatives(self, model, v_data, data_input):
        return self.fixed

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@pytest.mark.parametrize("centered", [False, True])
def test_bfloat16_update_is_within_rounding_of_the_exact_gradient(centered):
    """The update's gradients against float64 arithmetic on the same hidden inputs (the
    bfloat16 products, checked exact above): the biases' to float32 precision; the weights' fused product within
    ``2u |X|^T |Y| + u |G|`` (inputs rounded once each, the result once, u = 2^-8); a
    missing term, a wrong sign or scale, or products left in float32 (whose gradient
    matches float64 to 1e-6) all fail."""
    model, v_data, v_model = _rbm(centered), _binary(40, 12, 5), _binary(30, 12, 6)
    objective = FreeEnergyGap(_Fixed(v_model), offset_rate=0.0)
    objective.product_dtype = torch.bfloat16
    objective.write_gradients(model, v_data)

    mu, lam = model.visible_offset.double(), model.hidden_offset.double()

    def side(v):
        x = v.double() - mu if centered else v.double()
        with model.products_in(torch.bfloat16), torch.no_grad():
            a = model.hidden_input(v).double()
        m = torch.sigmoid(a + model.hidden.bias.detach().double())
        return x, m, (m - lam if centered else m)

    (x_d, m_d, y_d), (x_m, m_m, y_m) = side(v_data), side(v_model)
    assert torch.allclose(model.hidden.bias.grad.double(), m_m.mean(0) - m_d.mean(0), atol=1e-6)
    assert torch.allclose(model.visible.bias.grad.double(), (v_model.mean(0) - v_data.mean(0)).double())
    exact = x_m.T @ y_m / len(v_model) - x_d.T @ y_d / len(v_data)
    scale = x_m.abs().T @ y_m.abs() / len(v_model) + x_d.abs().T @ y_d.abs() / len(v_data)
    error = (model.weight.grad.double() - exact).abs()
    assert (error <= 2.05 * UNIT_ROUNDOFF * scale + 1.05 * UNIT_ROUNDOFF * exact.abs() + 1e-6).all()
    assert error.max() > 1e-5  # rounded: the products did run in bfloat16


@pytest.mark.parametrize("model_type", ["rbm", "dbn"])
def test_product_dtype_reaches_the_objective_of_every_layer(model_type):
    overrides = ["train.gradient=closed_form", "train.product_dtype=bfloat16", *DIGITS]
    if model_type == "dbn":
        overrides.insert(0, "model.layers=[16, 8]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without bfloat16 hardware warns
        session = Fit(load_config(f"{model_type}-digits", overrides))
        steps = [stage.build_step() for stage in session.task.stages(session.model)]
        assert len(steps) == (2 if model_type == "dbn" else 1)
        assert all(step.objective.product_dtype is torch.bfloat16 for step in steps)
    plain = Fit(load_config(f"{model_type}-digits", ["train.gradient=closed_form", *DIGITS]))
    assert plain.train_step().objective.product_dtype is None


def test_up_down_fine_tuning_after_closed_form_bfloat16_layers_runs_in_float32_autograd():
    """The layers' settings must not stop a DBN at its up-down stage, which has no closed form."""
    config = load_config("dbn-digits", ["model.layers=[16, 8]", "model.updown_epochs=1",
                                        "train.gradient=closed_form", "train.product_dtype=bfloat16", *DIGITS])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = Fit(config)
        steps = [stage.build_step() for stage in session.task.stages(session.model)]
        history = Fit(config).run()  # a fresh session: building the steps above changed that model
    assert [step.objective.product_dtype for step in steps] == [torch.bfloat16, torch.bfloat16, None]
    assert [step.closed_form for step in steps] == [True, True, False]
    assert [row["stage"] for row in history][-1] == "updown"


@pytest.mark.parametrize("overrides, family", [
    (["train.gradient=autograd"], "rbm-digits"),
    (["train.gradient=auto", "model.hidden=gaussian"], "rbm-digits"),
    ([], "mlp-digits"),
])
def test_bfloat16_products_are_refused_without_a_closed_form_rbm_update(overrides, family):
    config = load_config(family, ["train.product_dtype=bfloat16", *overrides, *DIGITS])
    with pytest.raises(ConfigError, match=r"config key 'train.product_dtype': bfloat16 .*accepted here: float32"):
        Fit(config).train_step()


def test_bfloat16_products_warn_on_hardware_without_them(monkeypatch, tmp_path):
    no_flags, with_flags = tmp_path / "old", tmp_path / "new"
    no_flags.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    with_flags.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    cpu = torch.device("cpu")
    monkeypatch.setattr("boltzkit.precision.onednn_bfloat16", lambda: True)
    assert "avx512_bf16" in bfloat16_shortfall(cpu, no_flags)
    assert bfloat16_shortfall(cpu, with_flags) is None
    # the flags are there but oneDNN is held below them (ONEDNN_MAX_CPU_ISA=AVX2)
    monkeypatch.setattr("boltzkit.precision.onednn_bfloat16", lambda: False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "oneDNN reports no bfloat16 instructions on this CPU (ONEDNN_MAX_CPU_ISA=AVX2)" in (
        bfloat16_shortfall(cpu, with_flags))
    assert "avx512_bf16" in bfloat16_shortfall(cpu, no_flags)
    monkeypatch.setattr("boltzkit.families.task.bfloat16_shortfall", lambda device: "no bf16 here")
    config = load_config("rbm-digits", ["train.gradient=closed_form", "train.product_dtype=bfloat16", *DIGITS])
    with pytest.warns(UserWarning, match="train.product_dtype: bfloat16: no bf16 here"):
        Fit(config).train_step()
    with pytest.raises(ConfigError, match="product_dtype"):
        load_config("rbm-digits", ["train.product_dtype=float16"])
