"""Everything that defines a tuning run, as one JSON-serializable config.

This module imports only the standard library, so `promptopt tune --help`
builds its parser from these fields without loading TensorFlow.
"""

import dataclasses
import json
import os
import typing

METHODS = ("prompt", "residual", "prefix", "bbt", "bbtv2", "discrete")
"""Every method `promptopt tune` runs, each through the one runner loop."""

METHOD_DESCRIPTIONS = {
    "prompt": "prompt tuning (Lester et al. 2021): backprop on P input vectors",
    "residual": "residual prompt tuning (Razdaibiedina et al. 2023): backprop through an MLP",
    "prefix": "prefix tuning (Li & Liang 2021): backprop on per-layer key/value prefixes",
    "bbt": "Black-Box Tuning (Sun et al. 2022): CMA-ES on the prompt, no gradients",
    "bbtv2": "BBTv2 (Sun et al. 2022): CMA-ES on per-layer prefixes, layer by layer",
    "discrete": "discrete text search (Diao et al. 2023): a prompt of P phrases, no gradients",
}
GRADIENT_METHODS = ("prompt", "residual", "prefix")
SEARCH_METHODS = ("bbt", "bbtv2", "discrete")
# What a method's prompt is; a run may switch methods only within one kind,
# since the next stage starts from the previous stage's tensor.
PROMPT_KIND = {
    "prompt": "soft prompt [P, H]",
    "residual": "soft prompt [P, H]",
    "bbt": "soft prompt [P, H]",
    "prefix": "prefix [L, 2, P, N, D]",
    "bbtv2": "prefix [L, 2, P, N, D]",
    "discrete": "text prompt [P] phrases",
}
DEFAULT_LEARNING_RATES = {"prompt": 0.03, "residual": 0.03, "prefix": 0.005}
DEFAULT_PROMPT_LENGTHS = {"prefix": 10, "bbtv2": 5, "discrete": 3}


class ConfigError(ValueError):
    """A config file or flag value is not valid; the message says the fix."""


def _field(default, help, group, choices=None, type=None, flag=None):
    return dataclasses.field(
        default=default,
        metadata={"help": help, "group": group, "choices": choices, "type": type, "flag": flag},
    )


