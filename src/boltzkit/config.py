"""The run configuration: one YAML schema for ``train``, ``sample``, ``evaluate`` and ``tune``.

A config is built from a preset or YAML file, then ``--set key.path=value`` overrides,
then validated into :class:`RunConfig`. Every mistake becomes a one-line
:class:`~boltzkit.errors.ConfigError` naming the key, the bad value and what is accepted.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from .errors import BoltzkitError, ConfigError, ConfigWarning
from .families import ModelSection, family_names, get_family
from .optim.schedules import REACTIVE
from .sections import OptimizerConfig, ScheduleConfig, Section  # noqa: F401 (re-exported)

PRESET_DIR = "presets"
DEFAULT_PRESET = "rbm-digits"


MAX_SEED = 2**63 - 1
"""Seeds are 64-bit: PyTorch's generators take no more."""
MAX_THREADS = 4096


class PottsConfig(Section):
    """A synthetic Potts chain with a known distribution (``data.name: potts``)."""

    length: int = Field(6, ge=2, le=10_000)
    states: int = Field(3, ge=2, le=1_000)
    coupling: float = Field(1.0, ge=-50, le=50)
    """Energy of equal neighbours, in units of kT (beyond +-50 the chain is frozen and
    its probabilities underflow)."""
    field: float = Field(0.5, ge=-50, le=50)
    examples: int = Field(5000, ge=10, le=10_000_000)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _fits_in_memory(self) -> PottsConfig:
        values = self.examples * self.length * self.states  # one-hot float32 features
        if values > MAX_GENERATED_VALUES:
            raise ValueError(f"examples x length x states = {values:,} one-hot values "
                             f"({values * 4 / 2**30:.1f} GiB); at most {MAX_GENERATED_VALUES:,}")
        return self


MAX_GENERATED_VALUES = 500_000_000


class DataConfig(Section):
    name: Literal["digits", "mnist", "fashion-mnist", "npz", "csv", "potts", "memory"] = "digits"
    """``memory``: arrays given in Python (``fit(config, x)``); recorded so that a later
    ``evaluate`` asks for the data instead of loading another set."""
    dir: str | None = None
    """Folder holding MNIST / Fashion-MNIST files (else ``BOLTZKIT_DATA_DIR``)."""
    path: str | None = None
    """The ``.npz`` or ``.csv`` file for ``name: npz | csv``."""
    test_path: str | None = None
    """Optional held-out file of the same format for ``npz`` / ``csv``."""
    key: str = "x"
    """Array name in an ``.npz`` (``x``, or ``x_train`` with ``x_test`` beside it)."""
    columns: list[str] | None = None
    """CSV columns to use (default: every column but ``label_column``)."""
    label_column: str | None = None
    image_shape: list[int] | None = None
    """Height and width for figures, where the data do not say it."""
    binarize: Literal["none", "threshold", "stochastic", "dynamic"] = "none"
    standardize: bool = False
    """Scale each feature to zero mean and unit variance (training-set statistics), the
    usual input of Gaussian visible units."""
    threshold: float = Field(0.5, gt=0, lt=1)
    validation: float = Field(0.1, ge=0, lt=1)
    limit: int | None = Field(None, ge=1)
    """Use only the first ``limit`` training examples (quick experiments)."""
    download: bool = False
    potts: PottsConfig = Field(default_factory=PottsConfig)

    @model_validator(mode="after")
    def _file_sets_need_path(self) -> DataConfig:
        if self.name in ("npz", "csv") and not self.path:
            raise ValueError(f"data.path is required for data.name={self.name!r}")
        if self.standardize and self.binarize != "none":
            raise ValueError("data.standardize needs data.binarize: none (real values, not binary)")
        if self.image_shape is not None and (
            len(self.image_shape) != 2 or min(self.image_shape) < 1
        ):
            raise ValueError(f"data.image_shape must be [height, width], got {self.image_shape}")
        return self


