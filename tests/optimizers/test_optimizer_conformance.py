"""Every registered optimizer obeys the protocol; no test branches on names."""

import numpy as np
import pytest

from promptopt.optimizers import available_optimizers
from promptopt.optimizers import deserialize_optimizer
from promptopt.optimizers import get_optimizer
from promptopt.optimizers import serialize_optimizer
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from tests.helpers.quadratic import PROMPT_SHAPE
from tests.helpers.quadratic import QuadraticEvaluator
from tests.helpers.quadratic import make_target
from tests.helpers.quadratic import quadratic_loss

OPTIMIZER_NAMES = available_optimizers()


def test_registry_holds_the_built_in_optimizers():
    assert {"backprop", "bbtv2", "cma_es"} <= set(OPTIMIZER_NAMES)


def _advance(optimizer, state, target, steps):
    """Runs `steps` ask/tell rounds on ||p - target||^2; returns the state."""
    for _ in range(steps):
        candidates = optimizer.ask(state)
        losses = quadratic_loss(candidates, target)
        grads = 2.0 * (candidates - target)
        state, _ = optimizer.tell(state, candidates, losses, grads)
    return state


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_default_optimizer_reduces_quadratic_to_a_tenth(name):
    target = make_target(seed=0)
    initial_prompt = np.zeros(PROMPT_SHAPE, "float32")
    runner = PromptTuningRunner(QuadraticEvaluator(target))
    result = runner.run(
        initial_prompt,
        stages=[Stage(get_optimizer(name), Budget(steps=100))],
        seed=0,
    )
    start = quadratic_loss(initial_prompt[None], target)[0]
    final = quadratic_loss(result.best_prompt[None], target)[0]
    assert result.best_prompt.shape == PROMPT_SHAPE
    assert final < 0.1 * start


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_ask_is_repeatable_and_does_not_change_the_state(name):
    optimizer = get_optimizer(name)
    state = optimizer.init(np.zeros(PROMPT_SHAPE), seed=3)
    state = _advance(optimizer, state, make_target(), steps=2)
    before = optimizer.state_to_bytes(state)
    first = optimizer.ask(state)
    second = optimizer.ask(state)
    assert first.ndim == 1 + len(PROMPT_SHAPE)
    assert first.shape[1:] == PROMPT_SHAPE
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert optimizer.state_to_bytes(state) == before


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_same_seed_gives_same_candidates_across_instances(name):
    target = make_target()
    runs = []
    for _ in range(2):
        optimizer = get_optimizer(name)
        state = optimizer.init(np.zeros(PROMPT_SHAPE), seed=7)
        state = _advance(optimizer, state, target, steps=3)
        runs.append(optimizer.ask(state))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_state_bytes_round_trip_gives_identical_next_ask(name):
    target = make_target()
    optimizer = get_optimizer(name)
    state = optimizer.init(np.zeros(PROMPT_SHAPE), seed=1)
    state = _advance(optimizer, state, target, steps=3)
    data = optimizer.state_to_bytes(state)

    # A fresh instance stands in for a fresh process reading a checkpoint.
    reloaded_optimizer = get_optimizer(name)
    reloaded = reloaded_optimizer.state_from_bytes(data)
    np.testing.assert_array_equal(reloaded_optimizer.ask(reloaded), optimizer.ask(state))
    np.testing.assert_array_equal(reloaded_optimizer.best(reloaded), optimizer.best(state))

    # And the runs continue identically.
    continued = _advance(optimizer, state, target, steps=2)
    continued_after_reload = _advance(reloaded_optimizer, reloaded, target, steps=2)
    np.testing.assert_array_equal(
        reloaded_optimizer.ask(continued_after_reload), optimizer.ask(continued)
    )


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_optimizer_leaves_numpy_global_random_state_alone(name):
    np.random.seed(1234)
    callers_state = np.random.get_state()
    optimizer = get_optimizer(name)
    state = optimizer.init(np.zeros(PROMPT_SHAPE), seed=0)
    _advance(optimizer, state, make_target(), steps=2)
    after = np.random.get_state()
    assert after[0] == callers_state[0]
    np.testing.assert_array_equal(after[1], callers_state[1])
    assert after[2:] == callers_state[2:]


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_candidates_do_not_depend_on_numpy_global_random_state(name):
    # Seeds are explicit: a fresh process (with its own global generator
    # state) must continue a run exactly like this one.
    optimizer = get_optimizer(name)
    runs = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        state = optimizer.init(np.zeros(PROMPT_SHAPE), seed=0)
        state = _advance(optimizer, state, make_target(), steps=2)
        runs.append(optimizer.ask(state))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_config_round_trips(name):
    optimizer = get_optimizer(name)
    rebuilt = type(optimizer).from_config(optimizer.get_config())
    assert rebuilt.get_config() == optimizer.get_config()
    by_name = deserialize_optimizer(serialize_optimizer(optimizer))
    assert type(by_name) is type(optimizer)
    assert by_name.get_config() == optimizer.get_config()
    state = optimizer.init(np.ones(PROMPT_SHAPE), seed=5)
    np.testing.assert_array_equal(
        rebuilt.ask(rebuilt.init(np.ones(PROMPT_SHAPE), seed=5)), optimizer.ask(state)
    )


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_tell_rejects_candidates_that_ask_did_not_give(name):
    optimizer = get_optimizer(name)
    state = optimizer.init(np.zeros(PROMPT_SHAPE), seed=0)
    candidates = optimizer.ask(state) + 1.0
    losses = np.zeros(len(candidates))
    with pytest.raises(
        ValueError,
        match=r"tell\(\) got candidates of shape .* that are not the ones "
        r"ask\(state\) returns .* Pass tell\(\) the same state and the "
        r"unmodified candidates from ask\(state\)\.",
    ):
        optimizer.tell(state, candidates, losses, np.zeros_like(candidates))


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_tell_rejects_one_loss_too_few(name):
    optimizer = get_optimizer(name)
    state = optimizer.init(np.zeros(PROMPT_SHAPE), seed=0)
    candidates = optimizer.ask(state)
    with pytest.raises(
        ValueError,
        match=rf"needs one loss per candidate: expected losses of shape "
        rf"\({len(candidates)},\), got \({len(candidates) - 1},\)\. "
        r"Return a \[K\] array of losses\.",
    ):
        optimizer.tell(
            state, candidates, np.zeros(len(candidates) - 1), np.zeros_like(candidates)
        )


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_init_rejects_empty_prompt(name):
    with pytest.raises(
        ValueError,
        match=r"init\(\) needs a non-empty numeric prompt array, got shape "
        r"\(0, 8\) and dtype float64\. Pass the initial prompt",
    ):
        get_optimizer(name).init(np.zeros((0, 8)), seed=0)


def test_get_optimizer_names_the_available_ones():
    with pytest.raises(
        ValueError,
        match=r"Unknown optimizer 'adam_es'\. Available optimizers: "
        r".*backprop.*cma_es.*\. Pass one of these names, or register yours "
        r"with @register_optimizer\.",
    ):
        get_optimizer("adam_es")
