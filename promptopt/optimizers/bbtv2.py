"""BBTv2: deep prompts searched layer by layer, CMA-ES in a subspace per layer."""

import collections
import collections.abc
import dataclasses
import math
import numbers

import numpy as np

from promptopt.optimizers.base import PROMPT_DTYPE
from promptopt.optimizers.base import PromptOptimizer
from promptopt.optimizers.cma_es import _with_numpy_global_state
from promptopt.optimizers.cma_es import ask_copy
from promptopt.optimizers.cma_es import check_finite_losses
from promptopt.optimizers.cma_es import check_popsize
from promptopt.optimizers.cma_es import check_positive_int
from promptopt.optimizers.cma_es import check_positive_number
from promptopt.optimizers.cma_es import gaussian_projection
from promptopt.optimizers.cma_es import new_strategy
from promptopt.optimizers.cma_es import random_state_fields
from promptopt.optimizers.cma_es import random_state_for
from promptopt.optimizers.cma_es import random_state_from_fields
from promptopt.optimizers.cma_es import strategy_from_array
from promptopt.optimizers.cma_es import strategy_to_array
from promptopt.optimizers.cma_es import tell_in_place
from promptopt.optimizers.registry import register_optimizer
from promptopt.optimizers.serialization import pack_state
from promptopt.optimizers.serialization import unpack_state

# Regenerated projections kept in memory at once (the active layer's always
# is): small prompts keep every layer's, a SmolLM2 prefix (3,840 entries a
# layer, 15 MB a projection at d = 500) only a few.
_PROJECTION_CACHE_BYTES = 64 * 2**20

# `SeedSequence` spawn keys of the three streams drawn from the seed.
_PROJECTION_STREAM, _SAMPLING_STREAM, _FALLBACK_STREAM = 0, 1, 2


def _stream(seed, *key):
    """The `SeedSequence` of stream `key` (e.g. `(0, layer)`) of `seed`."""
    return np.random.SeedSequence(seed, spawn_key=key)


@dataclasses.dataclass(frozen=True)
class BBTv2State:
    """State of `BBTv2Optimizer`. Its fields are never mutated.

    Args:
        strategies: tuple of `L` `cma.CMAEvolutionStrategy`, layer `l`'s over
            its own `z_l` `[d]`, each as of its last `tell`. `ask` and `tell`
            work on deep copies of the active one.
        numpy_random_state: tuple, an `np.random.get_state()` swapped into
            numpy's global generator around every pycma call (one for all
            layers; pycma's samples come from each strategy's own
            generator).
        init_prompt: np.ndarray `[L, *B]`, `p0`; layer `l`'s block is
            `A_l z_l + p0[l]`.
        layer_stds: np.ndarray `[L]` float64, the `sigma_l` the projections
            are scaled by, as resolved by `init` (see `layer_stds` of
            `BBTv2Optimizer`).
        seed: int, the seed that regenerates the projections `A_l`.
        best_prompt: np.ndarray `[L, *B]`, the lowest-loss candidate so far
            (`init_prompt` before any `tell`). Candidates are this prompt
            with the active layer's block replaced.
        best_loss: float, its loss (inf before any `tell`).
        step: int, the number of `tell` calls (generations) so far, over
            all layers; it determines the active layer.
    """

    strategies: tuple
    numpy_random_state: tuple
    init_prompt: np.ndarray
    layer_stds: np.ndarray
    seed: int
    best_prompt: np.ndarray
    best_loss: float
    step: int


