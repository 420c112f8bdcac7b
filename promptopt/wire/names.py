"""The names the server and its clients must spell alike.

Plain strings, no imports, so that a client reads them without the web
stack or the model stack.
"""

INFO_PATH = "/info"
STATS_PATH = "/stats"
SCORE_PATH = "/v1/score"
COMPLETIONS_PATH = "/v1/completions"

# The header that makes a retried request free: a repeated key is answered
# from the server's log (`RequestLog`) instead of being computed again.
IDEMPOTENCY_HEADER = "Idempotency-Key"

# The values of a score request's `loss` field. promptopt.tasks.losses
# computes them with Keras and keeps its own copy of the names, since
# importing promptopt.tasks loads Keras; tests/evaluators/test_light_client.py
# checks that the two agree.
LOSSES = ("cross_entropy", "hinge", "negative_accuracy")
