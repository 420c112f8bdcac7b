"""Derivative-free search over discrete prompts (BDPL-style policy gradient)."""

import dataclasses
import json
import math

import numpy as np

from promptopt.optimizers.base import PROMPT_DTYPE
from promptopt.optimizers.base import PromptOptimizer
from promptopt.optimizers.discrete_registry import register_discrete_optimizer
from promptopt.optimizers.serialization import pack_state
from promptopt.optimizers.serialization import unpack_state


@dataclasses.dataclass(frozen=True)
class DiscreteSearchState:
    """State of `DiscretePromptSearch`. Its fields are never mutated.

    Args:
        logits: float64 `[P, N]`, `alpha`, one categorical per position.
        rng_state: str, JSON of the PCG64 generator's state (the next
            samples are a function of the state alone).
        best_prompt: float32 `[P]`, the lowest-loss candidate so far.
        best_loss: float, its loss (inf before any `tell`).
        step: int, generations so far.
    """

    logits: np.ndarray
    rng_state: str
    best_prompt: np.ndarray
    best_loss: float
    step: int


@register_discrete_optimizer("discrete_search")
class DiscretePromptSearch(PromptOptimizer):
    """Searches prompts made of P choices among N tokens or phrases.

    Black-box discrete prompt learning (Diao et al., 2023, "BDPL"): each
    prompt position i draws its choice from a categorical distribution
    `p_i = softmax(alpha_i)`, and `alpha` `[P, N]` follows the variance-
    reduced policy gradient of the expected loss, which needs only the
    losses of sampled prompts (their Eq. 7):

        grad_i = 1/(K-1) sum_k (L_k - mean L) (onehot(s_k,i) - p_i)

    Losses are standardized within a generation before this (fitness
    shaping, as in NES/evosax), so the step size does not depend on the
    loss's scale. Each generation also re-evaluates the distribution's
    mode (candidate 0; the initial prompt at the start), as GrIPS keeps its
    current best edit; the mode is not part of the gradient estimate, so
    the estimate stays unbiased. `best()` is the lowest-loss candidate seen.

    A candidate is a float32 vector `[P]` of integer indices (exact below
    2**24), so the runner, checkpoints and `HTTPEvaluator(prompt="text")`
    / `OpenAICompletionsEvaluator` (which join `phrases[i]`) handle it like
    any prompt. Registered with `register_discrete_optimizer`, not the
    continuous registry (see `discrete_registry`).

    Args:
        num_choices: int, N, the size of the token/phrase list.
        popsize: int, K, candidates per generation (1 mode + K-1 samples).
        learning_rate: float, step on `alpha`.
        init_logit: float, extra logit of the initial prompt's choices, so
            the search starts around it (0: uniform).

    Example:

    ```python
    phrases = [" Review:", " Sentiment", " movie", " It", " was", ...]
    optimizer = DiscretePromptSearch(num_choices=len(phrases), popsize=10)
    state = optimizer.init(np.array([0, 1, 2], "float32"), seed=42)
    candidates = optimizer.ask(state)  # [10, 3] phrase indices
    state, metrics = optimizer.tell(state, candidates, losses)
    ```
    """

    needs_gradients = False

    def __init__(self, num_choices, popsize=10, learning_rate=1.0, init_logit=1.0):
        for name, value, low in (("num_choices", num_choices, 2), ("popsize", popsize, 3)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"{name} must be an int of at least {low}, got {value!r}."
                )
        for name, value in (("learning_rate", learning_rate), ("init_logit", init_logit)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0
            ):
                raise ValueError(
                    f"{name} must be a non-negative finite number, got {value!r}."
                )
        self.num_choices = num_choices
        self.popsize = popsize
        self.learning_rate = float(learning_rate)
        self.init_logit = float(init_logit)

    def init(self, prompt, seed):
        prompt = self._check_prompt(prompt)
        indices = np.rint(prompt).astype("int64")
        if prompt.ndim != 1 or not np.array_equal(indices, prompt):
            raise ValueError(
                f"DiscretePromptSearch.init() needs a [P] vector of integer "
                f"choice indices, got shape {prompt.shape}. Pass e.g. "
                "np.array([3, 0, 7], 'float32')."
            )
        if indices.min() < 0 or indices.max() >= self.num_choices:
            raise ValueError(
                f"Initial prompt has indices outside [0, {self.num_choices - 1}]: "
                f"{indices.tolist()}. Pass indices into the phrase list."
            )
        logits = np.zeros((len(indices), self.num_choices))
        logits[np.arange(len(indices)), indices] = self.init_logit
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
        return DiscreteSearchState(
            logits=logits,
            rng_state=json.dumps(rng.bit_generator.state),
            best_prompt=prompt.copy(),
            best_loss=math.inf,
            step=0,
        )

    @staticmethod
    def _probabilities(logits):
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)  # [P, N]

    def _sample(self, state):
        """Returns `(candidates [K, P], rng_state_after)`."""
        bit_generator = np.random.PCG64()
        bit_generator.state = json.loads(state.rng_state)
        rng = np.random.Generator(bit_generator)
        probabilities = self._probabilities(state.logits)
        cumulative = np.cumsum(probabilities, axis=1)  # [P, N]
        uniforms = rng.random((self.popsize - 1, len(cumulative)))  # [K-1, P]
        samples = np.stack(
            [
                np.minimum(np.searchsorted(cumulative[i], uniforms[:, i], side="right"),
                           self.num_choices - 1)
                for i in range(len(cumulative))
            ],
            axis=1,
        )  # [K-1, P]
        mode = np.argmax(state.logits, axis=1)[None]  # [1, P]
        candidates = np.concatenate([mode, samples]).astype(PROMPT_DTYPE)
        return candidates, json.dumps(rng.bit_generator.state)

    def ask(self, state):
        return self._sample(state)[0]

    def tell(self, state, candidates, losses, grads=None):
        expected, rng_state = self._sample(state)
        _, losses, _ = self._check_told(state, candidates, losses, grads, expected=expected)
        if not np.all(np.isfinite(losses)):
            raise ValueError(
                "DiscretePromptSearch.tell() got NaN or inf losses; return "
                "finite losses (e.g. clip log-probabilities)."
            )
        sampled = expected[1:].astype("int64")  # [K-1, P]
        sampled_losses = losses[1:]
        spread = sampled_losses.std()
        advantages = (sampled_losses - sampled_losses.mean()) / (spread if spread > 0 else 1.0)
        probabilities = self._probabilities(state.logits)
        # BDPL Eq. 7: sum_k A_k (onehot(s_k) - p) / (K - 1), per position.
        onehots = np.zeros((len(sampled),) + state.logits.shape)  # [K-1, P, N]
        positions = np.arange(state.logits.shape[0])
        for k, sample in enumerate(sampled):
            onehots[k, positions, sample] = 1.0
        gradient = np.einsum("k,kpn->pn", advantages, onehots - probabilities[None])
        gradient /= len(sampled) - 1
        logits = state.logits - self.learning_rate * gradient
        winner = int(np.argmin(losses))
        best_prompt, best_loss = state.best_prompt, state.best_loss
        if losses[winner] < best_loss:
            best_prompt, best_loss = expected[winner].copy(), float(losses[winner])
        probabilities = self._probabilities(logits)
        entropy = -np.sum(probabilities * np.log(probabilities + 1e-12), axis=1).mean()
        new_state = DiscreteSearchState(
            logits=logits,
            rng_state=rng_state,
            best_prompt=best_prompt,
            best_loss=best_loss,
            step=state.step + 1,
        )
        metrics = {
            "loss": float(losses[winner]),
            "mean_loss": float(np.mean(losses)),
            "best_loss": best_loss,
            "entropy": float(entropy),
        }
        return new_state, metrics

    def best(self, state):
        return state.best_prompt.copy()

    def state_to_bytes(self, state):
        return pack_state(
            {
                "logits": state.logits,
                "rng_state": state.rng_state,
                "best_prompt": state.best_prompt,
                "best_loss": state.best_loss,
                "step": state.step,
            }
        )

    def state_from_bytes(self, data):
        fields = unpack_state(data)
        return DiscreteSearchState(
            logits=fields["logits"],
            rng_state=fields["rng_state"],
            best_prompt=fields["best_prompt"],
            best_loss=float(fields["best_loss"]),
            step=fields["step"],
        )

    def get_config(self):
        return {
            "num_choices": self.num_choices,
            "popsize": self.popsize,
            "learning_rate": self.learning_rate,
            "init_logit": self.init_logit,
        }
