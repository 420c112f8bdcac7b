"""Black-Box Tuning: CMA-ES in a random low-dimensional subspace of the prompt."""

import copy
import dataclasses
import math
import pickle
import warnings

import numpy as np

with warnings.catch_warnings():
    # pycma warns at import when matplotlib is missing; plotting is unused.
    warnings.simplefilter("ignore")
    import cma

from promptopt.optimizers.base import PROMPT_DTYPE
from promptopt.optimizers.base import PromptOptimizer
from promptopt.optimizers.registry import register_optimizer
from promptopt.optimizers.serialization import pack_state
from promptopt.optimizers.serialization import unpack_state

# pycma options that keep it silent and file-free: no `outcmaes*/` logs, no
# console output, no reading of `cma_signals.in` from the working directory,
# and `seed=nan` so that it never reseeds numpy's global generator itself.
_QUIET_FILE_FREE_OPTIONS = {
    "verbose": -9,
    "verb_disp": 0,
    "verb_log": 0,
    "verb_plot": 0,
    "verb_time": False,
    "signals_filename": None,
    "seed": float("nan"),
}


@dataclasses.dataclass(frozen=True)
class CMAESState:
    """State of `CMAESOptimizer`. Its fields are never mutated.

    Args:
        strategy: `cma.CMAEvolutionStrategy` over `z` `[d]`, as of the last
            `tell`. `ask` and `tell` work on deep copies of it.
        numpy_random_state: tuple, an `np.random.get_state()` swapped into
            numpy's global generator around every pycma call, for any pycma
            code that draws from it. (pycma's samples come from a
            `RandomState` of its own, inside `strategy`.)
        init_prompt: np.ndarray `[*S]`, `p0` in `prompt = A z + p0`.
        seed: int, the seed that regenerates the projection `A`.
        best_prompt: np.ndarray `[*S]`, the lowest-loss candidate so far
            (`init_prompt` before any `tell`).
        best_loss: float, its loss (inf before any `tell`).
        step: int, the number of `tell` calls (generations) so far.
    """

    strategy: object
    numpy_random_state: tuple
    init_prompt: np.ndarray
    seed: int
    best_prompt: np.ndarray
    best_loss: float
    step: int


def _with_numpy_global_state(random_state, function):
    """Runs `function()` with numpy's global generator set to `random_state`.

    Returns `(result, random_state_after)`, and leaves the caller's global
    generator exactly as it was. Not thread-safe (the global generator is
    shared), like pycma itself.
    """
    callers_state = np.random.get_state()
    np.random.set_state(random_state)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. pycma's flat-fitness notes
            result = function()
        return result, np.random.get_state()
    finally:
        np.random.set_state(callers_state)


# Helpers shared with `BBTv2Optimizer` (bbtv2.py), which runs one such
# strategy per layer.


def check_positive_int(name, value, example):
    """Raises unless `value` is an int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive int, got {value!r}. Pass e.g. "
            f"{name}={example}."
        )


def check_popsize(popsize):
    """Raises unless `popsize` is an int >= 2 (CMA-ES ranks candidates)."""
    check_positive_int("popsize", popsize, 20)
    if popsize < 2:
        raise ValueError(
            f"popsize must be at least 2 for CMA-ES to rank candidates, "
            f"got {popsize}. Pass e.g. popsize=20."
        )


def check_positive_number(name, value, example):
    """Raises unless `value` is a finite int or float > 0 (bools refused)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and value > 0):
        raise ValueError(
            f"{name} must be a positive finite number, got {value!r}. "
            f"Pass e.g. {name}={example}."
        )


def check_finite_losses(optimizer, losses):
    """Raises unless every loss is finite; `optimizer` names the caller."""
    if not np.all(np.isfinite(losses)):
        raise ValueError(
            f"{type(optimizer).__name__}.tell() got NaN or inf losses; CMA-ES "
            "ranks candidates and cannot rank those. Make the evaluator return "
            "finite losses (e.g. clip log-probabilities)."
        )


def gaussian_projection(seed_sequence, numel, size, std):
    """BBT's random projection `A` `[numel, size]`, entries `N(0, std^2)`."""
    rng = np.random.default_rng(seed_sequence)
    return rng.normal(0.0, std, size=(numel, size))


def random_state_for(seed_sequence):
    """A numpy global-generator state (`np.random.get_state()` tuple)."""
    return np.random.RandomState(seed_sequence.generate_state(1)[0]).get_state()


