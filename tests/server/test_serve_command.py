from promptopt.cli.main import build_parser
from promptopt.cli.main import main
from promptopt.cli.serve_command import server_config


def test_serve_flags_become_the_server_config(monkeypatch):
    monkeypatch.setenv("PROMPTOPT_SERVER_TOKEN", "from-env")
    args = build_parser().parse_args(
        ["serve", "--model", "m", "--max-batch-rows", "0", "--log-file", "log.jsonl"]
    )
    config = server_config(args)
    assert config.token == "from-env"
    assert config.max_batch_rows == 0 and config.log_file == "log.jsonl"


def test_bad_limit_is_a_clear_error_before_loading_any_model(capsys):
    assert main(["serve", "--model", "no-such-model", "--max-batch-size", "0"]) == 2
    assert "promptopt serve: error: --max-batch-size must be at least 1." in capsys.readouterr().err
