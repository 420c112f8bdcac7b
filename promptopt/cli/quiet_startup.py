"""Imports TensorFlow and keras-hub without their C++ start-up lines."""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_captured(enabled=True):
    """Sends file descriptor 2 to a temporary file inside the block.

    TensorFlow 2.21 prints absl lines (cudart, oneDNN, CPU features) from
    C++ while it is imported, even with TF_CPP_MIN_LOG_LEVEL=3, so Python's
    `sys.stderr` cannot hold them back; the descriptor itself is swapped.
    If the block raises, what was captured is written out, so nothing that
    explains a failure is lost.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode("utf-8", "replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_quietly(verbose=False):
    """Imports the heavy stack once; quiet unless `verbose`."""
    from promptopt.cli import USER_SET_TF_LOG_LEVEL

    if verbose and not USER_SET_TF_LOG_LEVEL and "tensorflow" not in sys.modules:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # everything TensorFlow says
    with native_stderr_captured(enabled=not verbose):
        import keras
        import keras_hub  # noqa: F401

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # Device discovery prints "failed call to cuInit" on machines
            # without a GPU; do it now, while the descriptor is captured.
            tf.config.list_physical_devices()
    if not verbose:
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:
            pass
