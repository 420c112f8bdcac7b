"""BBTv2Optimizer: per-layer subspaces, the layer cycle, resume, and a prefix."""

import math
import re

import numpy as np
import pytest
from keras import ops

from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.optimizers import BBTv2Optimizer
from promptopt.optimizers import get_optimizer
from promptopt.optimizers.serialization import unpack_state
from promptopt.prefixes import PrefixedDecoderOnlyAdapter
from promptopt.prefixes import prefix_shape
from promptopt.prefixes.prefix_statistics import layer_kv_stds
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from tests.helpers.quadratic import quadratic_loss
from tests.model_factories import toy_batch
from tests.prefixes.helpers import prefix_classifier


def _step(optimizer, state, target):
    candidates = optimizer.ask(state)
    return optimizer.tell(state, candidates, quadratic_loss(candidates, target))


def test_registered_as_bbtv2():
    assert type(get_optimizer("bbtv2")) is BBTv2Optimizer


def test_lowers_a_quadratic_in_every_layer_of_a_layered_target():
    # Three layers on different scales, as keys/values of different layers.
    scales = np.array([0.5, 1.0, 2.0])
    rng = np.random.default_rng(0)
    target = (rng.normal(size=(3, 2, 4)) * scales[:, None, None]).astype("float32")
    optimizer = BBTv2Optimizer(subspace_dim=50, popsize=10, layer_stds=list(scales))
    start = np.zeros(target.shape, "float32")
    state = optimizer.init(start, seed=0)
    for _ in range(60):  # 20 generations a layer
        state, metrics = _step(optimizer, state, target)
    best = optimizer.best(state)
    per_layer_before = np.sum(target.reshape(3, -1) ** 2, axis=1)
    per_layer_after = np.sum((best - target).reshape(3, -1) ** 2, axis=1)
    assert np.all(per_layer_after < 0.1 * per_layer_before), per_layer_after / per_layer_before
    assert metrics["best_loss"] == pytest.approx(quadratic_loss(best[None], target)[0])


def test_each_layers_projection_has_the_papers_standard_deviation():
    # BBTv2: A_l ~ N(0, alpha * sigma_l / (sqrt(d) * sigma)).
    layer_stds = [0.1, 1.0, 4.0]
    d, sigma, alpha = 300, 0.5, 0.3
    optimizer = BBTv2Optimizer(subspace_dim=d, sigma=sigma, alpha=alpha, layer_stds=layer_stds)
    state = optimizer.init(np.zeros((3, 8, 8)), seed=0)
    for layer, layer_std in enumerate(layer_stds):
        matrix = optimizer.projection(state, layer)
        assert matrix.shape == (64, d)
        expected = alpha * layer_std / (math.sqrt(d) * sigma)
        # 19,200 entries: the sample std is within 0.5% (one standard error)
        # of the true one, so 3% is six standard errors.
        assert np.std(matrix) == pytest.approx(expected, rel=0.03)
        assert abs(np.mean(matrix)) < 4 * expected / math.sqrt(matrix.size)
    # One stream per layer: the layers' matrices are not scaled copies.
    first, second = (optimizer.projection(state, layer) for layer in (0, 1))
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.05


def test_first_population_perturbs_the_active_layer_by_alpha_sigma_l():
    # z ~ N(0, sigma^2 I) through A_l: each entry moves by alpha * sigma_l.
    optimizer = BBTv2Optimizer(subspace_dim=200, popsize=40, layer_stds=[0.5, 3.0])
    prompt = np.full((2, 6, 40), 2.0, "float32")
    candidates = optimizer.ask(optimizer.init(prompt, seed=1))
    offsets = candidates[1:, 0] - prompt[0]  # candidate 0 is p0 itself
    assert np.std(offsets) == pytest.approx(0.2 * 0.5, rel=0.05)


def test_projections_are_regenerated_from_the_seed_not_stored():
    optimizer = BBTv2Optimizer(subspace_dim=10, popsize=4)
    state = optimizer.init(np.zeros((2, 20000)), seed=3)
    data = optimizer.state_to_bytes(state)
    one_projection = optimizer.projection(state, 0).nbytes  # 1.6 MB
    assert len(data) < one_projection
    assert max(np.size(value) for value in unpack_state(data).values()) < 20000 * 10
    fresh = BBTv2Optimizer(subspace_dim=10, popsize=4)
    np.testing.assert_array_equal(
        fresh.projection(fresh.state_from_bytes(data), 1), optimizer.projection(state, 1)
    )


