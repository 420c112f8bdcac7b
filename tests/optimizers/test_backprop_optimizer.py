import keras
import numpy as np
import pytest

from promptopt.optimizers import BackpropOptimizer
from promptopt.optimizers import ConstantStepAdafactor


def _reference_adafactor(params, grads, learning_rate, factored):
    """Shazeer & Stern (2018) Alg. 4 / 5 in numpy, constant alpha_t."""
    params = params.astype(np.float64)
    rows = np.zeros(params.shape[:-1])
    columns = np.zeros(params.shape[-1:])
    full = np.zeros(params.shape)
    for t, grad in enumerate(grads, start=1):
        beta2 = 1.0 - t**-0.8
        squared = grad.astype(np.float64) ** 2 + 1e-30
        if factored:
            rows = beta2 * rows + (1 - beta2) * squared.sum(-1)
            columns = beta2 * columns + (1 - beta2) * squared.sum(-2)
            second_moment = np.outer(rows, columns) / rows.sum()
        else:
            full = beta2 * full + (1 - beta2) * squared
            second_moment = full
        update = grad / np.sqrt(second_moment)
        update /= max(1.0, np.sqrt(np.mean(update**2)) / 1.0)
        params = params - learning_rate * update
    return params


@pytest.mark.parametrize("factored", [False, True])
def test_constant_step_adafactor_matches_the_paper(factored):
    rng = np.random.default_rng(0)
    params = rng.normal(size=(3, 5)).astype("float32")
    grads = [rng.normal(size=(3, 5)).astype("float32") for _ in range(4)]
    variable = keras.Variable(params)
    optimizer = ConstantStepAdafactor(
        learning_rate=0.3, min_dim_size_to_factor=3 if factored else 128
    )
    for grad in grads:
        optimizer.apply_gradients([(grad, variable)])
    np.testing.assert_allclose(
        variable.numpy(),
        _reference_adafactor(params, grads, 0.3, factored),
        rtol=1e-5,
        atol=1e-6,
    )


def test_constant_step_adafactor_step_does_not_shrink_with_time_or_small_params():
    # keras.optimizers.Adafactor scales the step by max(1e-3, RMS(x)) and caps
    # it at 1/sqrt(t); prompt tuning's Adafactor (Lester et al.) does neither.
    # With a constant gradient, every update is exactly -learning_rate.
    variable = keras.Variable(np.zeros((2, 4), "float32"))
    optimizer = ConstantStepAdafactor(learning_rate=0.3)
    for step in range(1, 31):
        optimizer.apply_gradients([(np.ones((2, 4), "float32"), variable)])
    np.testing.assert_allclose(variable.numpy(), np.full((2, 4), -0.3 * 30), rtol=1e-5)


def test_constant_step_adafactor_config_round_trips():
    optimizer = ConstantStepAdafactor(learning_rate=0.1, decay_rate=0.7)
    rebuilt = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(rebuilt, ConstantStepAdafactor)
    assert rebuilt.get_config() == optimizer.get_config()


def _one_step(optimizer, params, grad):
    state = optimizer.init(params, seed=0)
    candidates = optimizer.ask(state)
    state, metrics = optimizer.tell(state, candidates, np.array([1.0]), grad[None])
    return optimizer.best(state), metrics


def test_sgd_step_is_params_minus_learning_rate_times_gradient():
    params = np.arange(6.0).reshape(2, 3)
    grad = np.full((2, 3), 2.0)
    prompt, metrics = _one_step(BackpropOptimizer("sgd", learning_rate=0.25), params, grad)
    np.testing.assert_allclose(prompt, params - 0.5)
    assert metrics["learning_rate"] == 0.25
    assert metrics["gradient_norm"] == pytest.approx(np.sqrt(24.0))
    assert metrics["loss"] == 1.0


def test_keras_optimizer_config_dict_is_accepted_and_learning_rate_overrides_it():
    spec = keras.optimizers.serialize(keras.optimizers.SGD(learning_rate=0.5))
    params, grad = np.zeros((2, 2)), np.ones((2, 2))
    prompt, _ = _one_step(BackpropOptimizer(spec), params, grad)
    np.testing.assert_allclose(prompt, -0.5 * np.ones((2, 2)))
    prompt, _ = _one_step(BackpropOptimizer(spec, learning_rate=0.1), params, grad)
    np.testing.assert_allclose(prompt, -0.1 * np.ones((2, 2)))


