"""How much a stage of a run may spend before it ends."""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Budget:
    """Limits of one stage; the stage ends at the first limit reached.

    Limits are checked before each step, and a step is never cut short, so
    `forward_calls` and `seconds` may be overshot by at most one step's
    worth (e.g. a CMA-ES generation of `popsize` calls).

    Args:
        steps: int or None, optimizer steps (`ask`/`tell` rounds).
        forward_calls: int or None, forward passes reported by the evaluator.
        seconds: float or None, wall-clock seconds spent in the stage
            (summed over resumes).

    Example:

    ```python
    Budget(steps=300)  # 300 steps
    Budget(forward_calls=8000, seconds=3600)  # whichever comes first
    ```
    """

    steps: int = None
    forward_calls: int = None
    seconds: float = None

    def __post_init__(self):
        if self.steps is None and self.forward_calls is None and self.seconds is None:
            raise ValueError(
                "Budget needs at least one limit. Pass steps=, forward_calls= "
                "or seconds=, e.g. Budget(steps=100)."
            )
        for name in ("steps", "forward_calls"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(
                    f"Budget({name}=...) must be a non-negative int or None, "
                    f"got {value!r}. Pass e.g. Budget({name}=100)."
                )
        if self.seconds is not None and not (
            isinstance(self.seconds, (int, float))
            and not isinstance(self.seconds, bool)
            and math.isfinite(self.seconds)
            and self.seconds >= 0
        ):
            raise ValueError(
                f"Budget(seconds=...) must be a non-negative finite number or "
                f"None, got {self.seconds!r}. Pass e.g. Budget(seconds=600)."
            )

    def exhausted_by(self, steps, forward_calls, seconds):
        """Returns the name of the first limit reached, or None.

        Args:
            steps: int, steps spent in the stage.
            forward_calls: int, forward passes spent in the stage.
            seconds: float, seconds spent in the stage.
        """
        if self.steps is not None and steps >= self.steps:
            return "steps"
        if self.forward_calls is not None and forward_calls >= self.forward_calls:
            return "forward_calls"
        if self.seconds is not None and seconds >= self.seconds:
            return "seconds"
        return None