def test_layer_stds_default_to_the_spread_of_each_initial_block_or_one():
    prompt = np.zeros((3, 5), "float32")
    prompt[0] = [0.0, 1.0, 2.0, 3.0, 4.0]
    prompt[2] = [1.0, -1.0, 1.0, -1.0, 1.0]
    state = BBTv2Optimizer(popsize=4).init(prompt, seed=0)
    np.testing.assert_allclose(state.layer_stds, [np.std(prompt[0]), 1.0, np.std(prompt[2])])
    state = BBTv2Optimizer(popsize=4, layer_stds=0.25).init(prompt, seed=0)
    np.testing.assert_array_equal(state.layer_stds, [0.25, 0.25, 0.25])


def test_ask_varies_only_the_active_layer_and_the_cycle_visits_every_layer():
    target = np.random.default_rng(1).normal(size=(3, 4, 2)).astype("float32")
    optimizer = BBTv2Optimizer(subspace_dim=30, popsize=5, generations_per_layer=2)
    state = optimizer.init(np.zeros(target.shape), seed=0)
    active_layers, told_layers = [], []
    for step in range(9):
        layer = optimizer.active_layer(state)
        active_layers.append(layer)
        candidates = optimizer.ask(state)
        best = optimizer.best(state)
        for other in set(range(3)) - {layer}:
            np.testing.assert_array_equal(candidates[:, other], np.stack([best[other]] * 5))
        # Every candidate moves the active block (but for p0 at step 0).
        moved = np.any(candidates[:, layer] != best[layer], axis=(1, 2))
        assert moved.tolist() == ([False] + [True] * 4 if step == 0 else [True] * 5)
        state, metrics = optimizer.tell(state, candidates, quadratic_loss(candidates, target))
        told_layers.append(metrics["layer"])
        assert metrics["sigma"] == float(state.strategies[layer].sigma)
    assert active_layers == [0, 0, 1, 1, 2, 2, 0, 0, 1]
    assert told_layers == [float(layer) for layer in active_layers]


