import pytest

from promptopt.runner import Budget


def test_budget_needs_a_limit():
    with pytest.raises(
        ValueError,
        match=r"^Budget needs at least one limit\. Pass steps=, forward_calls= "
        r"or seconds=, e\.g\. Budget\(steps=100\)\.$",
    ):
        Budget()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": -1}, r"Budget\(steps=\.\.\.\) must be a non-negative int or None, got -1\."),
        ({"forward_calls": 2.5}, r"Budget\(forward_calls=\.\.\.\) must be a non-negative int or None, got 2\.5\."),
        ({"seconds": float("inf")}, r"Budget\(seconds=\.\.\.\) must be a non-negative finite number or None, got inf\."),
    ],
)
def test_budget_rejects_bad_limits(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Budget(**kwargs)


def test_first_limit_reached_is_named():
    budget = Budget(steps=10, forward_calls=100, seconds=60.0)
    assert budget.exhausted_by(9, 99, 59.9) is None
    assert budget.exhausted_by(10, 0, 0.0) == "steps"
    assert budget.exhausted_by(0, 100, 0.0) == "forward_calls"
    assert budget.exhausted_by(0, 0, 60.0) == "seconds"
    assert Budget(seconds=1.0).exhausted_by(10**9, 10**9, 0.5) is None
