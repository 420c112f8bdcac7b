"""`promptopt serve --prompt NAME=PATH` and `--config`: which names are served."""

import json

import pytest

from promptopt.cli.main import build_parser
from promptopt.cli.serve_command import read_serve_config
from promptopt.cli.serve_command import served_ensembles
from promptopt.cli.serve_command import served_names


def _args(*argv):
    return build_parser().parse_args(["serve", *argv])


def test_config_file_then_flags(tmp_path):
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"model": "m", "prompts": {"a": "a.npz", "b": "/abs/b.npz"}}))
    assert served_names(_args("--config", str(config))) == (
        "m", {"a": str(tmp_path / "a.npz"), "b": "/abs/b.npz"},
    )
    model, prompts = served_names(
        _args("--config", str(config), "--model", "n", "--prompt", "b=new.npz", "--prompt", "c=c.npz")
    )
    assert model == "n" and prompts == {"a": str(tmp_path / "a.npz"), "b": "new.npz", "c": "c.npz"}
    assert served_names(_args()) == ("smollm2-135m", {})


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not a readable JSON file"),
        (json.dumps({"model": "m", "prompt": {}}), r"it has unknown keys \['prompt'\]"),
        (json.dumps({"prompts": ["a.npz"]}), r"its prompts are a list, not \{name: path\}"),
        ("[]", 'must be a JSON object with "model" and "prompts".*it holds a JSON list'),
    ],
)
def test_bad_config_files_are_refused(tmp_path, content, message):
    config = tmp_path / "serve.json"
    config.write_text(content)
    with pytest.raises(ValueError, match=message):
        served_names(_args("--config", str(config)))


def test_a_prompt_flag_must_be_name_equals_path():
    with pytest.raises(ValueError, match="--prompt 'a.npz' is not NAME=PATH; give e.g."):
        served_names(_args("--prompt", "a.npz"))


def test_the_config_file_is_read_once_for_prompts_and_ensembles(tmp_path):
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"prompts": {"a": "a.npz"},
                                  "ensembles": {"e": {"prompts": ["a.npz", "b.npz"],
                                                      "combine": "vote"}}}))
    args = _args("--config", str(config), "--ensemble", "f=x.npz,y.npz")
    parsed = read_serve_config(args)
    config.unlink()  # what was parsed is all the two need
    assert served_names(args, parsed) == ("smollm2-135m", {"a": str(tmp_path / "a.npz")})
    assert served_ensembles(args, parsed) == {
        "e": ([str(tmp_path / "a.npz"), str(tmp_path / "b.npz")], "vote"),
        "f": (["x.npz", "y.npz"], "mean"),
    }
