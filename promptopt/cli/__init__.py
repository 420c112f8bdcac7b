"""The promptopt command line (`promptopt tune ...`)."""

import os

# The command line should show progress, not TensorFlow's chatter; a user's
# own setting wins. (Set here, before TensorFlow is imported.) Level 3, not
# 2: TensorFlow also logs advisories at ERROR level while it runs, e.g.
# oneDNN's "supports DT_INT64 only on platforms with AVX-512" on CPUs
# without AVX-512; real failures still reach Python as exceptions.
# `--verbose` (quiet_startup.import_quietly) lowers the level again.
USER_SET_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
