"""GenerationEngine: requests for different prompts merged into one batch."""

import numpy as np
import pytest

from promptopt.adapters import adapter_for
from promptopt.prefixes.prefix_initializers import initial_prefix
from promptopt.server.generation_engine import GenerationEngine
from promptopt.server.generation_engine import GenerationJob
from promptopt.server.generation_engine import Sampling
from promptopt.server.prompt_registry import ServedPrompt
from promptopt.tasks.text_encoder import tokenize_all
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama

TEXTS = ["great fun. It was", "so", "a film", "truly terrible"]


def _setup(family):
    backbone, tokenizer = tiny_gpt2() if family == "gpt2" else tiny_llama()
    adapter = adapter_for(backbone)
    rng = np.random.default_rng(0)
    served = {
        "base": ServedPrompt("base", "soft_prompt", np.zeros((0, 16), "float32")),
        "p2": ServedPrompt("p2", "soft_prompt", rng.normal(size=(2, 16)).astype("float32")),
        "p4": ServedPrompt("p4", "soft_prompt", rng.normal(size=(4, 16)).astype("float32")),
    }
    for name, seed in (("x", 1), ("y", 2)):
        value = initial_prefix("random", adapter, 2, seed=seed)
        served[name] = ServedPrompt(name, "prefix", value, sites=("decoder",))
    rows = tokenize_all(tokenizer, TEXTS)
    return GenerationEngine(adapter), served, rows, tokenizer


def _job(served, rows, **kwargs):
    kwargs = {"max_tokens": 5, "sampling": Sampling(), "logprobs": 3, **kwargs}
    return GenerationJob(rows, served, **kwargs)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("names", [("base", "p2", "p4"), ("x", "y")])
def test_a_merged_batch_equals_a_pass_per_prompt(family, names):
    engine, served, rows, _ = _setup(family)
    jobs = [
        _job(served[name], rows[i : i + 2], echo_logprobs=i == 1)
        for i, name in enumerate(names)
    ]
    assert len({job.group_key for job in jobs}) == 1
    merged = engine.run(jobs)
    for job, together in zip(jobs, merged):
        [alone] = engine.run([job])
        for a, b in zip(alone, together):
            assert a["tokens"] == b["tokens"] and a["stopped"] == b["stopped"]
            assert a["prompt_tokens"] == b["prompt_tokens"]
            for key in ("logprobs", "prompt_logprobs"):
                for (x, top_x), (y, top_y) in zip(a.get(key, []), b.get(key, [])):
                    if x is None:
                        assert y is None and top_x is None and top_y is None
                        continue
                    np.testing.assert_allclose(x, y, atol=1e-5)
                    assert [t for t, _ in top_x] == [t for t, _ in top_y]
                    np.testing.assert_allclose([v for _, v in top_x], [v for _, v in top_y],
                                               atol=1e-5)


def test_greedy_tokens_are_the_most_likely_and_echo_scores_the_prompt():
    engine, served, rows, _ = _setup("llama")
    [[row]] = engine.run([_job(served["p2"], rows[:1], echo_logprobs=True)])
    for logprob, top in row["logprobs"]:
        assert logprob == pytest.approx(top[0][1], abs=1e-6)
    # Every text token is scored: the first one after the soft prompt, too.
    assert len(row["prompt_logprobs"]) == len(rows[0])
    assert row["prompt_logprobs"][0][0] is not None
    [[plain]] = engine.run([_job(served["base"], rows[:1], echo_logprobs=True)])
    assert plain["prompt_logprobs"][0] == (None, None)  # nothing precedes it


def test_group_keys_say_what_may_share_a_pass():
    _, served, rows, _ = _setup("llama")
    key = lambda name, **kw: _job(served[name], rows[1:2], **kw).group_key  # noqa: E731
    assert key("base") == key("p4") != key("x") == key("y")
    # Rows far longer than the others would make the batch decode longer.
    assert _job(served["base"], [[5] * 40]).group_key != key("base")
    assert key("p2", max_tokens=6) != key("p2")
    assert key("p2", stop_token_ids=(2,)) != key("p2")
    assert key("p2", sampling=Sampling(temperature=0.7)) != key("p2")
    assert key("p2", sampling=Sampling(temperature=0.7, seed=3)) is None


def test_seeded_sampling_repeats_and_streaming_sees_growing_prefixes():
    engine, served, rows, _ = _setup("llama")
    seeded = Sampling(temperature=1.0, top_k=20, seed=11)
    first, second = (engine.run([_job(served["p4"], rows, sampling=seeded)]) for _ in range(2))
    assert [r["tokens"] for r in first[0]] == [r["tokens"] for r in second[0]]
    seen = {}
    job = _job(served["p4"], rows[:2], max_tokens=6,
               on_tokens=lambda row, tokens: seen.setdefault(row, []).append(tokens))
    [result] = engine.run([job])
    for row, calls in seen.items():
        assert [len(c) for c in calls] == sorted({len(c) for c in calls})  # growing
        final = result[row]["tokens"]
        assert all(final[: len(c)] == c for c in calls)
        assert len(calls[0]) < len(final)  # tokens came before the end


def test_an_empty_text_needs_a_prompt():
    engine, served, _, _ = _setup("llama")
    with pytest.raises(ValueError, match="A row has no tokens and no soft prompt in front"):
        engine.run([_job(served["base"], [[]])])
    [[row]] = engine.run([_job(served["p2"], [[]])])
    assert len(row["tokens"]) == 5 or row["stopped"]