def test_defaults_follow_lester_et_al():
    optimizer = BackpropOptimizer()
    assert optimizer.get_config() == {"optimizer": "adafactor", "learning_rate": None}
    _, metrics = _one_step(optimizer, np.zeros((2, 2)), np.ones((2, 2)))
    assert metrics["learning_rate"] == pytest.approx(0.3)
    _, metrics = _one_step(BackpropOptimizer("adamw"), np.zeros((2, 2)), np.ones((2, 2)))
    assert metrics["learning_rate"] == pytest.approx(0.03)


def test_states_are_independent_when_one_instance_serves_two_runs():
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=(3, 4)) for _ in range(3)]

    def advance(optimizer, state, grad):
        candidates = optimizer.ask(state)
        return optimizer.tell(state, candidates, np.zeros(1), grad[None])[0]

    shared = BackpropOptimizer("adamw")
    first = shared.init(np.zeros((3, 4)), seed=0)
    second = shared.init(np.ones((3, 4)), seed=0)
    for grad in grads:  # interleaved
        first = advance(shared, first, grad)
        second = advance(shared, second, -grad)
    alone = BackpropOptimizer("adamw")
    reference = alone.init(np.ones((3, 4)), seed=0)
    for grad in grads:
        reference = advance(alone, reference, -grad)
    np.testing.assert_array_equal(shared.best(second), alone.best(reference))


def test_prompt_shape_can_change_between_runs():
    optimizer = BackpropOptimizer("adam")
    small, _ = _one_step(optimizer, np.zeros((2, 3)), np.ones((2, 3)))
    large, _ = _one_step(optimizer, np.zeros((4, 5, 6)), np.ones((4, 5, 6)))
    assert small.shape == (2, 3) and large.shape == (4, 5, 6)
    np.testing.assert_allclose(large, np.full((4, 5, 6), -0.03), rtol=1e-4)


def test_tell_without_gradients_is_refused():
    optimizer = BackpropOptimizer()
    state = optimizer.init(np.zeros((2, 2)), seed=0)
    with pytest.raises(
        ValueError,
        match=r"BackpropOptimizer needs gradients, but tell\(\) got "
        r"grads=None\. Use an evaluator that provides gradients\.",
    ):
        optimizer.tell(state, optimizer.ask(state), np.zeros(1))


@pytest.mark.parametrize(
    "args, message",
    [
        (("rmsprop",), r"Unknown optimizer 'rmsprop'\. Pass one of 'adafactor', 'adamw', 'adam', 'sgd', or a Keras optimizer config dict from keras\.optimizers\.serialize\(\)\."),
        (("sgd",), r"optimizer='sgd' has no default learning rate: its step scales with the gradient\. Pass learning_rate=\.\.\."),
        (("adamw", -0.1), r"learning_rate must be a positive number or None, got -0\.1\. Pass e\.g\. learning_rate=0\.3\."),
        (({"class_name": "NoSuchOptimizer", "config": {}},), r"Could not build a Keras optimizer from the config dict .*Pass the output of keras\.optimizers\.serialize\(keras_optimizer\)\."),
    ],
)
def test_constructor_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        BackpropOptimizer(*args)


def test_a_second_group_steps_like_its_own_optimizer_on_its_entries():
    # Entries 4.. (the residual MLP's, in a flat candidate) get their own
    # learning rate and weight decay: the same as two separate AdamWs.
    rng = np.random.default_rng(0)
    start, grads = rng.normal(size=10).astype("float32"), rng.normal(size=(3, 10)).astype("float32")
    both = BackpropOptimizer("adamw", 0.1, weight_decay=0.01, second_group=(4, 0.003, 1e-3))
    first = BackpropOptimizer("adamw", 0.1, weight_decay=0.01)
    second = BackpropOptimizer("adamw", 0.003, weight_decay=1e-3)
    states = [both.init(start, 0), first.init(start[:4], 0), second.init(start[4:], 0)]
    for grad in grads:
        for i, (optimizer, part) in enumerate(
                ((both, grad), (first, grad[:4]), (second, grad[4:]))):
            states[i], _ = optimizer.tell(states[i], states[i].params[None], np.array([1.0]),
                                          part[None])
    np.testing.assert_array_equal(states[0].params,
                                  np.concatenate([states[1].params, states[2].params]))
    restored = both.state_from_bytes(both.state_to_bytes(states[0]))
    assert [np.array_equal(a, b) for a, b in
            zip(restored.optimizer_variables, states[0].optimizer_variables)] == [True] * 8
    assert both.get_config()["second_group"] == [4, 0.003, 1e-3]
    with pytest.raises(ValueError, match=r"second_group starts at entry 4, which needs a flat "
                                         r"candidate of more than 4 entries; got shape \(2, 2\)"):
        both.init(np.zeros((2, 2), "float32"), 0)
