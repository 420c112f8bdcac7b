"""`/v1/score`: class scores and the loss of a batch under one prompt, or K."""

import asyncio
import hashlib
import json

import numpy as np
from fastapi import APIRouter
from fastapi import Depends
from fastapi import HTTPException
from fastapi import Request
from keras import ops

from promptopt.models.prompt_ensemble import PromptEnsemble
from promptopt.models.prompt_ensemble import class_softmax
from promptopt.prompts.shared_input import supports_shared_input
from promptopt.server.auth import authorize
from promptopt.server.deep_suffix_scoring import DeepSuffixScoreJob
from promptopt.server.limits import check_texts
from promptopt.server.prompt_registry import UnknownModelError
from promptopt.server.request_log import IdempotencyConflictError
from promptopt.server.request_log import RequestLog
from promptopt.server.scoring_engine import PopulationScoreJob
from promptopt.server.scoring_engine import ScoreJob
from promptopt.server.server_state import server_state
from promptopt.tasks.losses import classification_loss
from promptopt.wire.array_codec import ArrayDecodeError
from promptopt.wire.array_codec import decode_array
from promptopt.wire.array_codec import encode_array
from promptopt.wire.names import IDEMPOTENCY_HEADER
from promptopt.wire.names import SCORE_PATH
from promptopt.wire.score_bodies import PopulationScoreResponse
from promptopt.wire.score_bodies import ScoreRequest
from promptopt.wire.score_bodies import ScoreResponse

router = APIRouter(dependencies=[Depends(authorize)])


@router.post(SCORE_PATH, response_model=ScoreResponse | PopulationScoreResponse)
async def score(body: ScoreRequest, request: Request, state=Depends(server_state)):
    engine = state.engine
    check_texts(state.config, body.inputs, "inputs", body.prompt_text or "")
    if body.prefix_embeddings is not None or body.suffix_tail_length is not None:
        return await score_deep_suffix(body, request, state)
    if body.model is not None:
        return await score_served(body, request, state)
    if body.prompt_embeddings is not None and body.prompt_text is not None:
        raise HTTPException(
            422, "Give prompt_embeddings or prompt_text, not both."
        )
    if body.placement == "suffix" and body.prompt_text is not None:
        raise HTTPException(
            422,
            "placement='suffix' puts a soft prompt after each input, and a "
            "text prompt goes in front of it. Send prompt_embeddings, or "
            "prompt_text with placement='prefix'.",
        )
    prompt = soft_prompt_of(body, engine.hidden_dim, state.config.max_prompt_length)
    labels = labels_of(body)
    task_key = await task_key_of(body, engine)
    if prompt.ndim == 3:
        return await score_population(body, request, state, task_key, prompt, labels)
    if body.candidate_keys is not None:
        raise HTTPException(
            422,
            "candidate_keys name the K candidates of a population "
            "(prompt_embeddings [K, P, H]). With one prompt [P, H], send its "
            "key as the Idempotency-Key header.",
        )
    job = ScoreJob(
        task_key, list(body.inputs), labels, prompt, body.prompt_text or "",
        body.loss, batchable=body.allow_batching,
    )

    async def compute():
        result = await state.run_job(job)
        response = {
            "model": engine.model_id,
            "scores": encode_array(result["scores"]),
            "loss": result["loss"],
            "input_tokens": result["input_tokens"],
        }
        return response, job.rows, result["input_tokens"]

    return await state.idempotent(request, SCORE_PATH, compute)


async def task_key_of(body, engine):
    """The engine's key for the request's verbalizer and placement; 422 if invalid."""
    try:
        return await asyncio.to_thread(
            engine.task_key, body.classes, body.label_words, body.placement
        )
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