class TemperingConfig(Section):
    temperatures: int = Field(10, ge=2, le=1_000)
    """Chains per ladder: inverse temperatures from 1 down to min_beta."""
    min_beta: float = Field(0.1, gt=0, lt=1)
    ladder: Literal["geometric", "linear"] = "geometric"
    betas: list[float] | None = None
    """An explicit ladder (decreasing from 1), instead of temperatures / min_beta / ladder."""

    @field_validator("betas")
    @classmethod
    def _ladder(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) < 2 or value[0] != 1.0 or
                                  any(b <= c for b, c in zip(value, value[1:], strict=False))
                                  or value[-1] <= 0):
            raise ValueError(f"betas must decrease strictly from 1.0 and stay > 0, got {value}")
        return value


class BackoffConfig(Section):
    """When the loss becomes NaN or infinite: go back to the start of the epoch, multiply
    the learning rate by ``factor`` and go on, at most ``retries`` times in a run."""

    factor: float = Field(0.5, gt=0, lt=1)
    retries: int = Field(3, ge=1, le=100)


class EarlyStoppingConfig(Section):
    """Stop when ``metric`` has not improved by more than ``min_delta`` for ``patience``
    epochs (the direction is the one the model family declares for the metric)."""

    metric: str | None = None
    """Default: the family's headline metric (as ``tune.metric``)."""
    patience: int = Field(10, ge=1)
    """Epochs without improvement before stopping."""
    min_delta: float = Field(0.0, ge=0)
    """Smallest change that counts as an improvement, in the metric's units."""
    restore_best: bool = True
    """End with the weights of the best epoch rather than the last."""


class TrainConfig(Section):
    method: Literal["cd", "pcd", "pt"] = "pcd"
    k: int = Field(1, ge=1, le=100_000)
    pt: TemperingConfig = Field(default_factory=TemperingConfig)
    positive: Literal["gibbs", "meanfield"] = "meanfield"
    """General Boltzmann machines (model.type bm): how the hidden units are filled in for
    the data."""
    positive_steps: int = Field(10, ge=1, le=100_000)
    n_chains: int | None = Field(None, ge=1, le=10_000_000)
    """Persistent chains for ``pcd`` (default: the batch size)."""
    epochs: int = Field(20, ge=1, le=1_000_000)
    batch_size: int = Field(64, ge=1, le=10_000_000)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    gradient: Literal["autograd", "closed_form", "auto"] = "autograd"
    """How a gradient step gets its gradient: autograd of the surrogate loss, the
    objective's closed-form statistics (RBMs with Bernoulli or categorical hidden units,
    DBN layers, and the DBM's joint stage: the same update to rounding, faster), or
    ``auto`` (closed form where the objective has one)."""
    product_dtype: Literal["float32", "bfloat16"] = "float32"
    """The dtype of the closed-form update's matrix products (RBM and DBN layers with
    train.gradient closed_form or auto): bfloat16 runs them 2-4x faster where the hardware
    has bfloat16 dot products (CPUs with AVX-512 BF16 or AMX, CUDA compute capability 8+),
    accumulating in float32; weights, biases, sampling and the optimizer stay float32, and
    evaluation always multiplies in float32. Its likelihood cost is measured in
    docs/RESULTS.md (benchmarks/bf16_rbm.py)."""
    product_kernel: Literal["auto", "torch", "onednn"] = "auto"
    """Who runs the training step's float32 products on the CPU: those of the closed-form
    update (RBM and DBN layers, and the DBM's joint stage, with train.gradient closed_form
    or auto), and, in an autograd step, the ``nn.Linear`` layers forward and backward
    (any mlp, autoencoder, vae or gan, convolutional ones included): torch's matmul (its
    BLAS: MKL or OpenBLAS), or oneDNN's linear kernel, which uses AVX-512 on AMD CPUs
    where MKL takes its AVX2 path (1.8x faster CD-1 epochs and DBM updates on a Zen 5 EPYC,
    docs/RESULTS.md; measure on yours with benchmarks/rbm_speed.py and
    benchmarks/family_speed.py). The same update to float32 rounding; bfloat16 products
    (train.product_dtype) run in oneDNN either way. ``auto`` (the default): oneDNN where it
    was measured faster, on AMD CPUs (:func:`boltzkit.onednn.preferred`) for products of at
    least 8 M multiply-adds (:data:`boltzkit.onednn.AUTO_MIN_MULTIPLY_ADDS`: MNIST's, not
    the 8x8 digits'); torch elsewhere and wherever neither applies."""
    clip_grad_norm: float | None = Field(None, gt=0)
    clip_grad_value: float | None = Field(None, gt=0)
    checkpoint_every: int = Field(5, ge=0)
    """Epochs between checkpoints (0: only at the end)."""
    checkpoint_keep: int | None = Field(5, ge=1)
    """Epoch checkpoints (``checkpoints/epoch-NNNN.pt``) kept per stage: the newest this
    many, the older ones deleted as new ones are written (``null``: all of them; a
    784-500-1000 DBM's is 8 MB, every 5 epochs). ``last.pt``, which ``--resume`` continues
    from, is always kept, and so are the files written before a ``--resume``."""
    metrics_examples: int = Field(1000, ge=0)
    """Examples of train and of validation data used for the per-epoch metrics (0: none,
    only the loss)."""
    early_stopping: EarlyStoppingConfig | None = None
    """Off by default; ``{}`` turns it on with the defaults."""
    backoff: BackoffConfig | None = None
    """Off by default (a diverging run stops); ``{}`` backs off with the defaults."""
    tensorboard: bool = False
    """Also log every epoch's metrics to ``RUN/tensorboard`` (needs ``boltzkit[tensorboard]``)."""
    log_grad_norms: bool = False
    """Log each parameter's gradient norm (epoch mean, before clipping) as
    ``grad_norm/<parameter>`` and draw ``grad_norms.png``."""


