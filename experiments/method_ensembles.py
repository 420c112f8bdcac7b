"""An ensemble across methods: the dev-selected prompts of two methods, averaged.

For each SST-2 16-shot split that has both members' prompt files, the
class probabilities of each member on the split's 32 dev sentences and on
the FULL test set (872 sentences) are averaged (Lester et al.'s prompt
ensembles, section 7, here across tuning methods rather than seeds). The
members are fixed in advance, the two best methods under the protocol:

- `prefix`: gradient prefix tuning in front of the input, the library's
  defaults (`python -m experiments.protocol_runs --variant prefix --method
  prefix`);
- `bbtv2`: BBTv2 as a deep suffix, 2,000 forward calls
  (`python -m experiments.derivative_free_budget --methods bbtv2
  --placement suffix --calls 2000`).

Nothing is chosen on test. Each member scores in the precision it was
tuned in (`SavedPrompt`); probabilities are cached in
`experiments/runs/method_ensembles/`, so a rerun scores only what is new.

    python -m experiments.method_ensembles
"""

import argparse
import os

import numpy as np

from experiments import common
from promptopt.data import load_fewshot_split
from promptopt.tuning.saved_prompt import SavedPrompt

TASK = "sst2"
MEMBERS = {
    "prefix": os.path.join(common.HERE, "runs", "protocol", "prefix", "{task}-s{seed}",
                           "prefix.npz"),
    "bbtv2": os.path.join(common.HERE, "runs", "derivative_free",
                          "{task}-s{seed}-bbtv2-calls2000-suffix", "prefix.npz"),
}
CACHE = os.path.join(common.HERE, "runs", "method_ensembles")


def probabilities(member, seed, splits):
    """`{split name: [N, C]}` class probabilities of `member`'s prompt (cached).

    The prompt and its model are loaded once, and only if a split is missing.
    """
    paths = {name: os.path.join(CACHE, f"{TASK}-s{seed}-{member}-{name}.npy") for name in splits}
    missing = [name for name, path in paths.items() if not os.path.exists(path)]
    if missing:
        saved = SavedPrompt.load(MEMBERS[member].format(task=TASK, seed=seed))
        os.makedirs(CACHE, exist_ok=True)
        for name in missing:
            np.save(paths[name], saved.probabilities(splits[name].texts))
    return {name: np.load(path) for name, path in paths.items()}


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    names = list(MEMBERS)
    rows, per_method = [], {name: [] for name in names + ["ensemble"]}
    for seed in common.SEEDS:
        if not all(os.path.exists(MEMBERS[n].format(task=TASK, seed=seed)) for n in names):
            continue
        splits = {s: load_fewshot_split(TASK, seed, s) for s in ("dev", "test")}
        accuracies = {}
        scored = {n: probabilities(n, seed, splits) for n in names}
        for split_name, split in splits.items():
            members = {n: scored[n][split_name] for n in names}
            members["ensemble"] = np.mean([members[n] for n in names], axis=0)
            for name, probs in members.items():
                accuracies[(name, split_name)] = float(
                    np.mean(probs.argmax(-1) == np.asarray(split.labels)))
        for name in per_method:
            per_method[name].append(accuracies[(name, "test")])
        rows.append(f"| {seed} | " + " | ".join(
            f"{100 * accuracies[(n, 'test')]:.1f} ({100 * accuracies[(n, 'dev')]:.0f})"
            for n in per_method) + " |")
    lines = ["# An ensemble across methods (SST-2, full test set)", "",
             "`python -m experiments.method_ensembles`. Per 16-shot split, the mean class "
             f"probability of {' and '.join(names)} (each member's dev-selected prompt; members "
             "fixed in advance). Test accuracy (%) on all 872 sentences, dev accuracy (32 "
             "sentences) in parentheses.", "",
             "| split | " + " | ".join(per_method) + " |",
             "|---|" + "---|" * len(per_method)]
    lines += rows
    if rows:
        lines.append("| mean ± std | " + " | ".join(
            common.mean_std(v) for v in per_method.values()) + " |")
    common.write_markdown("method_ensembles.md", lines)


if __name__ == "__main__":
    main()
