"""One prefix per row: N prefixes of one length that each row gathers from."""

import numpy as np

from promptopt.models.prompt_table import checked_prompt_ids
from promptopt.prefixes.prefix_initializers import bind_prefix


class PrefixTable:
    """N prefixes `[L, 2, P, N, D]` stacked into `[N, L, 2, P, N, D]`.

    The prefixed adapters already take one prefix per row
    (`[B, L, 2, P, N, D]`); `bind` gathers row i's from the table, so rows
    with different prefixes run in one forward pass, each reading its own
    keys and values in the first P cache slots. Unlike a `PromptTable`, the
    prefixes must share P: the text is written from cache slot P in every
    row, and keras-hub's cached attention takes no mask that could hide a
    shorter prefix's unused slots.

    Args:
        prefixes: list of N arrays `[L, 2, P, N, D]` of one shape.
        sites: the attention sites they were tuned for (`("decoder",)` for
            decoder-only models; see `PrefixModel`).

    Example:
    ```python
    table = PrefixTable([e2e_prefix, dart_prefix])
    model.generate(sources, prompts=table, prompt_ids=[0, 1, 1])
    ```
    """

    def __init__(self, prefixes, sites=("decoder",)):
        prefixes = [np.asarray(p, "float32") for p in prefixes]
        if not prefixes:
            raise ValueError("PrefixTable needs at least one prefix [L, 2, P, N, D].")
        shapes = {p.shape for p in prefixes}
        if len(shapes) > 1 or prefixes[0].ndim != 5:
            raise ValueError(
                f"Every prefix must be [L, 2, P, N, D] of one shape; got "
                f"{sorted(shapes)}. Rows with prefixes of other lengths run in "
                "separate passes."
            )
        self.sites = tuple(sites)
        self.table = np.stack(prefixes)  # [N, L, 2, P, N, D]

    def __len__(self):
        return len(self.table)

    def bind(self, adapter, prompt_ids, rows):
        """`(adapter with row i's prefix bound in, rows unchanged)`.

        Args:
            adapter: the backbone's (unprefixed) `BackboneAdapter`.
            prompt_ids: B ints in `[0, N)`.
            rows: B lists of token ids.
        """
        prompt_ids = checked_prompt_ids(prompt_ids, len(rows), len(self))
        per_row = self.table[prompt_ids]  # [B, L, 2, P, N, D]
        return bind_prefix(adapter, per_row, self.sites), list(rows)