def test_best_is_the_lowest_loss_candidate_over_all_layers():
    optimizer = BBTv2Optimizer(subspace_dim=20, popsize=4)
    prompt = np.random.default_rng(2).normal(size=(2, 3)).astype("float32")
    state = optimizer.init(prompt, seed=0)
    candidates = optimizer.ask(state)
    np.testing.assert_array_equal(candidates[0], prompt)
    state, metrics = optimizer.tell(state, candidates, np.array([3.0, 1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(optimizer.best(state), candidates[1])
    # Layer 1's candidates build on that best; a worse generation keeps it.
    candidates = optimizer.ask(state)
    np.testing.assert_array_equal(candidates[:, 0], np.stack([optimizer.best(state)[0]] * 4))
    first_best = optimizer.best(state)
    state, metrics = optimizer.tell(state, candidates, np.array([4.0, 6.0, 2.0, 5.0]))
    np.testing.assert_array_equal(optimizer.best(state), first_best)
    assert not any(np.array_equal(optimizer.best(state), c) for c in candidates)
    assert metrics["best_loss"] == 1.0
    assert metrics["loss"] == 2.0
    assert metrics["mean_loss"] == 4.25
    candidates = optimizer.ask(state)  # layer 0 again
    state, metrics = optimizer.tell(state, candidates, np.array([4.0, 0.5, 2.0, 5.0]))
    np.testing.assert_array_equal(optimizer.best(state), candidates[1])
    assert metrics["best_loss"] == 0.5


@pytest.mark.parametrize("save_at", range(8))
def test_restored_state_gives_the_identical_next_ask_across_layer_switches(save_at):
    # Three layers, two generations each: steps 2, 4 and 6 switch layers.
    target = np.random.default_rng(3).normal(size=(3, 2, 5)).astype("float32")
    make = lambda: BBTv2Optimizer(subspace_dim=40, popsize=6, generations_per_layer=2)
    optimizer = make()
    state = optimizer.init(np.zeros(target.shape), seed=4)
    for _ in range(save_at):
        state, _ = _step(optimizer, state, target)
    data = optimizer.state_to_bytes(state)
    restored_optimizer = make()  # a fresh process reading a checkpoint
    restored = restored_optimizer.state_from_bytes(data)
    assert restored_optimizer.active_layer(restored) == optimizer.active_layer(state)
    layers = []
    for _ in range(3):  # on through the next layer switch
        first, second = optimizer.ask(state), restored_optimizer.ask(restored)
        assert first.shape == second.shape and first.tobytes() == second.tobytes()
        layers.append(optimizer.active_layer(state))
        state, _ = _step(optimizer, state, target)
        restored, _ = _step(restored_optimizer, restored, target)
    assert len(set(layers)) == 2  # the three steps crossed a layer switch
    np.testing.assert_array_equal(restored_optimizer.best(restored), optimizer.best(state))


def test_bound_keeps_every_z_entry_inside_it():
    optimizer = BBTv2Optimizer(subspace_dim=50, popsize=8, sigma=1.0, bound=0.01)
    state = optimizer.init(np.zeros((2, 30)), seed=0)
    target = np.full((2, 30), 5.0, "float32")
    for _ in range(4):
        layer = optimizer.active_layer(state)
        candidates = optimizer.ask(state)
        # |A_l z| <= bound * sum_j |A_l[i, j]| entry by entry.
        limit = 0.01 * np.abs(optimizer.projection(state, layer)).sum(axis=1)
        assert np.all(np.abs(candidates[:, layer]) <= limit * (1 + 1e-5) + 1e-7)
        state, _ = optimizer.tell(state, candidates, quadratic_loss(candidates, target))
    # Without the bound, the same search leaves that box at once.
    unbounded = BBTv2Optimizer(subspace_dim=50, popsize=8, sigma=1.0)
    state = unbounded.init(np.zeros((2, 30)), seed=0)
    limit = 0.01 * np.abs(unbounded.projection(state, 0)).sum(axis=1)
    assert np.any(np.abs(unbounded.ask(state)[:, 0]) > limit)


def _message(text):
    return "^" + re.escape(text) + "$"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"popsize": 1}, "popsize must be at least 2 for CMA-ES to rank candidates, got 1. Pass e.g. popsize=20."),
        ({"subspace_dim": 0}, "subspace_dim must be a positive int, got 0. Pass e.g. subspace_dim=500."),
        ({"sigma": 0.0}, "sigma must be a positive finite number, got 0.0. Pass e.g. sigma=0.2."),
        ({"alpha": -1.0}, "alpha must be a positive finite number, got -1.0. Pass e.g. alpha=0.2."),
        (
            {"generations_per_layer": 0},
            "generations_per_layer must be a positive int, got 0. Pass e.g. generations_per_layer=1.",
        ),
        (
            {"bound": -1.0},
            "bound must be None (no bound) or a positive finite number, got -1.0. Pass e.g. bound=5.0, or leave it None.",
        ),
        (
            {"layer_stds": 0.0},
            "layer_stds must be positive and finite, got 0.0. Pass the spread of what each layer's prompt "
            "replaces, e.g. layer_stds=1.0 or layer_stds=layer_kv_stds(model, x).",
        ),
        (
            {"layer_stds": [1.0, float("nan")]},
            "layer_stds[1] must be a positive finite number, got nan. Pass the spread of what layer 1's "
            "prompt replaces (e.g. from layer_kv_stds(model, x)).",
        ),
        (
            {"layer_stds": []},
            "layer_stds is empty; it needs one positive float per layer. Pass e.g. "
            "layer_stds=layer_kv_stds(model, x), or None.",
        ),
        (
            {"layer_stds": "1.0"},
            "layer_stds must be None, one positive float, or a sequence of one positive float per layer, "
            "got '1.0'. Pass e.g. layer_stds=layer_kv_stds(model, x).",
        ),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=_message(message)):
        BBTv2Optimizer(**kwargs)


def test_init_rejects_layer_stds_of_another_length_and_a_scalar_prompt():
    with pytest.raises(
        ValueError,
        match=_message(
            "layer_stds has 2 entries, but the prompt of shape (3, 4) has L = 3 layers (its leading "
            "axis). Pass one std per layer (e.g. layer_kv_stds(model, x) for the same model), or one "
            "float for all."
        ),
    ):
        BBTv2Optimizer(layer_stds=[1.0, 2.0]).init(np.zeros((3, 4)), seed=0)
    with pytest.raises(
        ValueError,
        match=_message(
            "BBTv2Optimizer.init() needs a prompt whose leading axis is the layer axis, [L, ...]; got "
            "a scalar. Pass e.g. a prefix [L, 2, P, N, D] or a prompt [P, H]."
        ),
    ):
        BBTv2Optimizer().init(np.float32(1.0), seed=0)


def test_tell_rejects_non_finite_losses():
    optimizer = BBTv2Optimizer(subspace_dim=10, popsize=3)
    state = optimizer.init(np.zeros((2, 2)), seed=0)
    with pytest.raises(
        ValueError,
        match=_message(
            "BBTv2Optimizer.tell() got NaN or inf losses; CMA-ES ranks candidates and cannot rank "
            "those. Make the evaluator return finite losses (e.g. clip log-probabilities)."
        ),
    ):
        optimizer.tell(state, optimizer.ask(state), np.array([1.0, np.inf, 2.0]))


