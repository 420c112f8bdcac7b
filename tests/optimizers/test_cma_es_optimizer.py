import os

import numpy as np
import pytest

from promptopt.optimizers import CMAESOptimizer
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from tests.helpers.quadratic import QuadraticEvaluator
from tests.helpers.quadratic import make_target


def test_different_seeds_give_different_candidates():
    optimizer = CMAESOptimizer(popsize=6)
    prompt = np.zeros((4, 8))
    first = optimizer.ask(optimizer.init(prompt, seed=0))
    second = optimizer.ask(optimizer.init(prompt, seed=1))
    assert not np.allclose(first, second)


def test_first_population_perturbs_each_entry_by_embedding_std():
    # BBT: A ~ N(0, sigma_emb / (sqrt(d) sigma)) and z ~ N(0, sigma^2 I), so
    # each entry of A z has standard deviation sigma_emb.
    optimizer = CMAESOptimizer(subspace_dim=200, popsize=50, sigma=2.0, embedding_std=0.25)
    prompt = np.full((6, 40), 3.0, "float32")
    candidates = optimizer.ask(optimizer.init(prompt, seed=0))
    offsets = candidates - prompt
    assert candidates.shape == (50, 6, 40)
    assert abs(np.mean(offsets)) < 0.01
    assert np.std(offsets) == pytest.approx(0.25, rel=0.05)


def test_candidates_lie_in_the_affine_subspace_through_the_init_prompt():
    # prompt = A z + p0 with A [numel, d]: with d = 3 every offset from p0 is
    # a combination of the same 3 columns, so the offsets have rank 3.
    optimizer = CMAESOptimizer(subspace_dim=3, popsize=10)
    prompt = np.random.default_rng(0).normal(size=(4, 8))
    candidates = optimizer.ask(optimizer.init(prompt, seed=0))
    offsets = (candidates - prompt.astype("float32")).reshape(10, -1)
    singular_values = np.linalg.svd(offsets.astype(np.float64), compute_uv=False)
    assert np.sum(singular_values > 1e-4 * singular_values[0]) == 3


def test_best_is_the_lowest_loss_candidate_so_far():
    optimizer = CMAESOptimizer(popsize=4)
    state = optimizer.init(np.zeros((2, 3)), seed=0)
    np.testing.assert_array_equal(optimizer.best(state), np.zeros((2, 3)))
    candidates = optimizer.ask(state)
    state, metrics = optimizer.tell(state, candidates, np.array([3.0, 1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(optimizer.best(state), candidates[1])
    assert metrics["best_loss"] == 1.0
    candidates = optimizer.ask(state)
    first_best = optimizer.best(state)
    state, metrics = optimizer.tell(state, candidates, np.array([4.0, 6.0, 2.0, 5.0]))
    # No candidate of the second generation beat 1.0: the best stays put.
    np.testing.assert_array_equal(optimizer.best(state), first_best)
    assert not any(np.array_equal(optimizer.best(state), c) for c in candidates)
    assert metrics["best_loss"] == 1.0
    assert metrics["loss"] == 2.0
    assert metrics["mean_loss"] == 4.25
    assert metrics["sigma"] > 0


def test_cma_es_run_writes_nothing_into_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # pycma would read this file in stop() unless signals_filename is off.
    (tmp_path / "cma_signals.in").write_text("{'verbose': 1}")
    before = sorted(os.listdir(tmp_path))
    target = make_target()
    runner = PromptTuningRunner(QuadraticEvaluator(target))
    runner.run(
        np.zeros(target.shape),
        stages=[Stage(CMAESOptimizer(popsize=8), Budget(steps=5))],
    )
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / "cma_signals.in").read_text() == "{'verbose': 1}"


def test_tell_rejects_non_finite_losses():
    optimizer = CMAESOptimizer(popsize=3)
    state = optimizer.init(np.zeros((2, 2)), seed=0)
    with pytest.raises(
        ValueError,
        match=r"CMAESOptimizer.tell\(\) got NaN or inf losses; CMA-ES ranks "
        r"candidates and cannot rank those\. Make the evaluator return finite "
        r"losses",
    ):
        optimizer.tell(state, optimizer.ask(state), np.array([1.0, np.nan, 2.0]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"popsize": 1}, r"popsize must be at least 2 for CMA-ES to rank candidates, got 1\. Pass e\.g\. popsize=20\."),
        ({"subspace_dim": 0}, r"subspace_dim must be a positive int, got 0\. Pass e\.g\. subspace_dim=500\."),
        ({"sigma": -1.0}, r"sigma must be a positive finite number, got -1\.0\. Pass e\.g\. sigma=1\.0\."),
        ({"embedding_std": float("nan")}, r"embedding_std must be a positive finite number, got nan\."),
    ],
)
def test_constructor_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CMAESOptimizer(**kwargs)


def test_first_generation_evaluates_the_initial_prompt_itself():
    optimizer = CMAESOptimizer(popsize=5)
    prompt = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
    state = optimizer.init(prompt, seed=0)
    candidates = optimizer.ask(state)
    np.testing.assert_array_equal(candidates[0], prompt)
    # So best() never ends worse than where the search started.
    losses = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    state, _ = optimizer.tell(state, candidates, losses)
    np.testing.assert_array_equal(optimizer.best(state), prompt)
    assert not np.allclose(optimizer.ask(state)[0], prompt)