def _is_positive_number(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _checked_layer_stds(layer_stds):
    """`None`, a float, or a tuple of floats; raises with the fix otherwise."""
    if layer_stds is None:
        return None
    if isinstance(layer_stds, np.ndarray):
        layer_stds = layer_stds.tolist()  # a float (0-d) or a list (1-d)
    if isinstance(layer_stds, numbers.Real) and not isinstance(layer_stds, bool):
        if not _is_positive_number(layer_stds):
            raise ValueError(
                f"layer_stds must be positive and finite, got {layer_stds!r}. "
                "Pass the spread of what each layer's prompt replaces, e.g. "
                "layer_stds=1.0 or layer_stds=layer_kv_stds(model, x)."
            )
        return float(layer_stds)
    if isinstance(layer_stds, (str, bytes)) or not isinstance(
        layer_stds, collections.abc.Sequence
    ):
        raise ValueError(
            f"layer_stds must be None, one positive float, or a sequence of "
            f"one positive float per layer, got {layer_stds!r}. Pass e.g. "
            "layer_stds=layer_kv_stds(model, x)."
        )
    values = list(layer_stds)
    if not values:
        raise ValueError(
            "layer_stds is empty; it needs one positive float per layer. Pass "
            "e.g. layer_stds=layer_kv_stds(model, x), or None."
        )
    for layer, value in enumerate(values):
        if not _is_positive_number(value):
            raise ValueError(
                f"layer_stds[{layer}] must be a positive finite number, got "
                f"{value!r}. Pass the spread of what layer {layer}'s prompt "
                "replaces (e.g. from layer_kv_stds(model, x))."
            )
    return tuple(float(value) for value in values)


@register_optimizer("bbtv2")
class BBTv2Optimizer(PromptOptimizer):
    """Derivative-free deep-prompt search (Sun et al., 2022, "BBTv2").

    BBTv2 tunes a prompt in every layer of a frozen model. Here the leading
    axis of the prompt is the layer axis: a prompt `[L, *B]` holds `L`
    blocks, `prompt[l]` being layer `l`'s (for a `KeyValuePrefix`
    `[L, 2, P, N, D]`, layer `l`'s keys and values; any other prompt works
    too, its first axis taken as the "layers", e.g. the tokens of `[P, H]`).

    - **One subspace per layer**: layer `l`'s block is `A_l z_l + p0[l]`,
      with `p0` the initial prompt (BBT's `A z + p0`, their Eq. 3; the
      reference starts deep prompts from zero, `p0 = 0`), `z_l` `[d]`
      (`d = subspace_dim`) and `A_l` `[numel_l, d]` (`numel_l = prod(B)`) a
      fixed random matrix with entries from `N(0, (alpha * sigma_l /
      (sqrt(d) * sigma))^2)` (BBTv2's model-specific normal projection,
      replacing BBT's uniform one). With `z_l ~ N(0, sigma^2 I)`, the first
      population of a layer perturbs each of its entries with standard
      deviation `alpha * sigma_l`, where `sigma_l` is the spread of what that layer's
      prompt replaces (BBTv2: the layer's hidden states; here the keys and
      values the prefix stands beside, `layer_kv_stds`). The `A_l` are
      regenerated from the seed, never stored.
    - **Divide and conquer** (BBTv2's algorithm): each layer has its own
      pycma CMA-ES over its own `z_l`, started at 0 with step `sigma`. The search
      cycles over the layers `0, 1, ..., L-1, 0, ...`, giving each visit
      `generations_per_layer` generations, so a budget of `G` generations
      gives each layer about `G / L`. The candidates of a generation
      (`ask`: `[K, L, *B]`, `K = popsize`) are the best prompt so far with
      only the active layer's block replaced; the other layers stay
      frozen at their best.
    - **Best so far**: `tell` updates the active layer's CMA-ES and keeps the
      lowest-loss candidate over all layers as the best prompt, which the
      next layers' candidates build on. (The reference `deepbbt.py` instead
      writes each layer's `A_l * xbest_l` back after its generation, where
      `xbest_l` may have been scored with other layers as they were on an
      earlier visit; keeping the lowest-loss prompt makes `best()` the
      prompt that was actually scored.) The very first generation includes
      `z_0 = 0`, i.e. `p0` itself, so `best()` never ends worse than where
      the search started.

    Every layer's CMA-ES is a full pycma strategy over `d` dimensions (its
    covariance `[d, d]`), so a state holds `L` of them: about 4 MB a layer
    at `d = 500` in `state_to_bytes` (120 MB for SmolLM2's 30 layers); with
    a checkpoint directory, raise the runner's `checkpoint_every`.

    Args:
        subspace_dim: int, `d`, the dimension of each layer's `z_l`.
            Defaults to 500, as the reference (`--intrinsic_dim 500`).
        popsize: int, candidates per generation (`K`). Defaults to 20
            (`--popsize 20`).
        sigma: float, the initial CMA-ES step size of every layer. Defaults
            to 0.2 (`--sigma 0.2`).
        alpha: float, the scale of each layer's projection: a layer's
            first population perturbs its entries by `alpha * sigma_l`.
            Defaults to 0.2 (`--alpha 0.2`).
        layer_stds: `sigma_l` per layer: a sequence of `L` positive floats
            (e.g. `promptopt.prefixes.prefix_statistics.layer_kv_stds(model,
            x)`), one float for every layer, or None (the default): then
            `sigma_l` is the standard deviation of the initial prompt's
            block `p0[l]` (for a prefix initialized from real words, as
            `PrefixModel`'s default "vocab" initializer does, the spread of
            real tokens' keys and values in that layer), or 1.0 where that
            block is constant (e.g. an all-zero start).
        generations_per_layer: int, generations a layer's CMA-ES runs on
            each visit before the search moves to the next layer. Defaults
            to 1, as the reference (one `ask`/`tell` per layer per cycle).
        bound: optional float; when set, every `z_l` entry stays in
            `[-bound, bound]` (pycma's `bounds`, the reference's `--bound`,
            0 = off there). Defaults to None (unbounded, `--bound 0`).

    Example:

    ```python
    from promptopt.prefixes.prefix_statistics import layer_kv_stds

    optimizer = BBTv2Optimizer(layer_stds=layer_kv_stds(model, x))
    state = optimizer.init(model.prefix.materialize(), seed=42)  # [L, 2, P, N, D]
    candidates = optimizer.ask(state)  # [20, L, 2, P, N, D], layer 0 varies
    state, metrics = optimizer.tell(state, candidates, losses)  # losses [20]
    print(metrics["layer"], metrics["sigma"], metrics["best_loss"])
    ```
    """

    needs_gradients = False

    def __init__(
        self,
        subspace_dim=500,
        popsize=20,
        sigma=0.2,
        alpha=0.2,
        layer_stds=None,
        generations_per_layer=1,
        bound=None,
    ):
        check_positive_int("subspace_dim", subspace_dim, 500)
        check_popsize(popsize)
        check_positive_number("sigma", sigma, 0.2)
        check_positive_number("alpha", alpha, 0.2)
        check_positive_int("generations_per_layer", generations_per_layer, 1)
        if bound is not None and not _is_positive_number(bound):
            raise ValueError(
                f"bound must be None (no bound) or a positive finite number, "
                f"got {bound!r}. Pass e.g. bound=5.0, or leave it None."
            )
        self.subspace_dim = subspace_dim
        self.popsize = popsize
        self.sigma = float(sigma)
        self.alpha = float(alpha)
        self.layer_stds = _checked_layer_stds(layer_stds)
        self.generations_per_layer = generations_per_layer
        self.bound = None if bound is None else float(bound)
        self._projections = collections.OrderedDict()
        self._sample_cache = None

    # --- the layers and their subspaces ------------------------------------

    def _resolve_layer_stds(self, prompt):
        """`sigma_l` `[L]` (float64) for an initial prompt `[L, *B]`."""
        layers = prompt.shape[0]
        if self.layer_stds is None:
            spread = np.std(prompt.reshape(layers, -1).astype(np.float64), axis=1)
            return np.where(spread > 0, spread, 1.0)
        if isinstance(self.layer_stds, float):
            return np.full(layers, self.layer_stds)
        if len(self.layer_stds) != layers:
            raise ValueError(
                f"layer_stds has {len(self.layer_stds)} entries, but the "
                f"prompt of shape {prompt.shape} has L = {layers} layers (its "
                "leading axis). Pass one std per layer (e.g. "
                "layer_kv_stds(model, x) for the same model), or one float "
                "for all."
            )
        return np.asarray(self.layer_stds, dtype=np.float64)

    def active_layer(self, state):
        """The layer `ask(state)` varies: `(step // generations_per_layer) % L`."""
        return (state.step // self.generations_per_layer) % len(state.strategies)

    def projection_std(self, layer_std):
        """BBTv2's std of `A_l`'s entries: `alpha * sigma_l / (sqrt(d) * sigma)`."""
        return self.alpha * layer_std / (math.sqrt(self.subspace_dim) * self.sigma)

    def projection(self, state, layer):
        """`A_l` `[numel_l, d]` of `layer`, regenerated from the seed (read-only).

        Each layer's matrix comes from its own stream of the seed, so it
        does not depend on the other layers (nor on their number).
        """
        numel = state.init_prompt[0].size
        std = self.projection_std(float(state.layer_stds[layer]))
        key = (state.seed, layer, numel, std, self.subspace_dim)
        if key in self._projections:
            self._projections.move_to_end(key)
            return self._projections[key]
        matrix = gaussian_projection(
            _stream(state.seed, _PROJECTION_STREAM, layer), numel, self.subspace_dim, std
        )
        matrix.flags.writeable = False
        self._projections[key] = matrix
        total = sum(m.nbytes for m in self._projections.values())
        while total > _PROJECTION_CACHE_BYTES and len(self._projections) > 1:
            _, dropped = self._projections.popitem(last=False)
            total -= dropped.nbytes
        return matrix

    # --- the protocol --------------------------------------------------------

    def init(self, prompt, seed):
        prompt = self._check_prompt(prompt)
        if prompt.ndim == 0:
            raise ValueError(
                "BBTv2Optimizer.init() needs a prompt whose leading axis is "
                "the layer axis, [L, ...]; got a scalar. Pass e.g. a prefix "
                "[L, 2, P, N, D] or a prompt [P, H]."
            )
        seed = int(seed)
        layer_stds = self._resolve_layer_stds(prompt)
        size = self.subspace_dim
        options = {} if self.bound is None else {"bounds": [-self.bound, self.bound]}

        def make_strategies():
            # One CMA-ES per layer, each from z_l = 0 with step sigma
            # (BBTv2's divide and conquer). Layer 0's first generation includes z_0 = 0,
            # i.e. `p0` itself; later layers' first candidates build on the
            # best prompt, whose loss is then known.
            return tuple(
                new_strategy(
                    size,
                    self.sigma,
                    self.popsize,
                    _stream(seed, _SAMPLING_STREAM, layer),
                    include_origin=layer == 0,
                    **options,
                )
                for layer in range(prompt.shape[0])
            )

        strategies, random_state = _with_numpy_global_state(
            random_state_for(_stream(seed, _FALLBACK_STREAM)), make_strategies
        )
        return BBTv2State(
            strategies=strategies,
            numpy_random_state=random_state,
            init_prompt=prompt,
            layer_stds=layer_stds,
            seed=seed,
            best_prompt=prompt.copy(),
            best_loss=math.inf,
            step=0,
        )

    def _sample(self, state, consume=False):
        """Returns `(active_strategy_after_ask, z [K, d], random_state_after)`.

        Cached for the state last asked about, as in `CMAESOptimizer`
        (pycma's ask updates the eigendecomposition of the `[d, d]`
        covariance); `tell` consumes the entry because it mutates the copy.
        """
        cached = self._sample_cache
        if cached is not None and cached[0] is state:
            if consume:
                self._sample_cache = None
            return cached[1:]
        strategy, z, random_state = ask_copy(
            state.strategies[self.active_layer(state)], state.numpy_random_state
        )
        self._sample_cache = None if consume else (state, strategy, z, random_state)
        return strategy, z, random_state

    def _to_prompts(self, state, z):
        """Maps the active layer's `z` `[K, d]` to candidates `[K, L, *B]`."""
        layer = self.active_layer(state)
        block_shape = state.init_prompt.shape[1:]
        # BBTv2's deep prompt of layer l: p_l = A_l z_l (+ p0[l], BBT's Eq. 3
        # offset from the initial prompt).
        offsets = (z @ self.projection(state, layer).T).reshape((len(z),) + block_shape)
        blocks = (offsets + state.init_prompt[layer]).astype(PROMPT_DTYPE)
        # Divide and conquer: every other layer keeps the best prompt's block.
        candidates = np.repeat(state.best_prompt[None], len(z), axis=0)
        candidates[:, layer] = blocks
        return candidates

    def ask(self, state):
        """Returns `[K, L, *B]`: the best prompt with the active layer varied."""
        _, z, _ = self._sample(state)
        return self._to_prompts(state, z)

    def tell(self, state, candidates, losses, grads=None):
        """Updates the active layer's CMA-ES and the best prompt; moves on.

        Metrics: `loss` (this generation's lowest), `mean_loss`,
        `best_loss` (over the whole run), `sigma` (the step size of the
        layer just told, after its update) and `layer` (that layer's index).
        """
        strategy, z, random_state = self._sample(state, consume=True)
        expected = self._to_prompts(state, z)
        _, losses, _ = self._check_told(
            state, candidates, losses, grads, expected=expected
        )
        check_finite_losses(self, losses)
        layer = self.active_layer(state)
        random_state = tell_in_place(strategy, z, losses, random_state)
        strategies = state.strategies[:layer] + (strategy,) + state.strategies[layer + 1 :]
        winner = int(np.argmin(losses))
        best_prompt, best_loss = state.best_prompt, state.best_loss
        if losses[winner] < best_loss:
            best_prompt, best_loss = expected[winner].copy(), float(losses[winner])
        new_state = BBTv2State(
            strategies=strategies,
            numpy_random_state=random_state,
            init_prompt=state.init_prompt,
            layer_stds=state.layer_stds,
            seed=state.seed,
            best_prompt=best_prompt,
            best_loss=best_loss,
            step=state.step + 1,
        )
        metrics = {
            "loss": float(losses[winner]),
            "mean_loss": float(np.mean(losses)),
            "best_loss": best_loss,
            "sigma": float(strategy.sigma),
            "layer": float(layer),
        }
        return new_state, metrics

    def best(self, state):
        return state.best_prompt.copy()

    def state_to_bytes(self, state):
        # pycma documents pickling as its way to save a strategy, so this one
        # field is a pickle: load checkpoints only from sources you trust.
        return pack_state(
            {
                "strategies_pickle": strategy_to_array(state.strategies),
                **random_state_fields(state.numpy_random_state),
                "init_prompt": state.init_prompt,
                "layer_stds": state.layer_stds,
                "seed": state.seed,
                "best_prompt": state.best_prompt,
                "best_loss": state.best_loss,
                "step": state.step,
            }
        )

    def state_from_bytes(self, data):
        fields = unpack_state(data)
        return BBTv2State(
            strategies=tuple(strategy_from_array(fields["strategies_pickle"])),
            numpy_random_state=random_state_from_fields(fields),
            init_prompt=fields["init_prompt"],
            layer_stds=fields["layer_stds"],
            seed=fields["seed"],
            best_prompt=fields["best_prompt"],
            best_loss=float(fields["best_loss"]),
            step=fields["step"],
        )

    def get_config(self):
        layer_stds = self.layer_stds
        return {
            "subspace_dim": self.subspace_dim,
            "popsize": self.popsize,
            "sigma": self.sigma,
            "alpha": self.alpha,
            "layer_stds": list(layer_stds) if isinstance(layer_stds, tuple) else layer_stds,
            "generations_per_layer": self.generations_per_layer,
            "bound": self.bound,
        }
