"""The promptopt command line (`promptopt tune ...`)."""

import os

# The command line should show progress, not TensorFlow's start-up chatter;
# a user's own setting wins. (Set here, before TensorFlow is imported.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