async def score_served(body, request, state):
    """Scores with the prompt or ensemble that `body.model` names.

    An ensemble's N members are scored on the request's inputs (one
    population pass when they have one shape) and their class
    probabilities combined by its rule (`PromptEnsemble.combine_members`);
    the reply's scores are the log of the combined probabilities, and the
    loss is computed from those.
    """
    if body.prompt_embeddings is not None or body.prompt_text is not None:
        raise HTTPException(
            422, f"Give model ('{body.model}', a prompt the server serves) or "
            "prompt_embeddings / prompt_text, not both.")
    if body.candidate_keys is not None:
        raise HTTPException(
            422, "candidate_keys name the candidates of prompt_embeddings [K, P, H]; a request "
            "with model has none. Send its key as the Idempotency-Key header.")
    try:
        served = state.prompts.get(body.model)
    except UnknownModelError as error:
        raise HTTPException(404, str(error)) from None
    if served.kind == "prefix":
        raise HTTPException(
            422, f"'{body.model}' is a prefix; /v1/score scores soft prompts and ensembles of "
            "them. Score a prefix with `promptopt eval --prompt PATH`.")
    labels = labels_of(body)
    task_key = await task_key_of(body, state.engine)
    inputs = list(body.inputs)

    async def compute():
        if served.kind != "ensemble":
            job = ScoreJob(task_key, inputs, labels, served.value, "", body.loss,
                           batchable=body.allow_batching)
            result = await state.run_job(job)
            scores, loss, tokens, rows = result["scores"], result["loss"], result["input_tokens"], job.rows
        else:
            member_scores, tokens, rows = await _member_scores(state, served, task_key, inputs,
                                                               body)
            probabilities, _ = PromptEnsemble.combine_members(
                class_softmax(member_scores), served.combine)
            # Vote shares can be 0: floored so that scores and loss stay finite.
            scores = np.log(np.maximum(probabilities, 1e-30)).astype("float32")
            loss = None
            if labels is not None:
                per_example = classification_loss(scores, labels, body.loss)  # [B]
                loss = float(np.mean(ops.convert_to_numpy(per_example)))
        response = {"model": served.name, "scores": encode_array(scores), "loss": loss,
                    "input_tokens": tokens}
        return response, rows, tokens

    return await state.idempotent(request, SCORE_PATH, compute)


async def _member_scores(state, served, task_key, inputs, body):
    """`(scores [N, B, C], input tokens, rows)` of an ensemble's members on `inputs`."""
    prompts = [member.value for member in served.members]
    if len({p.shape for p in prompts}) == 1:
        job = PopulationScoreJob(task_key, inputs, None, np.stack(prompts), body.loss)
        result = await state.run_job(job)
        candidates = result["candidates"]
        rows = job.rows
    else:  # members of several lengths: one pass each
        candidates, rows = [], 0
        for prompt in prompts:
            job = ScoreJob(task_key, inputs, None, prompt, "", body.loss,
                           batchable=body.allow_batching)
            candidates.append(await state.run_job(job))
            rows += job.rows
    scores = np.stack([c["scores"] for c in candidates])
    return scores, sum(int(c["input_tokens"]) for c in candidates), rows


async def score_deep_suffix(body, request, state):
    """Scores a deep suffix `[L, 2, P, N, D]`, or K of them, on the B inputs.

    One candidate runs as a population of one, so it scores the same alone
    and in a population (the same compiled functions); a population is
    exactly-once per candidate key (`score_population`).
    """
    prefixes = deep_suffix_of(body, state.engine, state.config.max_prompt_length)
    labels = labels_of(body)
    task_key = await task_key_of(body, state.engine)

    def job_of(candidates):  # [K', L, 2, P, N, D]
        return DeepSuffixScoreJob(task_key, list(body.inputs), labels, candidates,
                                  body.suffix_tail_length, body.loss)

    if prefixes.ndim == 6:
        return await score_population(body, request, state, task_key, prefixes, labels,
                                      job_of=job_of)
    if body.candidate_keys is not None:
        raise HTTPException(
            422,
            "candidate_keys name the K candidates of a population "
            "(prefix_embeddings [K, L, 2, P, N, D]). With one deep suffix "
            "[L, 2, P, N, D], send its key as the Idempotency-Key header.",
        )
    job = job_of(prefixes[None])

    async def compute():
        [result] = (await state.run_job(job))["candidates"]
        response = {
            "model": state.engine.model_id,
            "scores": encode_array(result["scores"]),
            "loss": result["loss"],
            "input_tokens": result["input_tokens"],
        }
        return response, len(job.texts), result["input_tokens"]

    return await state.idempotent(request, SCORE_PATH, compute)