class AISConfig(Section):
    runs: int = Field(100, ge=1, le=1_000_000)
    betas: int = Field(14501, ge=2, le=10_000_000)
    """Number of inverse temperatures (14,501 = Salakhutdinov & Murray's schedule)."""
    pseudocount: float = Field(1.0, gt=0)
    """Added to pixel counts for the base-rate model's visible biases."""


class ReverseAISConfig(Section):
    examples: int = Field(0, ge=0, le=1_000_000)
    """Held-out examples evaluated by reverse AIS (0: skip, the default: it bounds the
    annealing model, costs about 0.5 s per example on a 784 x 500 RBM, and adds evidence,
    not proof; e.g. --reverse-examples 1000)."""
    runs: int = Field(1, ge=1, le=10_000)


class EvalConfig(Section):
    every: int = Field(0, ge=0)
    """Epochs between in-training likelihood estimates with ``quick_ais`` (0 = off)."""
    ais: AISConfig = Field(default_factory=AISConfig)
    quick_ais: AISConfig = Field(default_factory=lambda: AISConfig(runs=32, betas=2000))
    reverse_ais: ReverseAISConfig = Field(default_factory=ReverseAISConfig)
    exact_max_units: int = Field(20, ge=0, le=25)
    """Also compute exact log Z when the smaller layer has at most this many units."""
    product_kernel: Literal["auto", "torch", "onednn"] = "auto"
    """Who runs the float32 products of AIS (RBM, a DBN's top layer, DBM) and of the DBM's
    mean field, in ``boltzkit evaluate`` and the per-epoch estimates: as
    train.product_kernel (``auto``: oneDNN for large products on AMD CPUs). The products
    agree to float32 rounding, but a rounding difference can flip a Bernoulli draw, so the
    chains part ways: the estimates agree within their stated error, not to the bit."""


