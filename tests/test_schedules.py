import math

import pytest
import torch

from boltzkit.families import get_family
from boltzkit.optim.schedules import check_schedule, make_schedule, schedule_factors


def _optimizer(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


@pytest.mark.parametrize(
    "name, params, t, total, expected",
    [
        ("constant", {}, 17, 100, 1.0),
        ("exponential", {"steps": 10, "rate": 0.1}, 20, 100, 0.01),
        ("exponential", {"steps": 4}, 2, 100, 0.1 ** 0.5),
        ("power", {"steps": 10, "power": 1.0}, 10, 100, 0.5),
        ("power", {"steps": 5, "power": 0.5}, 15, 100, 0.5),
        ("piecewise", {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}, 9, 100, 1.0),
        ("piecewise", {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}, 10, 100, 0.5),
        ("piecewise", {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}, 25, 100, 0.1),
        ("cosine", {}, 50, 100, 0.5),
        ("cosine", {"min_factor": 0.1}, 100, 100, 0.1),
        ("cosine", {"warmup": 0.1}, 4, 100, 0.5),
        ("onecycle", {"pct_start": 0.4, "div_factor": 10}, 0, 100, 0.1),
        ("onecycle", {"pct_start": 0.4, "div_factor": 10}, 40, 100, 1.0),
        ("onecycle", {"pct_start": 0.4, "div_factor": 10}, 60, 100, 0.55),
        ("onecycle", {"pct_start": 0.4, "div_factor": 10, "final_div_factor": 100}, 100, 100, 0.001),
        ("onecycle", {"pct_start": 0.3, "anneal": "cos"}, 30, 100, 1.0),
        ("wsd", {"warmup": 0.1, "decay": 0.2}, 50, 100, 1.0),
        ("wsd", {"warmup": 0.1, "decay": 0.2}, 90, 100, 0.5),
        ("wsd", {"warmup": 0.1, "decay": 0.2, "shape": "sqrt"}, 90, 100, 1 - math.sqrt(0.5)),
    ],
)
def test_schedule_formula(name, params, t, total, expected):
    from boltzkit.optim.schedules import SCHEDULES

    assert SCHEDULES[name](t, total, **params) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_schedule_sets_optimizer_rates_and_round_trips():
    opt = _optimizer(0.2)
    schedule = make_schedule(opt, "exponential", total=50, unit="step", steps=10)
    for _ in range(7):
        schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * 0.1 ** 0.7)
    state = schedule.state_dict()
    opt2 = _optimizer(0.2)
    restored = make_schedule(opt2, "exponential", total=50, unit="step", steps=10)
    restored.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    schedule.step()
    restored.step()
    assert restored.lrs == schedule.lrs


def test_plateau_reduces_on_a_stalled_metric():
    opt = _optimizer(1.0)
    schedule = make_schedule(opt, "plateau", total=10, metric="val_loss", patience=1, factor=0.5)
    for value in [1.0, 1.0, 1.0]:
        schedule.step({"val_loss": value})
    assert schedule.lrs[0] == 0.5
    with pytest.raises(ValueError, match="plateau schedule watches metric 'val_loss'"):
        schedule.step({"other": 1.0})


def test_factors_cover_the_run_and_reach_the_floor_at_its_end():
    from boltzkit.optim.schedules import cosine

    factors = schedule_factors("cosine", 11, min_factor=0.1)
    assert len(factors) == 11 and factors[0] == 1.0
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))
    assert cosine(11, 11, min_factor=0.1) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("warp", {}, "unknown schedule 'warp'; accepted: constant, exponential"),
        ("exponential", {"gamma": 0.5}, "'gamma' is not a parameter of schedule 'exponential'"),
        ("piecewise", {"boundaries": [5], "values": [1.0]}, "len\\(values\\) == len\\(boundaries\\) \\+ 1"),
        ("piecewise", {"boundaries": [5, 2], "values": [1, 2, 3]}, "boundaries must increase"),
        ("exponential", {"steps": 0}, "steps must be > 0"),
        ("cosine", {"warmup": 1.5}, "warmup is a fraction of the run"),
    ],
)
def test_invalid_schedules(name, params, message):
    with pytest.raises(ValueError, match=message):
        check_schedule(name, params)


def test_plateau_mode_follows_the_metric_direction():
    opt = _optimizer(1.0)
    rbm = get_family("rbm")
    schedule = make_schedule(opt, "plateau", metric="val_pseudo_log_likelihood", patience=0, factor=0.5,
                             direction=rbm.direction)
    schedule.step({"val_pseudo_log_likelihood": -20.0})
    schedule.step({"val_pseudo_log_likelihood": -19.0})  # improving (higher is better): keep
    assert schedule.lrs[0] == 1.0
    schedule.step({"val_pseudo_log_likelihood": -25.0})  # worse: reduce
    assert schedule.lrs[0] == 0.5


