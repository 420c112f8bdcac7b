"""What a local evaluator runs when a device mesh is set up."""

from promptopt.distribution.batch_sharding import BatchSharding
from promptopt.distribution.population_scorer import PopulationScorer
from promptopt.distribution.sharded_loss import ShardedLoss


class MeshScoring:
    """The mesh versions of a `LocalEvaluator`'s passes.

    `LocalEvaluator` builds one when a `DistributionSetup` is current
    (`DistributionSetup.current()`), and then
    - scores one candidate at a time, and every gradient, with its
      mini-batch split over the devices (`ShardedLoss`: data parallel);
    - scores a forward-only population of K > 1 candidates with the
      candidates split over the devices (`PopulationScorer`), or, with
      `population="examples"`, as above, one candidate at a time.
    Losses, metrics and gradients equal the single-device ones up to float
    rounding (the order of the sums over examples changes).

    A model built before the setup was made current is first moved onto
    the mesh, each variable to the layout the distribution gives it.

    Args:
        evaluator: a `LocalEvaluator`.
        setup: a `DistributionSetup`.

    Example:
    ```python
    with DistributionSetup("all").scope():
        evaluator = KerasEvaluator(model, x, y)  # evaluator._mesh is a MeshScoring
    ```
    """

    def __init__(self, evaluator, setup):
        self.setup = setup
        self.sharding = BatchSharding(setup)
        variables = list(evaluator.model.variables)
        for variable in variables:
            layout = setup.distribution.get_variable_layout(variable).backend_layout
            placed = self.sharding.place(variable.value, layout)
            if placed is not variable.value:
                variable.assign(placed)
        self._loss = ShardedLoss(evaluator._loss_of, variables, self.sharding)
        self.population = PopulationScorer(
            evaluator._loss_of, evaluator._layout, variables, self.sharding)
        self.forward = self._loss.forward
        self.value_and_grad = self._loss.value_and_grad

    def shards_candidates(self, count, compute_gradients):
        """Whether K = `count` candidates go to `population` at once."""
        return self.setup.population == "candidates" and count > 1 and not compute_gradients

    def shard_examples(self, inputs):
        """A group's inputs split along the batch over the devices."""
        return self.sharding.shard(inputs)