class SpaceEntry(Section):
    """One dimension of a search space: a range (``low``, ``high``, optional ``log``,
    ``step``, ``type: int``), ``choices`` (categorical) or ``values`` (an explicit grid)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    type: Literal["float", "int"] = "float"
    choices: list[Any] | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SpaceEntry:
        lists = [name for name in ("choices", "values") if getattr(self, name) is not None]
        has_range = self.low is not None or self.high is not None
        if len(lists) > 1 or (lists and has_range):
            raise ValueError("give either low/high, choices or values, not several")
        if lists:
            if not getattr(self, lists[0]):
                raise ValueError(f"{lists[0]} must not be empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or give choices / values)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must be <= high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got low={self.low:g}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step:g}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"type: int needs integer low and high, got {self.low:g} and {self.high:g}")
        return self


class TuneConfig(Section):
    method: Literal["grid", "random", "qmc", "tpe", "gp", "cmaes"] = "tpe"
    pruner: Literal["none", "median", "successive-halving", "hyperband"] = "hyperband"
    metric: str | None = None
    """Default: the model family's headline metric (RBM ``val_pseudo_log_likelihood``,
    BM ``val_log_likelihood``, MLP ``val_accuracy``)."""
    direction: Literal["maximize", "minimize"] | None = None
    """Default: the direction the model family declares for the metric."""
    n_trials: int = Field(50, ge=1, le=1_000_000)
    """Total trials of the study, counting those of earlier and parallel runs."""
    startup_trials: int = Field(10, ge=1, le=100_000)
    """Random trials before a model-based sampler (tpe, gp, cmaes) takes over."""
    timeout: float | None = Field(None, gt=0)
    storage: str | None = None
    """An Optuna storage URL; default: sqlite file study.db in the output directory."""
    study_name: str | None = None
    space: dict[str, SpaceEntry] = Field(default_factory=dict)


class RunConfig(Section):
    """The whole run. ``model`` is the section of the family ``model.type`` names (each
    family validates only its own keys): build one with :func:`validate`,
    :func:`load_config` or :meth:`with_overrides`, which pick the family's subclass."""

    name: str = "run"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = "auto"
    threads: int | Literal["auto"] | None = "auto"
    """CPU threads for PyTorch: ``auto`` (one thread for small models, else the faster of
    one and PyTorch's count, measured: see :mod:`boltzkit.train.threads`), a number, or
    ``null`` for PyTorch's default."""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSection
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @field_validator("threads", mode="before")
    @classmethod
    def _thread_count(cls, value: Any) -> Any:
        if value is None or value == "auto" or (isinstance(value, int) and not isinstance(value, bool)
                                                and 1 <= value <= MAX_THREADS):
            return value
        raise ValueError(f"threads must be auto, null (PyTorch's default) or an integer from 1 to "
                         f"{MAX_THREADS}, got {value!r}")

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
            raise ValueError("device must be auto, cpu, cuda, cuda:N or mps")
        return value

    @model_validator(mode="after")
    def _family_metric(self) -> RunConfig:
        default = get_family(self.model.type).default_metric
        if self.tune.metric is None:
            self.tune.metric = default
        if self.train.early_stopping is not None and self.train.early_stopping.metric is None:
            self.train.early_stopping.metric = default
        return self

    @model_validator(mode="after")
    def _space_keys_exist(self) -> RunConfig:
        base = self.model_dump(mode="json")
        base.pop("tune")
        for key, entry in self.tune.space.items():
            if key.split(".")[0] == "tune":
                raise ValueError(f"tune.space cannot tune the tune section itself ({key!r})")
            # every value a trial can get: both ends of a range, every choice
            samples = [entry.low, entry.high] if entry.low is not None else (entry.choices or entry.values)
            for sample in samples:
                if entry.type == "int" and sample is not None:
                    sample = int(sample)
                try:
                    validate(apply_overrides(base, {key: sample}))
                except ConfigError as err:
                    raise ValueError(f"tune.space key {key!r} = {sample!r}: {err}") from None
        return self

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> RunConfig:
        """On :class:`RunConfig` itself, validate as the family ``model.type`` names."""
        if cls is RunConfig and isinstance(obj, Mapping):
            return run_config_class(_model_type(obj)).model_validate(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: Mapping[str, Any]) -> RunConfig:
        """A new validated config with ``{"a.b.c": value}`` applied (values as Python
        objects; a mapping value replaces a whole section, ``model.type`` may change)."""
        before = self.to_dict()
        return validate(apply_overrides(before, overrides, before))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- loading


def preset_names() -> list[str]:
    files = resources.files("boltzkit").joinpath(PRESET_DIR).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


