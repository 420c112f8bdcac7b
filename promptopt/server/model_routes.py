"""`/v1/models`: the base model and every tuned prompt served, OpenAI's list format."""

from fastapi import APIRouter
from fastapi import Depends

from promptopt.server.auth import authorize
from promptopt.server.openai_errors import served_prompt
from promptopt.server.server_state import server_state
from promptopt.wire.model_bodies import MODELS_PATH
from promptopt.wire.model_bodies import ModelCard
from promptopt.wire.model_bodies import ModelList

router = APIRouter(dependencies=[Depends(authorize)])


def card(served, base_model):
    """The `ModelCard` of one `ServedPrompt`."""
    return ModelCard(
        id=served.name,
        created=served.created,
        kind=served.kind,
        prompt_length=served.length,
        base_model=base_model,
        ensemble_size=len(served.members) if served.kind == "ensemble" else None,
    )


@router.get(MODELS_PATH, response_model=ModelList)
def list_models(state=Depends(server_state)):
    base = state.prompts.model_id
    return ModelList(data=[card(served, base) for served in state.prompts.entries()])


@router.get(MODELS_PATH + "/{name:path}", response_model=ModelCard)
def retrieve_model(name: str, state=Depends(server_state)):
    return card(served_prompt(state, name, generates=False), state.prompts.model_id)
