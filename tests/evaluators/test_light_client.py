"""The HTTP clients import without the model stack, and the server stays apart."""

import ast
import importlib
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from keras import ops

from promptopt.evaluators.numpy_losses import numpy_classification_loss
from promptopt.tasks import losses as keras_losses
from promptopt.wire.names import LOSSES

REPO = pathlib.Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "keras_hub", "jax", "torch")


def test_http_clients_import_without_tensorflow_keras_or_keras_hub():
    check = (
        "import promptopt.evaluators.http_evaluator, "
        "promptopt.evaluators.openai_completions_evaluator, sys; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    # A fresh interpreter: this one has Keras loaded already.
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def imported_modules(path):
    """Every module a file imports, at any depth (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # Relative imports would hide the package; the project uses none.
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
            # `from promptopt import server` imports the package `server`.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imports_of_package(package):
    files = sorted((REPO / "promptopt" / package).glob("*.py"))
    assert files, package
    return {path.name: imported_modules(path) for path in files}


@pytest.mark.parametrize("package, forbidden", [("server", "evaluators"), ("evaluators", "server")])
def test_server_and_evaluators_do_not_import_each_other(package, forbidden):
    target = f"promptopt.{forbidden}"
    offending = {
        name: sorted(m for m in modules if m == target or m.startswith(target + "."))
        for name, modules in imports_of_package(package).items()
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_the_loss_names_of_the_wire_format_are_those_of_the_keras_losses():
    assert LOSSES == keras_losses.LOSSES


@pytest.mark.parametrize("kind", LOSSES)
def test_numpy_loss_of_api_clients_equals_the_keras_loss(kind):
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, (64, 3)).astype("float32")
    labels = rng.integers(0, 3, 64)
    expected = ops.convert_to_numpy(keras_losses.classification_loss(scores, labels, kind))
    np.testing.assert_allclose(numpy_classification_loss(scores, labels, kind), expected,
                               rtol=1e-6, atol=1e-6)


def test_numpy_loss_names_the_choices_for_an_unknown_kind():
    with pytest.raises(ValueError, match="cross_entropy, hinge, negative_accuracy"):
        numpy_classification_loss(np.zeros((1, 2)), np.zeros(1, "int64"), "accuracy")


@pytest.mark.parametrize(
    "package", ["promptopt", "promptopt.evaluators", "promptopt.server", "promptopt.wire"]
)
def test_every_lazily_exported_name_resolves(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'missing_name'"):
        module.missing_name
