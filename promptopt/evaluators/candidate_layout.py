"""How a layer's weights are laid out as one candidate array."""

import numpy as np


class CandidateLayout:
    """Maps a list of weights to one candidate array and back.

    With `first_only=True` a candidate is the first weight as it is (e.g.
    the raw prompt `[P, H]`, with any reparameterization held fixed);
    otherwise it is the flat concatenation `[D]` of every weight, so that an
    optimizer trains the reparameterization too.

    Args:
        variables: list of Keras variables, the raw prompt or prefix first.
        first_only: bool.

    Example:
    ```python
    layout = CandidateLayout(model.soft_prompt.weights, first_only=True)
    layout.assign(layout.initial() + 0.1)
    ```
    """

    def __init__(self, variables, first_only):
        self.variables = list(variables)
        self.first_only = bool(first_only)
        self.shapes = [tuple(v.shape) for v in self.variables]

    @property
    def shape(self):
        if self.first_only:
            return self.shapes[0]
        return (sum(int(np.prod(s)) for s in self.shapes),)

    def initial(self):
        """The variables' current values, in candidate form."""
        # Copies: on torch, numpy() shares the variable's memory.
        values = [np.array(v.numpy(), dtype="float32") for v in self.variables]
        if self.first_only:
            return values[0]
        return np.concatenate([v.reshape(-1) for v in values])

    def split(self, candidate):
        """A candidate -> one array per variable it covers."""
        candidate = np.asarray(candidate, "float32")
        if self.first_only:
            return [candidate]
        parts, offset = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            parts.append(candidate[offset : offset + size].reshape(shape))
            offset += size
        return parts

    def assign(self, candidate):
        """Writes a candidate (e.g. a run's best) into the variables."""
        for variable, value in zip(self.variables, self.split(candidate)):
            variable.assign(value)