def new_strategy(size, sigma, popsize, sampling_seed, include_origin, **options):
    """A quiet, file-free pycma strategy over `z` `[size]` from `z = 0`.

    Call it inside `_with_numpy_global_state`. pycma draws its samples with
    `options["randn"]`; giving it a generator of its own (seeded from
    `sampling_seed`, a `SeedSequence`) makes the generator part of the
    strategy object: a deep copy (in `ask`) or a pickle (in
    `state_to_bytes`) carries its exact position along, so the state alone
    determines the next candidates. (With the default `np.random.randn`, a
    copy would snapshot whatever the caller's global generator held.) With
    `include_origin`, the first generation includes `z = 0` itself.
    `options` go to pycma as well (e.g. `bounds`).
    """
    sampler = np.random.RandomState(sampling_seed.generate_state(1)[0])
    options = dict(
        _QUIET_FILE_FREE_OPTIONS, popsize=popsize, randn=sampler.randn, **options
    )
    strategy = cma.CMAEvolutionStrategy(np.zeros(size), sigma, options)
    if include_origin:
        strategy.inject([np.zeros(size)], force=True)
    return strategy


def ask_copy(strategy, random_state):
    """Returns `(strategy_after_ask, z [K, d], random_state_after)`.

    The ask runs on a deep copy, so `strategy` itself is left unchanged.
    """
    strategy = copy.deepcopy(strategy)
    z, random_state = _with_numpy_global_state(
        random_state, lambda: np.asarray(strategy.ask())
    )
    return strategy, z, random_state


def tell_in_place(strategy, z, losses, random_state):
    """`strategy.tell(z, losses)` (mutating it); returns the random state after."""
    _, random_state = _with_numpy_global_state(
        random_state, lambda: strategy.tell(list(z), losses.tolist())
    )
    return random_state


def strategy_to_array(strategy):
    """A pickle of `strategy` as a `uint8` array (pycma's documented way)."""
    return np.frombuffer(pickle.dumps(strategy, protocol=4), np.uint8)


def strategy_from_array(array):
    """Inverse of `strategy_to_array`. Load only arrays you trust."""
    return pickle.loads(array.tobytes())


def random_state_fields(random_state):
    """`np.random.get_state()` tuple -> `pack_state` fields."""
    name, key, position, has_gauss, cached_gaussian = random_state
    return {
        "random_generator": name,
        "random_key": np.asarray(key),
        "random_position": int(position),
        "random_has_gauss": int(has_gauss),
        "random_cached_gaussian": float(cached_gaussian),
    }


def random_state_from_fields(fields):
    """Inverse of `random_state_fields`."""
    return (
        fields["random_generator"],
        fields["random_key"],
        fields["random_position"],
        fields["random_has_gauss"],
        fields["random_cached_gaussian"],
    )


