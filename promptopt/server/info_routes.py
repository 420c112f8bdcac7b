"""`/info` (the model and the limits) and `/stats` (the request log's counters)."""

from fastapi import APIRouter
from fastapi import Depends

from promptopt.server.auth import authorize
from promptopt.server.server_state import server_state
from promptopt.wire.info_bodies import InfoResponse
from promptopt.wire.info_bodies import StatsResponse
from promptopt.wire.names import INFO_PATH
from promptopt.wire.names import STATS_PATH

router = APIRouter(dependencies=[Depends(authorize)])


@router.get(INFO_PATH, response_model=InfoResponse)
def info(state=Depends(server_state)):
    engine, config = state.engine, state.config
    return InfoResponse(
        model=engine.model_id,
        hidden_dim=engine.hidden_dim,
        embedding_std=engine.embedding_std,
        max_batch_size=config.max_batch_size,
        max_prompt_length=config.max_prompt_length,
        max_request_bytes=config.max_request_bytes,
        max_logprobs=config.max_logprobs,
        auth_required=config.token is not None,
    )


@router.get(STATS_PATH, response_model=StatsResponse)
def stats(state=Depends(server_state)):
    log = state.log
    return StatsResponse(
        computed_requests=log.computed_requests,
        replayed_requests=log.replayed_requests,
        input_tokens=log.input_tokens,
        rows=log.rows,
        forward_passes=state.batcher.passes,
    )