def test_config_keeps_per_layer_stds_as_a_json_list():
    optimizer = BBTv2Optimizer(layer_stds=np.array([0.5, 2.0]), bound=5, generations_per_layer=3)
    config = optimizer.get_config()
    assert config == {
        "subspace_dim": 500,
        "popsize": 20,
        "sigma": 0.2,
        "alpha": 0.2,
        "layer_stds": [0.5, 2.0],
        "generations_per_layer": 3,
        "bound": 5.0,
    }
    assert BBTv2Optimizer.from_config(config).get_config() == config


# --- on a tiny keras-hub backbone -------------------------------------------


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _clipped_std(values, rounds=5, width=3.0):
    for _ in range(rounds):
        low, high = values.mean() - width * values.std(), values.mean() + width * values.std()
        values = np.minimum(np.maximum(values, low), high)
    return values.std()


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_layer_kv_stds_is_the_spread_of_real_tokens_keys_and_values(family):
    model = prefix_classifier(family, prefix_length=2)
    x, _ = toy_batch(n=6, seed=2)  # right-padded rows of 2 to 6 tokens
    plain = layer_kv_stds(model, x, clip_rounds=0)
    # The tiny models' keys/values have light tails: at the default 3 stds
    # nothing is clipped, so clip at 1.5 to see the clipping work.
    clipped = layer_kv_stds(model, x, clip_at=1.5)
    assert np.array_equal(layer_kv_stds(model, x), plain)
    layers = model.prefix.prefix_shape[0]
    assert plain.shape == clipped.shape == (layers,)
    assert np.all(plain > 0) and np.all(clipped > 0)
    # Directly: one batched pass, padding masked out afterwards (the causal
    # mask keeps right padding from reaching real tokens).
    adapter = model.adapter
    empty = np.zeros(prefix_shape(adapter, 0), "float32")
    cache = _numpy(
        PrefixedDecoderOnlyAdapter(adapter, empty).key_values(adapter.embed_tokens(x["token_ids"]))
    )  # [B, L, 2, S, N, D]
    real = x["padding_mask"].astype(bool)
    for layer in range(layers):
        entries = np.moveaxis(cache[:, layer], 2, 1)[real]  # [real tokens, 2, N, D]
        np.testing.assert_allclose(plain[layer], entries.std(), rtol=1e-5)
        np.testing.assert_allclose(clipped[layer], _clipped_std(entries.ravel(), width=1.5), rtol=1e-5)
    assert np.all(clipped < plain)  # it clipped


def test_layer_kv_stds_refuses_other_models_and_empty_inputs():
    with pytest.raises(ValueError, match=_message(
        "layer_kv_stds() needs a PrefixModel, got str. Build one with "
        "PrefixModel(backbone, task, prefix_length=...)."
    )):
        layer_kv_stds("model", {})
    model = prefix_classifier("gpt2", prefix_length=2)
    x, _ = toy_batch(n=2)
    with pytest.raises(ValueError, match=_message(
        "layer_kv_stds() got no real tokens: every padding_mask entry is 0. Pass examples with at "
        "least one unpadded token."
    )):
        layer_kv_stds(model, {"token_ids": x["token_ids"], "padding_mask": 0 * x["padding_mask"]})


def test_bbtv2_tunes_a_prefix_through_the_evaluator_and_the_runner():
    model = prefix_classifier("llama", prefix_length=2)
    x, y = toy_batch(n=16, seed=1)
    evaluator = PrefixEvaluator(model, x, y, batch_size=16)
    start = evaluator.initial_candidate()  # [L, 2, P, N, D], real words' keys/values
    stds = layer_kv_stds(model, {k: v[:4] for k, v in x.items()})  # 4 examples do
    optimizer = BBTv2Optimizer(subspace_dim=50, popsize=8, layer_stds=stds)
    result = PromptTuningRunner(evaluator).run(
        start, [Stage(optimizer, Budget(steps=10))], seed=0
    )
    before = evaluator.evaluate(start[None], step=0).losses[0]
    after = evaluator.evaluate(result.best_prompt[None], step=0).losses[0]
    assert result.best_prompt.shape == start.shape
    # Both layers of the tiny Llama were searched, and the loss fell.
    assert np.all(np.any(result.best_prompt != start, axis=(1, 2, 3, 4)))
    assert after < 0.9 * before, (before, after)