@register_optimizer("cma_es")
class CMAESOptimizer(PromptOptimizer):
    """Derivative-free prompt search by CMA-ES (Sun et al., 2022, "BBT").

    BBT searches a `d`-dimensional `z` instead of the prompt itself:
    `prompt = A z + p0` (their Eq. 3), with `p0` the initial prompt `[*S]` and
    `A` a fixed random matrix `[numel, d]`, `numel = prod(S)`. Its entries are
    drawn from `N(0, sigma_emb / (sqrt(d) * sigma))` so that the first
    population, `z ~ N(0, sigma^2 I)`, perturbs each prompt entry with
    standard deviation `sigma_emb`, the spread of the model's embeddings.
    `A` is regenerated from the seed, never stored. pycma's CMA-ES
    (`popsize` candidates per generation, initial step `sigma`) searches `z`
    from 0; its first generation includes `z = 0` (the initial prompt), so
    the best-so-far prompt never ends worse than where the search started.
    The first population perturbs each entry by about `embedding_std`
    whatever `sigma` is (BBT's scaling of `A`), so to refine a prompt from an
    earlier stage, pass a smaller `embedding_std`.

    Subspace size: `d = subspace_dim` always, even when the prompt has fewer
    entries than `d`. A Gaussian `A` is well conditioned only far from square
    (its singular values spread as `sqrt(d) +- sqrt(numel)`), so shrinking
    `d` to `numel` would make it square and ill conditioned: on a 32-entry
    quadratic, 150 generations with `d = 32` reached 1-11% of the starting
    loss, against below 1e-5 with `d = 500`. Prompts with `numel` close to
    `d` (e.g. one 576-wide token) have the same issue; BBT's regime is
    `numel >> d` (50 x 1024 entries against d = 500).

    Args:
        subspace_dim: int, `d`, the dimension searched. Defaults to 500.
        popsize: int, candidates per generation (`K`). Defaults to 20.
        sigma: float, CMA-ES's initial step size in `z`. Defaults to 1.0.
        embedding_std: float, `sigma_emb`, the standard deviation of the
            model's token embedding table (1.0 when unknown).

    Example:

    ```python
    optimizer = CMAESOptimizer(embedding_std=float(np.std(embeddings)))
    state = optimizer.init(initial_prompt, seed=42)  # [P, H]
    candidates = optimizer.ask(state)  # [20, P, H]
    state, metrics = optimizer.tell(state, candidates, losses)  # losses [20]
    print(metrics["sigma"], metrics["best_loss"])
    ```
    """

    needs_gradients = False

    def __init__(self, subspace_dim=500, popsize=20, sigma=1.0, embedding_std=1.0):
        check_positive_int("subspace_dim", subspace_dim, 500)
        check_popsize(popsize)
        check_positive_number("sigma", sigma, 1.0)
        check_positive_number("embedding_std", embedding_std, 1.0)
        self.subspace_dim = subspace_dim
        self.popsize = popsize
        self.sigma = float(sigma)
        self.embedding_std = float(embedding_std)
        self._projection_key = None
        self._projection = None
        self._sample_cache = None

    def _projection_matrix(self, seed, numel):
        """Returns `A` `[numel, d]`, cached for the last (seed, numel)."""
        key = (seed, numel)
        if self._projection_key != key:
            size = self.subspace_dim
            projection_seed = np.random.SeedSequence(seed).spawn(3)[0]
            std = self.embedding_std / (math.sqrt(size) * self.sigma)
            self._projection = gaussian_projection(projection_seed, numel, size, std)
            self._projection_key = key
        return self._projection

    def init(self, prompt, seed):
        prompt = self._check_prompt(prompt)
        seed = int(seed)
        size = self.subspace_dim
        _, sampling_seed, fallback_seed = np.random.SeedSequence(seed).spawn(3)
        # Any pycma draws other than its samples (see `new_strategy`) go to
        # numpy's global generator, which we swap for a state of our own
        # around every pycma call.
        random_state = random_state_for(fallback_seed)

        def make_strategy():
            # The first generation includes z = 0, i.e. `p0` itself, so that
            # `best()` is never worse than the prompt the search started
            # from (which matters when CMA-ES refines an earlier stage's).
            return new_strategy(
                size, self.sigma, self.popsize, sampling_seed, include_origin=True
            )

        strategy, random_state = _with_numpy_global_state(random_state, make_strategy)
        return CMAESState(
            strategy=strategy,
            numpy_random_state=random_state,
            init_prompt=prompt,
            seed=seed,
            best_prompt=prompt.copy(),
            best_loss=math.inf,
            step=0,
        )

    def _sample(self, state, consume=False):
        """Returns `(strategy_after_ask, z [K, d], random_state_after)`.

        pycma's `ask` updates the eigendecomposition of `C` (for d = 500, most
        of the time a generation takes), so the result is cached for the
        state last asked about: `tell(state)` after `ask(state)` reuses it.
        States are never mutated, so identity is a safe cache key. `tell`
        consumes the entry because it goes on to mutate the strategy.
        """
        cached = self._sample_cache
        if cached is not None and cached[0] is state:
            if consume:
                self._sample_cache = None
            return cached[1:]
        strategy, z, random_state = ask_copy(state.strategy, state.numpy_random_state)
        self._sample_cache = None if consume else (state, strategy, z, random_state)
        return strategy, z, random_state

    def _to_prompts(self, state, z):
        """Maps `z` `[K, d]` to prompts `[K, *S]`: BBT's Eq. 3, `A z + p0`."""
        projection = self._projection_matrix(state.seed, state.init_prompt.size)
        offsets = (z @ projection.T).reshape((len(z),) + state.init_prompt.shape)
        return (offsets + state.init_prompt).astype(PROMPT_DTYPE)

    def ask(self, state):
        _, z, _ = self._sample(state)
        return self._to_prompts(state, z)

    def tell(self, state, candidates, losses, grads=None):
        strategy, z, random_state = self._sample(state, consume=True)
        expected = self._to_prompts(state, z)
        _, losses, _ = self._check_told(
            state, candidates, losses, grads, expected=expected
        )
        check_finite_losses(self, losses)
        random_state = tell_in_place(strategy, z, losses, random_state)
        winner = int(np.argmin(losses))
        best_prompt, best_loss = state.best_prompt, state.best_loss
        if losses[winner] < best_loss:
            best_prompt, best_loss = expected[winner].copy(), float(losses[winner])
        new_state = CMAESState(
            strategy=strategy,
            numpy_random_state=random_state,
            init_prompt=state.init_prompt,
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
        }
        return new_state, metrics

    def best(self, state):
        return state.best_prompt.copy()

    def state_to_bytes(self, state):
        # pycma documents pickling as its way to save a strategy, so this one
        # field is a pickle: load checkpoints only from sources you trust.
        return pack_state(
            {
                "strategy_pickle": strategy_to_array(state.strategy),
                **random_state_fields(state.numpy_random_state),
                "init_prompt": state.init_prompt,
                "seed": state.seed,
                "best_prompt": state.best_prompt,
                "best_loss": state.best_loss,
                "step": state.step,
            }
        )

    def state_from_bytes(self, data):
        fields = unpack_state(data)
        return CMAESState(
            strategy=strategy_from_array(fields["strategy_pickle"]),
            numpy_random_state=random_state_from_fields(fields),
            init_prompt=fields["init_prompt"],
            seed=fields["seed"],
            best_prompt=fields["best_prompt"],
            best_loss=float(fields["best_loss"]),
            step=fields["step"],
        )

    def get_config(self):
        return {
            "subspace_dim": self.subspace_dim,
            "popsize": self.popsize,
            "sigma": self.sigma,
            "embedding_std": self.embedding_std,
        }
