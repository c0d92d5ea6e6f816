import pytest

from boltzkit.config import apply_overrides, load_config, preset_names, validate
from boltzkit.errors import ConfigError


def test_presets_load_and_default_is_rbm_digits():
    assert {"rbm-digits", "rbm-mnist"} <= set(preset_names())
    config = load_config()
    assert config.name == "rbm-digits" and config.data.name == "digits"
    assert load_config("rbm-mnist").model.n_hidden == 500


def test_overrides_parse_yaml_values_and_nested_keys():
    config = load_config(None, [
        "train.epochs=3", "train.optimizer.lr=1e-3", "model.n_hidden=12",
        "train.optimizer={name: adam, lr: 0.002}", "data.image_shape=[8, 8]", "train.clip_grad_norm=null",
    ])
    assert config.train.epochs == 3 and config.model.n_hidden == 12
    assert config.train.optimizer.name == "adam" and config.train.optimizer.lr == 0.002
    assert config.data.image_shape == [8, 8] and config.train.clip_grad_norm is None


def test_yaml_file_round_trip(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(load_config().to_yaml())
    again = load_config(path)
    assert again.to_dict() == load_config().to_dict()


def test_file_name_becomes_run_name(tmp_path):
    path = tmp_path / "experiment-7.yaml"
    path.write_text("train: {epochs: 2}\n")
    assert load_config(path).name == "experiment-7"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.foo=1"], "unknown config key 'train.foo'; accepted keys in train: method, k,"),
        (["colour=blue"], "unknown config key 'colour'; accepted keys in the top level: name, seed"),
        (["train.method=xyz"], "config key 'train.method': invalid value 'xyz'; accepted: 'cd', 'pcd' or 'pt'"),
        (["train.epochs=0"], "config key 'train.epochs': invalid value 0; input should be greater than or equal to 1"),
        (["train.batch_size=ten"], "config key 'train.batch_size': invalid value 'ten'; input should be a valid integer"),
        (["train.optimizer.lr=-1"], "config key 'train.optimizer.lr': invalid value -1; input should be greater than 0"),
        (["train.optimizer.name=adam"], "config key 'train.optimizer': 'momentum' is not an argument of torch.optim.Adam"),
        (["train.optimizer.name=sgdd"], "config key 'train.optimizer': unknown optimizer 'sgdd'; accepted:"),
        (["train.schedule.name=warp"], "config key 'train.schedule': unknown schedule 'warp'"),
        (["train.schedule={name: exponential, gamma: 2}"], "'gamma' is not a parameter of schedule 'exponential'"),
        (["data.name=imagenet"], "config key 'data.name': invalid value 'imagenet'; accepted: 'digits', 'mnist'"),
        (["data.validation=1.5"], "config key 'data.validation': invalid value 1.5; input should be less than 1"),
        (["data.name=npz"], "data.path is required for data.name='npz'"),
        (["model.visible=binary"], "config key 'model.visible': invalid value 'binary'; accepted: 'bernoulli', 'gaussian' or 'categorical'"),
        (["device=gpu"], "config key 'device': device must be auto, cpu, cuda, cuda:N or mps"),
        (["seed=-3"], "config key 'seed': invalid value -3; input should be greater than or equal to 0"),
        (["train=3"], "config key 'train': invalid value 3; input should be a valid dictionary"),
        (["train.epochs.max=3"], "--set train.epochs.max: 'train.epochs' is a value (100), not a section"),
        (["train.epochs"], "--set 'train.epochs': expected KEY=VALUE"),
    ],
)
def test_invalid_configs_give_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="'nope.yaml' is neither a file nor a preset; presets: " + ", ".join(preset_names())):
        load_config("nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="expected a mapping of config keys, got int"):
        load_config(scalar)


def test_validate_rejects_assignment_of_bad_values():
    config = validate({})
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        config.train.epochs = -1


def test_apply_overrides_does_not_mutate_input():
    raw = {"train": {"epochs": 1}}
    assert apply_overrides(raw, {"train.epochs": 2}) == {"train": {"epochs": 2}}
    assert raw == {"train": {"epochs": 1}}


def test_run_config_validates_as_the_family_the_model_type_names():
    from boltzkit.config import RunConfig

    config = RunConfig.model_validate({"model": {"type": "mlp", "hidden_layers": [3]}})
    assert isinstance(config, RunConfig) and config.model.hidden_layers == [3]
    assert RunConfig.model_validate({}).model.n_hidden == 64  # rbm by default


def test_replacing_the_schedule_keeps_its_unit_unless_given():
    config = load_config("rbm-digits", ["train.schedule={name: exponential, steps: 10}"])
    assert config.train.schedule.unit == "step"  # the preset steps per update
    assert load_config("rbm-digits", ["train.schedule={name: constant, unit: epoch}"]).train.schedule.unit == "epoch"


def test_switching_family_takes_its_data_defaults_and_metric_with_a_warning():
    import warnings

    from boltzkit.errors import ConfigWarning

    with pytest.warns(ConfigWarning, match="data.binarize dynamic -> none"):
        config = load_config("rbm-digits", ["model={type: mlp}"])
    assert config.data.binarize == "none" and config.tune.metric == "val_accuracy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice is kept, silently
        kept = load_config("rbm-digits", ["model={type: mlp}", "data.binarize=dynamic"])
    assert kept.data.binarize == "dynamic"
    rbm = load_config("rbm-digits")
    with pytest.warns(ConfigWarning, match="tune.metric val_pseudo_log_likelihood -> val_accuracy"):
        assert rbm.with_overrides({"model": {"type": "mlp"}}).tune.metric == "val_accuracy"


@pytest.mark.parametrize("family, metric", [("rbm", "val_pseudo_log_likelihood"),
                                            ("bm", "val_log_likelihood"), ("mlp", "val_accuracy")])
def test_tune_metric_defaults_to_the_family_headline(family, metric):
    assert validate({"model": {"type": family}}).tune.metric == metric
