"""Tuning runs from one config: `TuneConfig` and `TuningJob` (used by the CLI).

`promptopt.tuning.config` imports only the standard library, so that the
command line can describe every option without loading TensorFlow.
"""
