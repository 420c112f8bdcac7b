"""The discrete-prompt optimizers obey the protocol and find a hidden prompt."""

import numpy as np
import pytest

from promptopt.optimizers import DiscretePromptSearch
from promptopt.optimizers import available_discrete_optimizers
from promptopt.optimizers import available_optimizers
from promptopt.optimizers import get_discrete_optimizer
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from promptopt.evaluators import Evaluation
from promptopt.evaluators import Evaluator

NUM_CHOICES = 12
TARGET = np.array([3, 7, 0, 11, 5, 9], "float32")
NAMES = available_discrete_optimizers()


class MismatchEvaluator(Evaluator):
    """Loss = number of positions that differ from a hidden prompt."""

    def evaluate(self, candidates, step, compute_gradients=False):
        losses = np.sum(np.asarray(candidates) != TARGET, axis=1).astype(float)
        return Evaluation(losses, forward_calls=len(candidates))


def make(name, **kwargs):
    return get_discrete_optimizer(name, num_choices=NUM_CHOICES, **kwargs)


def test_discrete_optimizers_live_in_their_own_registry():
    assert "discrete_search" in NAMES
    assert not set(NAMES) & set(available_optimizers())


@pytest.mark.parametrize("name", NAMES)
def test_finds_the_hidden_prompt(name):
    start = np.zeros(len(TARGET), "float32")
    result = PromptTuningRunner(MismatchEvaluator()).run(
        start, [Stage(make(name, popsize=16), Budget(steps=60))], seed=0
    )
    assert MismatchEvaluator().evaluate(result.best_prompt[None], 0).losses[0] == 0
    assert np.array_equal(result.best_prompt, TARGET)


@pytest.mark.parametrize("name", NAMES)
def test_first_candidate_is_the_initial_prompt_and_all_are_valid_indices(name):
    optimizer = make(name)
    start = np.array([1, 2, 3], "float32")
    candidates = optimizer.ask(optimizer.init(start, seed=0))
    np.testing.assert_array_equal(candidates[0], start)
    assert candidates.dtype == np.float32
    assert np.array_equal(candidates, np.rint(candidates))
    assert candidates.min() >= 0 and candidates.max() < NUM_CHOICES


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_and_resumed_run_match(name, tmp_path):
    optimizer = make(name)
    state = optimizer.init(np.zeros(4, "float32"), seed=1)
    for _ in range(3):
        candidates = optimizer.ask(state)
        state, _ = optimizer.tell(state, candidates, np.arange(len(candidates), dtype=float))
    reloaded = make(name).state_from_bytes(optimizer.state_to_bytes(state))
    np.testing.assert_array_equal(optimizer.ask(reloaded), optimizer.ask(state))
    np.testing.assert_array_equal(optimizer.ask(state), optimizer.ask(state))
    assert make(name).state_to_bytes(reloaded) == optimizer.state_to_bytes(state)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips(name):
    optimizer = make(name, popsize=5)
    rebuilt = type(optimizer).from_config(optimizer.get_config())
    assert rebuilt.get_config() == optimizer.get_config()


def test_rejects_a_prompt_that_is_not_integer_indices():
    with pytest.raises(ValueError, match=r"needs a \[P\] vector of integer choice indices, got shape \(2, 2\)"):
        DiscretePromptSearch(num_choices=4).init(np.zeros((2, 2)), seed=0)
    with pytest.raises(ValueError, match=r"Initial prompt has indices outside \[0, 3\]: \[0, 9\]"):
        DiscretePromptSearch(num_choices=4).init(np.array([0.0, 9.0]), seed=0)
    with pytest.raises(ValueError, match="popsize must be an int of at least 3, got 2"):
        DiscretePromptSearch(num_choices=4, popsize=2)
