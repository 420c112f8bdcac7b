"""A gradient for keras-hub's key/value cache update on TensorFlow.

keras-hub's attention layers write new keys and values into the cache with
`ops.slice_update`, which TensorFlow runs as `XlaDynamicUpdateSlice`, an op
with no registered gradient ("no entry for: XlaDynamicUpdateSlice",
FIELD_NOTES). A prefix lives in the cache's first P slots, so training it
needs that gradient. JAX and PyTorch differentiate the update natively.
"""

import keras

_REGISTERED = False


def ensure_cache_update_gradient():
    """Registers the gradient of `XlaDynamicUpdateSlice` once (TF only).

    `out = operand` with `update` written at `indices`, so
    `d out / d operand` is the incoming gradient with the written window
    zeroed, `d out / d update` is that window, and the integer indices get
    none. Called when a prefixed model is built, never at import. If
    TensorFlow already has a gradient for the op, it is left alone.
    """
    global _REGISTERED
    if _REGISTERED or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf
    from tensorflow.compiler.tf2xla.python import xla

    def _dynamic_update_slice_grad(op, grad):
        operand, update, indices = op.inputs
        operand_grad = xla.dynamic_update_slice(grad, tf.zeros_like(update), indices)
        update_grad = tf.slice(grad, indices, tf.shape(update))
        return operand_grad, update_grad, None

    try:
        tf.RegisterGradient("XlaDynamicUpdateSlice")(_dynamic_update_slice_grad)
    except KeyError:
        pass  # TensorFlow (or another library) already provides one.
    _REGISTERED = True