def test_schedule_command_plots(tmp_path, capsys):
    from boltzkit.cli import main

    out = tmp_path / "s.png"
    assert main(["schedule", "--set", "train.schedule={name: wsd, unit: step}", "--out", str(out)]) == 0
    assert out.is_file() and "step 0:" in capsys.readouterr().out
    assert main(["schedule", "--set", "train.schedule={name: plateau}"]) == 2


def test_factor_schedule_runs_on_lambda_lr_and_restores_from_its_state(tmp_path):
    opt = _optimizer(0.2)
    schedule = make_schedule(opt, "cosine", total=20, unit="step", warmup=0.2)
    assert isinstance(schedule.scheduler, torch.optim.lr_scheduler.LambdaLR)
    for _ in range(6):
        schedule.step()
    assert schedule.t == 6 and schedule.lrs == schedule.scheduler.get_last_lr()
    torch.save(schedule.state_dict(), tmp_path / "s.pt")  # checkpoints load with weights_only
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    assert state["last_epoch"] == 6
    restored = make_schedule(_optimizer(0.2), "cosine", total=20, unit="step", warmup=0.2)
    restored.load_state_dict(state)
    assert restored.t == 6 and restored.lrs == schedule.lrs
    for _ in range(5):
        schedule.step()
        restored.step()
        assert restored.lrs == schedule.lrs


def test_factor_schedule_loads_the_old_step_counter_form():
    reference = make_schedule(_optimizer(0.2), "exponential", total=50, unit="step", steps=10)
    for _ in range(7):
        reference.step()
    old = make_schedule(_optimizer(0.5), "exponential", total=50, unit="step", steps=10)
    old.load_state_dict({"t": 7, "base_lrs": [0.2]})  # what the pre-LambdaLR schedule saved
    assert old.t == 7 and old.lrs == reference.lrs and old.base_lrs == [0.2]
    old.step()
    reference.step()
    assert old.lrs == reference.lrs
    assert old.state_dict()["last_epoch"] == 8


def test_setting_base_lrs_rescales_the_following_steps():
    opt = _optimizer(0.1)
    schedule = make_schedule(opt, "power", total=10, steps=1.0)
    schedule.base_lrs = [1.0]  # what the scikit-learn estimators do after set_params
    schedule.step()
    assert schedule.lrs == [0.5]


def test_onecycle_cycles_momentum_inversely_to_the_rate():
    from boltzkit.optim.schedules import make_schedule, onecycle_momentum

    param = torch.nn.Parameter(torch.zeros(2))
    sgd = torch.optim.SGD([param], lr=1.0, momentum=0.9)
    schedule = make_schedule(sgd, "onecycle", total=100, unit="step", pct_start=0.3)
    seen = []
    for _ in range(100):
        seen.append((schedule.lrs[0], schedule.momenta[0]))
        schedule.step()
    assert seen[0] == pytest.approx((0.1, 0.95))  # start: lowest rate, highest momentum
    peak = max(range(100), key=lambda i: seen[i][0])
    assert seen[peak][0] == pytest.approx(1.0, abs=0.02) and seen[peak][1] == pytest.approx(0.85, abs=0.002)
    assert seen[-1][1] == pytest.approx(0.95)  # the annihilation keeps the highest momentum
    for rate, momentum in seen:  # linear in the rate between the two
        assert momentum == pytest.approx(0.95 - 0.1 * min(1, max(0, (rate - 0.1) / 0.9)))
    assert onecycle_momentum(0.55, base_momentum=0.8, max_momentum=0.9) == pytest.approx(0.85)


def test_onecycle_sets_adam_beta1_restores_it_and_leaves_plain_sgd_alone():
    from boltzkit.optim.schedules import make_schedule

    param = torch.nn.Parameter(torch.zeros(2))
    adam = torch.optim.Adam([param], lr=1.0, betas=(0.9, 0.99))
    schedule = make_schedule(adam, "onecycle", total=10, unit="step")
    for _ in range(3):
        schedule.step()
    beta1 = adam.param_groups[0]["betas"][0]
    assert beta1 < 0.95 and adam.param_groups[0]["betas"][1] == 0.99
    fresh = torch.optim.Adam([param], lr=1.0)
    restored = make_schedule(fresh, "onecycle", total=10, unit="step")
    restored.load_state_dict(schedule.state_dict())
    assert fresh.param_groups[0]["betas"][0] == beta1 and restored.lrs == schedule.lrs
    plain = torch.optim.SGD([param], lr=1.0)
    make_schedule(plain, "onecycle", total=10, unit="step").step()
    assert plain.param_groups[0]["momentum"] == 0  # no momentum to cycle
    off = torch.optim.SGD([param], lr=1.0, momentum=0.5)
    make_schedule(off, "onecycle", total=10, unit="step", cycle_momentum=False).step()
    assert off.param_groups[0]["momentum"] == 0.5