def deep_suffix_of(body, engine, max_prompt_length):
    """The request's deep suffix, float32 `[L, 2, P, N, D]`, or K of them
    `[K, L, 2, P, N, D]`; 422 (naming the fix) if the request does not fit."""
    if body.model is not None:
        raise HTTPException(
            422, f"Give model ('{body.model}', a prompt the server serves) or "
            "prefix_embeddings (a deep suffix), not both.")
    if body.prefix_embeddings is None:
        raise HTTPException(
            422, "suffix_tail_length goes with prefix_embeddings (a deep suffix "
            "[L, 2, P, N, D]); send both, or neither.")
    if body.prompt_embeddings is not None or body.prompt_text is not None:
        raise HTTPException(
            422, "Give prefix_embeddings (a deep suffix) or prompt_embeddings / "
            "prompt_text, not both.")
    if body.placement != "suffix":
        raise HTTPException(
            422, "prefix_embeddings is a deep suffix, read by each input's last "
            "suffix_tail_length tokens: send placement='suffix'.")
    k = body.suffix_tail_length
    if k is None or k < 1:
        raise HTTPException(
            422, "suffix_tail_length must be an int >= 1 (how many of each input's "
            f"last tokens read the deep suffix, ending at the answer position), got {k}.")
    if not supports_shared_input(engine.adapter):
        raise HTTPException(
            422, "prefix_embeddings (a deep suffix) needs a Llama-family model "
            f"(rotary positions); this server runs {type(engine.backbone).__name__}. "
            "Send prompt_embeddings instead.")
    try:
        prefix = decode_array(body.prefix_embeddings)
    except ArrayDecodeError as error:
        raise HTTPException(422, str(error)) from None
    layers, _, _, heads, head_dim = engine.prefix_shape(1)
    if prefix.ndim not in (5, 6) or (
        tuple(prefix.shape[-5:-3]) + tuple(prefix.shape[-2:]) != (layers, 2, heads, head_dim)
    ):
        expected = f"{layers}, 2, P, {heads}, {head_dim}"
        raise HTTPException(
            422, f"prefix_embeddings must have shape [{expected}] (this model's L, 2, "
            f"P, N, D) or [K, {expected}] (K candidates), got {list(prefix.shape)}.")
    if prefix.ndim == 6 and prefix.shape[0] == 0:
        raise HTTPException(
            422, "prefix_embeddings [K, L, 2, P, N, D] holds no candidates (K=0); "
            "send at least one.")
    p = prefix.shape[-3]
    if not 1 <= p <= max_prompt_length:
        raise HTTPException(
            422, f"prefix_embeddings has P={p} prompt slots; send 1 to "
            f"{max_prompt_length}.")
    if not np.all(np.isfinite(prefix)):
        raise HTTPException(422, "prefix_embeddings holds NaN or inf values.")
    return prefix


async def score_population(body, request, state, task_key, prompts, labels, job_of=None):
    """Scores K candidates `[K, P, H]` on the request's B inputs.

    Exactly once per candidate key: a candidate the log holds is answered
    from it, one that another request is computing now is waited for, and
    only the rest are computed, in one job (`PopulationScoreJob`, or
    `job_of(candidates)`'s for other kinds, e.g. deep suffixes `[K, L, 2,
    P, N, D]`), then logged (one line each) before the reply is sent.
    """
    if request.headers.get(IDEMPOTENCY_HEADER) is not None:
        raise HTTPException(
            422,
            "A population request (prompt_embeddings [K, P, H]) is idempotent "
            "per candidate: send one key per candidate in candidate_keys, "
            f"and no {IDEMPOTENCY_HEADER} header.",
        )
    keys = candidate_keys_of(body, len(prompts))
    inputs_sha256 = inputs_digest(body)
    digests = [RequestLog.candidate_digest(inputs_sha256, p) for p in prompts]
    claims = []
    try:
        for key, digest in zip(keys, digests):
            claims.append(state.log.claim(key, digest))
    except IdempotencyConflictError as error:
        state.log.release([c.key for c in claims if c.owned], error)
        raise HTTPException(409, str(error)) from None
    owned = [k for k, claim in enumerate(claims) if claim.owned]
    responses = {
        k: claim.response for k, claim in enumerate(claims) if claim.response is not None
    }
    try:
        if owned:
            if job_of is None:
                job = PopulationScoreJob(
                    task_key, list(body.inputs), labels, prompts[owned], body.loss
                )
            else:
                job = job_of(prompts[owned])
            result = await state.run_job(job)
            computed = [
                {
                    "scores": encode_array(c["scores"]),
                    "loss": c["loss"],
                    "input_tokens": c["input_tokens"],
                }
                for c in result["candidates"]
            ]
            await asyncio.to_thread(
                state.log.record_computed_candidates,
                SCORE_PATH,
                [
                    (keys[k], digests[k], len(body.inputs), r["input_tokens"], r)
                    for k, r in zip(owned, computed)
                ],
            )
            responses.update(zip(owned, computed))
    except BaseException as error:
        # Unclaim what this request did not log, so a retry can compute it.
        state.log.release([keys[k] for k in owned if k not in responses], error)
        raise
    for k, claim in enumerate(claims):
        if claim.pending is not None:
            try:
                # Shielded: this request giving up must not cancel the
                # other one's computation.
                responses[k] = await asyncio.shield(asyncio.wrap_future(claim.pending))
            except Exception:
                raise HTTPException(
                    503,
                    f"Another request computing candidate {k} (the same "
                    "candidate key) failed; send this request again.",
                ) from None
    replayed = [k for k in range(len(prompts)) if k not in owned]
    if replayed:
        await asyncio.to_thread(
            state.log.record_replayed_many, SCORE_PATH, [keys[k] for k in replayed]
        )
    return {
        "model": state.engine.model_id,
        "candidates": [
            {**responses[k], "replayed": k not in owned} for k in range(len(prompts))
        ],
    }