def read_source(source: str | Path | None) -> tuple[dict[str, Any], str]:
    """The raw mapping of a preset name or YAML file, and a name for the run."""
    if source is None:
        source = DEFAULT_PRESET
    path = Path(source)
    if path.is_file():
        return read_yaml_file(path), path.stem
    if str(source) in preset_names():
        text = resources.files("boltzkit").joinpath(PRESET_DIR, f"{source}.yaml").read_text()
        return _parse_yaml(text, f"preset {source}"), str(source)
    raise ConfigError(
        f"config {str(source)!r} is neither a file nor a preset; "
        f"presets: {', '.join(preset_names())}"
    )


def read_yaml_file(path: str | Path, error: type[BoltzkitError] = ConfigError) -> dict[str, Any]:
    """The mapping in a YAML file, or ``error`` naming the file: unreadable, not UTF-8,
    not YAML, nested too deep or not a mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror})") from None
    return _parse_yaml(text, str(path), error)


def _parse_yaml(text: str, origin: str, error: type[BoltzkitError] = ConfigError) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{origin}: not valid YAML: {' '.join(str(err).split())[:300]}") from None
    except RecursionError:
        raise error(f"{origin}: nested too deeply to be a config") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error(f"{origin}: expected a mapping of config keys, got {type(raw).__name__}")
    return raw


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1e-3", "c=[1, 2]"]`` -> ``{"a.b": 0.001, "c": [1, 2]}`` (values are YAML)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=10")
        try:
            parsed[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            parsed[key] = text
        except RecursionError:
            raise ConfigError(f"--set {key}: value nested too deeply") from None
    return parsed


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any],
                    resolved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of ``raw`` with ``{"a.b.c": value}`` set.

    Two keys follow the user's intent rather than the letter of a replaced section:
    ``train.schedule`` replaced without a ``unit`` keeps the old unit (steps or epochs are
    independent of the schedule's shape; reactive schedules such as ``plateau`` always
    step per epoch), and a ``model.type`` switched to another family
    takes that family's ``data_defaults`` and default ``tune.metric`` unless the same
    overrides set them; each such change is announced with a :class:`ConfigWarning`.
    ``resolved`` is ``raw`` with defaults filled (a dumped config), to know the old values.
    """
    result = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        set_key(result, key, value)
    _keep_schedule_unit(resolved or raw, result, overrides)
    _switch_family_defaults(resolved or raw, result, overrides)
    return result


