"""The limits and options of one server (`create_app`'s `config`)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Limits and options of `create_app`.

    Args:
        token: str or None; when set, every route except `/openapi.json`
            and `/docs` needs `Authorization: Bearer <token>` (else 401).
        max_request_bytes: int, larger bodies get 413.
        max_batch_size: int, most inputs per request (else 413).
        max_prompt_length: int, most soft-prompt vectors P (else 422).
        max_input_chars: int, longest input or prompt text (else 413).
        max_logprobs: int, largest `logprobs` for `/v1/completions`.
        max_batch_rows: int, rows merged into one forward pass across
            concurrent requests (`MicroBatcher`; 0 = no merging, the
            default: on the 2-core CPU, 8 clients x 4 SST-2 sentences gave
            3.6 req/s unmerged against 2.3 merged to 32 rows, since merged
            rows pad to the longest text; see experiments/results/
            api_load_test.md). Worth trying on an accelerator.
        log_file: str or None, the `RequestLog` path.
        max_new_tokens: int, largest `max_tokens` of a generation request
            (else 422).
        max_generation_rows: int, rows of concurrent generation requests
            (any prompts) merged into one batch (0 = no merging). On the
            2-core CPU a decoding step of 8 rows cost about twice one of 1
            row, and merging served 1.7x the requests per second
            (experiments/results/serve_load_test.md).

    Example:

    ```python
    app = create_app(engine, ServerConfig(token="s3cret", log_file="log.jsonl"))
    ```
    """

    token: str = None
    # 16 MiB: a BBTv2 population of deep suffixes on SmolLM2 (K = 20,
    # [20, 30, 2, 5, 3, 64] float32) is about 6 MB in base64.
    max_request_bytes: int = 16 * 1024 * 1024
    max_batch_size: int = 64
    max_prompt_length: int = 128
    max_input_chars: int = 4000
    max_logprobs: int = 20
    max_batch_rows: int = 0
    log_file: str = None
    max_new_tokens: int = 256
    max_generation_rows: int = 16