def candidate_keys_of(body, count):
    """The K candidate keys (None each without them); 422 if they do not fit."""
    if body.candidate_keys is None:
        return [None] * count
    keys = list(body.candidate_keys)
    if len(keys) != count:
        raise HTTPException(
            422,
            f"Got {len(keys)} candidate_keys for {count} candidates; send one "
            "key per candidate (row of prompt_embeddings), or none.",
        )
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise HTTPException(
            422,
            f"candidate_keys must be distinct; {repeated} appear more than "
            "once. Send each candidate once.",
        )
    return keys


def inputs_digest(body):
    """Digest of what, besides its prompt, decides a candidate's result.

    The inputs, labels, verbalizer, placement, loss (and a deep suffix's
    tail length): not the other candidates, their keys, or `allow_batching`
    (a population always runs on its own).
    """
    exclude = {"prompt_embeddings", "prefix_embeddings", "candidate_keys", "allow_batching"}
    if body.suffix_tail_length is None:
        # Left out when unset, so the digests of requests without a deep
        # suffix stay those logged before the field existed.
        exclude.add("suffix_tail_length")
    shared = body.model_dump(exclude=exclude)
    text = json.dumps(shared, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def soft_prompt_of(body, hidden_dim, max_prompt_length):
    """The request's soft prompt, float32 `[P, H]` (P = 0 without one), or
    K of them `[K, P, H]`; 422 if unfit."""
    if body.prompt_embeddings is None:
        return np.zeros((0, hidden_dim), "float32")
    try:
        prompt = decode_array(body.prompt_embeddings)
    except ArrayDecodeError as error:
        raise HTTPException(422, str(error)) from None
    if prompt.ndim not in (2, 3) or prompt.shape[-1] != hidden_dim:
        population = (
            "" if prompt.ndim == 2 else f" or [K, P, {hidden_dim}] (K candidates)"
        )
        raise HTTPException(
            422,
            f"prompt_embeddings must have shape [P, {hidden_dim}] "
            f"(P prompt vectors of the model's hidden size){population}, got "
            f"{list(prompt.shape)}.",
        )
    if prompt.ndim == 3 and prompt.shape[0] == 0:
        raise HTTPException(
            422, "prompt_embeddings [K, P, H] holds no candidates (K=0); send at least one."
        )
    if prompt.shape[-2] > max_prompt_length:
        raise HTTPException(
            422,
            f"prompt_embeddings has P={prompt.shape[-2]} vectors; the "
            f"limit is {max_prompt_length}.",
        )
    if not np.all(np.isfinite(prompt)):
        raise HTTPException(422, "prompt_embeddings holds NaN or inf values.")
    return prompt


def labels_of(body):
    """The request's labels, int32 `[B]`, or None; 422 if they do not fit the inputs."""
    if body.labels is None:
        return None
    labels = np.asarray(body.labels, "int32")
    if len(labels) != len(body.inputs):
        raise HTTPException(
            422,
            f"Got {len(labels)} labels for {len(body.inputs)} inputs; "
            "send one label per input, or none.",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(body.classes)):
        raise HTTPException(
            422,
            f"labels must be class indices in [0, {len(body.classes) - 1}].",
        )
    return labels