@dataclasses.dataclass
class TuneConfig:
    """One tuning run: data, model, method, budget, selection and outputs.

    Every field is a key of the JSON config file (`promptopt tune --config
    run.json`) and a flag of `promptopt tune` (`prompt_length` is
    `--prompt-length`); flags override the file. `results.json` stores the
    resolved config, so `promptopt tune --config out/results.json` runs the
    same run again. None means "the method's default" (see `resolved()`).

    Example:

    ```python
    config = TuneConfig(task="sst2", method="prefix", steps=40)
    config.resolved().learning_rate  # 0.005, prefix tuning's default
    ```
    """

    # data
    train: typing.Optional[str] = _field(None, "CSV, TSV or JSONL file of training examples", "data")
    dev: typing.Optional[str] = _field(
        None, "dev file: every --eval-every steps the prompt is scored on it and the best kept", "data")
    test: typing.Optional[str] = _field(None, "test file, scored before and after tuning", "data")
    task: typing.Optional[str] = _field(
        None, "a built-in 16-shot task instead of files", "data", choices=("sst2", "sst5", "trec"))
    fewshot_seed: int = _field(42, "split seed of --task (13, 21, 42, 87, 100)", "data")
    data_dir: typing.Optional[str] = _field(None, "folder holding lmbff_16shot/ (default ../shared/data)", "data")
    template: typing.Optional[str] = _field(None, "e.g. '{sentence} It was'; fields are column names", "data")
    label_column: str = _field("label", "column holding the label", "data")
    label_words: typing.Optional[typing.Any] = _field(
        None, "'0=terrible,1=great' (a space is prepended to each word) or JSON", "data")
    single_token_labels: bool = _field(False, "require every label word to be one vocabulary token", "data")
    # model and prompt
    model: str = _field(
        "smollm2-135m", "smollm2-135m (embedded), a keras-hub preset name, or a preset folder", "model")
    dtype: typing.Optional[str] = _field(
        None, "backbone precision; default float32 for the gradient methods, and for the search "
        "methods (forward only) bfloat16 where this machine computes it natively (a GPU, TPU, or "
        "a CPU with AVX-512 BF16 or AMX), else float32", "model", choices=("float32", "bfloat16"))
    placement: typing.Optional[str] = _field(
        None, "soft prompt before the input (prefix) or after it (suffix); for prefix and bbtv2, "
        "suffix puts the per-layer keys and values after the input, read only by the template's "
        "tail (a deep suffix; Llama family). Default suffix for bbt and bbtv2 on Llama-family "
        "models (the input's keys and values are then shared by every candidate), else prefix", "model",
        choices=("prefix", "suffix"))
    prompt_length: typing.Optional[int] = _field(
        None, "P: prompt vectors, prefix positions or phrases (default 20; prefix 10, bbtv2 5, "
        "discrete 3)", "model")
    init: str = _field(
        "labels", "labels (the label words), vocab, random, 'text:<words>', or a .npy/prompt file", "model")
    max_length: int = _field(128, "max tokens per example", "model")
    devices: typing.Optional[typing.Any] = _field(
        None, "JAX backend: 'all' or a count of devices; the mini-batch (or a search's candidates) "
        "is split over them and the backbone replicated (default: one device, no distribution)",
        "model")
    # method and budget
    method: str = _field("prompt", "what to tune and how", "method", choices=METHODS)
    then: typing.Optional[str] = _field(
        None, "continue with this method on the same prompt (same kind: prompt/residual/bbt, "
        "prefix/bbtv2)", "method", choices=METHODS)
    steps: typing.Optional[int] = _field(
        None, "optimizer steps of a gradient method (default: --epochs passes over the training set)",
        "method")
    epochs: int = _field(8, "passes over the training set, when --steps is not given", "method")
    forward_calls: int = _field(400, "budget of a search method: candidate scorings (BBT's unit)", "method")
    then_budget: typing.Optional[int] = _field(
        None, "budget of --then, in its unit: steps (gradient) or forward calls (search)", "method")
    # gradient methods
    optimizer: str = _field(
        "adamw", "update rule of the gradient methods", "gradient",
        choices=("adamw", "adam", "adafactor", "sgd"))
    learning_rate: typing.Optional[float] = _field(
        None, "step size (default: prompt and residual 0.03, prefix 0.005)", "gradient", flag="--lr")
    weight_decay: float = _field(0.0, "AdamW's decoupled weight decay", "gradient")
    batch_size: int = _field(8, "examples per gradient step", "gradient")
    residual_scale: typing.Any = _field(
        "embedding", "initial LayerNorm gain of the residual MLP: 'embedding' (std of the embedding "
        "table) or a number (1 = paper)", "gradient")
    residual_bottleneck: int = _field(400, "hidden size of the residual MLP", "gradient")
    residual_layer_norm: bool = _field(
        True, "end the residual MLP in a LayerNorm (--no-residual-layer-norm: without)", "gradient")
    residual_dropout: float = _field(
        0.0, "dropout on the residual MLP's output in training steps (reference code: 0)",
        "gradient")
    residual_lr: typing.Optional[float] = _field(
        None, "step size of the residual MLP's weights (default: --lr)", "gradient")
    residual_weight_decay: typing.Optional[float] = _field(
        None, "weight decay of the residual MLP's weights (default: --weight-decay)", "gradient")
    # search methods
    popsize: int = _field(20, "candidates per CMA-ES or discrete-search generation", "search")
    subspace_dim: int = _field(500, "d, dimension of CMA-ES's random subspace (BBT: 500)", "search")
    sigma: typing.Optional[float] = _field(
        None, "CMA-ES's initial step size (default: bbt 1.0, bbtv2 0.2)", "search")
    alpha: float = _field(0.2, "BBTv2's projection scale alpha", "search")
    loss: str = _field(
        "cross_entropy", "training loss of every stage (negative_accuracy has no gradient: search only)",
        "search", choices=("cross_entropy", "hinge", "negative_accuracy"))
    chunk_size: int = _field(
        32, "examples per forward pass when a search scores the whole training set", "search")
    phrases: typing.Optional[typing.Any] = _field(
        None, "discrete: the phrase list (JSON list or a text file, one phrase a line; "
        "default a built-in list of task phrases)", "search")
    # selection, outputs
    eval_every: typing.Optional[int] = _field(
        None, "score the prompt on --dev every N steps or generations and keep the best (default: "
        "gradient methods once per epoch, search methods every generation)", "selection")
    eval_batch_size: int = _field(32, "examples per forward pass when scoring dev and test", "selection")
    test_before: bool = _field(
        True, "score --test before tuning too (--no-test-before: after only)", "selection")
    seed: int = _field(0, "seed of the initialization, the mini-batches and the search", "selection")
    output_dir: str = _field(
        "promptopt-output", "where the prompt, results and checkpoints go (nothing is written elsewhere)",
        "output")
    logdir: typing.Optional[str] = _field(
        None, "write TensorBoard logs (loss, accuracy, prompt norms, nearest tokens, hparams) here", "output")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source="the config"):
        """A config from a dict; unknown keys are refused with the known ones."""
        if isinstance(values, dict) and "config" in values and isinstance(values["config"], dict):
            values = values["config"]  # a results.json
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source} must hold a JSON object of settings, got {type(values).__name__}. "
                'Write e.g. {"method": "prompt", "steps": 40}.')
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{source} has unknown keys {unknown}. Known keys: {', '.join(sorted(known))}.")
        return cls(**values)

    @classmethod
    def load(cls, path):
        """Reads a JSON config, or the `config` of a `results.json`."""
        try:
            with open(path) as f:
                values = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"Config file {path} does not exist. Check the path.") from None
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"Config file {path} is not valid JSON ({error}). Fix the file.") from None
        return cls.from_dict(values, source=f"Config file {path}")

    def validate(self):
        """Checks types and combinations; raises `ConfigError` with the fix."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata["choices"]
            if choices and value is not None and value not in choices:
                raise ConfigError(f"{_flag(f)} must be one of {', '.join(choices)}, got {value!r}.")
            expected = f.type
            if expected in (int, float, bool, str) and value is not None:
                ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
                if expected is float and isinstance(value, int) and not isinstance(value, bool):
                    ok = True
                if not ok:
                    raise ConfigError(
                        f"{_flag(f)} must be a {expected.__name__}, got {value!r}.")
        for name in ("fewshot_seed", "seed"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ConfigError(f"{_flag_of(name)} must be an int, got {getattr(self, name)!r}.")
        for name in ("prompt_length", "steps", "epochs", "forward_calls", "then_budget", "batch_size",
                     "popsize", "subspace_dim", "chunk_size", "eval_every", "eval_batch_size",
                     "max_length", "residual_bottleneck"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{_flag_of(name)} must be an int, got {value!r}.")
            low = 0 if name in ("prompt_length", "steps", "epochs", "forward_calls", "then_budget") else 1
            if value < low:
                raise ConfigError(f"{_flag_of(name)} must be at least {low}, got {value}.")
        if self.popsize < 2:
            raise ConfigError(f"--popsize must be at least 2, got {self.popsize}.")
        for name in ("learning_rate", "sigma", "alpha", "residual_lr"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"{_flag_of(name)} must be a positive number, got {value!r}.")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be at least 0, got {self.weight_decay}.")
        if not (isinstance(self.residual_dropout, (int, float))
                and not isinstance(self.residual_dropout, bool) and 0 <= self.residual_dropout < 1):
            raise ConfigError(
                f"--residual-dropout must be in [0, 1), got {self.residual_dropout!r}.")
        if self.residual_weight_decay is not None and self.residual_weight_decay < 0:
            raise ConfigError(
                f"--residual-weight-decay must be at least 0, got {self.residual_weight_decay}.")
        if self.residual_scale != "embedding" and not (
                isinstance(self.residual_scale, (int, float)) and not isinstance(self.residual_scale, bool)):
            raise ConfigError(
                f"--residual-scale takes 'embedding' or a number such as 1.0, not {self.residual_scale!r}.")
        if self.then is not None:
            if PROMPT_KIND[self.then] != PROMPT_KIND[self.method]:
                raise ConfigError(
                    f"--then {self.then} tunes a {PROMPT_KIND[self.then]}, but --method {self.method} "
                    f"tunes a {PROMPT_KIND[self.method]}; a later stage starts from the earlier "
                    "stage's tensor. Pair prompt, residual and bbt, or prefix and bbtv2.")
            if "residual" in (self.method, self.then):
                raise ConfigError(
                    "residual trains the prompt through an MLP, which a search stage cannot "
                    "continue. Use --method prompt with --then bbt (or the reverse), or run residual "
                    "alone.")
            if self.then == self.method:
                raise ConfigError(
                    f"--then {self.then} repeats --method; give a larger budget instead.")
        if self.loss == "negative_accuracy":
            gradient = [m for m in (self.method, self.then) if m in GRADIENT_METHODS]
            if gradient:
                raise ConfigError(
                    f"--loss negative_accuracy has no gradient, so {gradient[0]} cannot train on it. "
                    "Use --loss cross_entropy or hinge, or a search method (bbt, bbtv2, discrete).")
        if (self.train or self.dev or self.test) and self.task:
            raise ConfigError("Give either data files (--train/--test) or --task, not both.")
        if self.devices is not None:
            from promptopt.distribution.device_spec import parse_devices

            try:
                parse_devices(self.devices)
            except ValueError as error:
                raise ConfigError(f"--devices: {error}") from None
        return self

    def resolved(self):
        """A copy with every None default replaced by the method's value."""
        self.validate()
        values = self.to_dict()
        method = self.method
        if values["prompt_length"] is None:
            values["prompt_length"] = DEFAULT_PROMPT_LENGTHS.get(method, 20)
        if values["learning_rate"] is None:
            gradient = method if method in GRADIENT_METHODS else self.then
            values["learning_rate"] = DEFAULT_LEARNING_RATES.get(gradient, 0.03)
        if values["sigma"] is None:
            values["sigma"] = 0.2 if "bbtv2" in (method, self.then) else 1.0
        if values["dtype"] is None:
            uses_gradients = any(m in GRADIENT_METHODS for m in (method, self.then) if m)
            # Emulated bfloat16 (a CPU without AVX-512 BF16 or AMX) is many
            # times slower than float32, not faster.
            from promptopt.backends.native_bfloat16 import has_native_bfloat16

            native = not uses_gradients and has_native_bfloat16()
            values["dtype"] = "bfloat16" if native else "float32"
        return TuneConfig(**values)

    def stage_methods(self):
        return [self.method] + ([self.then] if self.then else [])


def _flag(field):
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def _flag_of(name):
    return _flag(next(f for f in dataclasses.fields(TuneConfig) if f.name == name))


def config_fields():
    """`(field, flag)` pairs of `TuneConfig`, in order (for the CLI)."""
    return [(f, _flag(f)) for f in dataclasses.fields(TuneConfig)]


def write_json(path, values):
    """Writes `values` as JSON atomically (a temp file, then a rename)."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(values, f, indent=2)
        f.write("\n")
    os.replace(temporary, path)