def _get(raw: Mapping[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _keep_schedule_unit(before: Mapping[str, Any], after: dict[str, Any],
                        overrides: Mapping[str, Any]) -> None:
    replaced, unit = overrides.get("train.schedule"), _get(before, "train.schedule.unit")
    name = replaced.get("name") if isinstance(replaced, Mapping) else None
    if (isinstance(replaced, Mapping) and "unit" not in replaced and unit is not None
            and not (isinstance(name, str) and name in REACTIVE)):  # reactive ones step per epoch
        set_key(after, "train.schedule.unit", unit)


def _switch_family_defaults(before: Mapping[str, Any], after: dict[str, Any],
                            overrides: Mapping[str, Any]) -> None:
    old, new = _model_type(before), _model_type(after)
    if old == new or new not in family_names():
        return
    family = get_family(new)
    for key, value in family.data_defaults.items():
        current = _get(after, f"data.{key}")
        if f"data.{key}" not in overrides and current is not None and current != value:
            set_key(after, f"data.{key}", value)
            warnings.warn(f"model.type {old} -> {new}: data.{key} {current} -> {value} (the {new} "
                          f"family's default; --set data.{key}={current} keeps it)", ConfigWarning,
                          stacklevel=3)
    metric = _get(after, "tune.metric")
    if "tune.metric" not in overrides and metric is not None and not family.logs(metric):
        set_key(after, "tune.metric", family.default_metric)
        warnings.warn(f"model.type {old} -> {new}: tune.metric {metric} -> {family.default_metric} "
                      f"({new} runs do not log {metric})", ConfigWarning, stacklevel=3)


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw[a][b][c] = value`` for ``key = 'a.b.c'``, creating sections as needed."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {key}: {prefix!r} is a value ({child!r}), not a section")
        node = child
    node[parts[-1]] = value


DEFAULT_MODEL_TYPE = "rbm"


def run_config_class(model_type: str) -> type[RunConfig]:
    """:class:`RunConfig` with ``model`` typed as the section of the family ``model_type``
    (built once per family from the registry)."""
    family = get_family(model_type)
    cached = _RUN_CONFIG_CLASSES.get(model_type)
    if cached is None or cached[0] is not family.section:
        cls = create_model(f"RunConfig_{model_type.replace('-', '_')}", __base__=RunConfig,
                           model=(family.section, Field(default_factory=family.section)))
        cls.__doc__ = RunConfig.__doc__
        _RUN_CONFIG_CLASSES[model_type] = (family.section, cls)
    return _RUN_CONFIG_CLASSES[model_type][1]


_RUN_CONFIG_CLASSES: dict[str, tuple[type, type[RunConfig]]] = {}


def _model_type(raw: Any) -> str:
    """``raw["model"]["type"]`` (default rbm), checked against the registered families."""
    model = raw.get("model") if isinstance(raw, Mapping) else None
    if model is not None and not isinstance(model, Mapping):
        raise ConfigError(f"config key 'model': expected a section (a mapping of keys), got {model!r}")
    model_type = model.get("type", DEFAULT_MODEL_TYPE) if isinstance(model, Mapping) else DEFAULT_MODEL_TYPE
    if not isinstance(model_type, str) or model_type not in family_names():
        raise ConfigError(f"config key 'model.type': invalid value {model_type!r}; accepted: "
                          + ", ".join(repr(name) for name in family_names()))
    return model_type


def validate(raw: Mapping[str, Any]) -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig` or raise a one-line ConfigError.

    ``model.type`` picks the family (see :mod:`boltzkit.families`); its section then
    validates the rest of ``model``."""
    cls = run_config_class(_model_type(raw))
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, cls)) from None


def load_config(
    source: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> RunConfig:
    """Preset or YAML file, then overrides (``["a.b=1"]`` strings as on the command line,
    or a ``{"a.b": 1}`` mapping), validated. ``name`` defaults to the preset's or file's
    name."""
    raw, name = read_source(source)
    raw.setdefault("name", name)
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    return validate(apply_overrides(raw, overrides))


def format_validation_error(err: ValidationError, config_class: type[BaseModel], prefix: str = "") -> str:
    """The first pydantic error as ``config key 'a.b': <problem> (got <value>)``; ``prefix``
    is put before every key (a section validated inside another, e.g.
    ``model.layer_overrides[1].``)."""
    first = err.errors()[0]
    if isinstance(first.get("ctx", {}).get("error"), ConfigError):
        return str(first["ctx"]["error"])  # a section's own validator named the full key already
    loc = [str(p) for p in first["loc"]]
    key = prefix + ".".join(loc)
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        section_model = _section_model(config_class, loc[:-1])
        accepted = ", ".join(section_model.model_fields) if section_model else "?"
        where = (prefix + ".".join(loc[:-1])).rstrip(".") or "the top level"
        hint = ""
        if loc[0] == "model" and len(loc) == 2:
            hint = (f" (model.type {raw_type(config_class)!r} takes only these; to switch families, "
                    "replace the whole section, e.g. --set 'model={type: mlp}')")
        return f"unknown config key {key!r}; accepted keys in {where}: {accepted}{hint}"
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return f"config key {key or 'config'!r}: {message}" if key else message
    value = first.get("input")
    if kind == "literal_error":
        message = "accepted: " + message.removeprefix("Input should be ")
    return f"config key {key!r}: invalid value {value!r}; {message[0].lower()}{message[1:]}"


def raw_type(config_class: type[BaseModel]) -> str:
    """The ``model.type`` a family's config class validates."""
    return config_class.model_fields["model"].annotation.model_fields["type"].default


def _section_model(config_class: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    model = config_class
    for part in loc:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type):
            return None
        if not issubclass(field.annotation, BaseModel):
            return None
        model = field.annotation
    return model
