"""What differs between Keras backends, kept in one place.

- `value_and_grad`: `compile_function` (a compiled forward pass) and
  `make_value_and_grad`; used by the gradient evaluators and by the
  server's `ScoringEngine`, which is why it belongs to neither.
"""
