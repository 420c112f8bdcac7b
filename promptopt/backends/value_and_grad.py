"""Compiled forward and `value_and_grad` on whichever Keras backend is active.

Keras 3 has no backend-neutral gradient call, so this is the one place that
knows each backend's autodiff and compiler.
"""

import keras
import numpy as np


def compile_function(fn):
    """`tf.function` on TensorFlow (FIELD_NOTES: ~3x faster than eager on
    this CPU); other backends run `fn` as it is."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return _traced_once(tf.function(fn, reduce_retracing=True))
    return fn


def _traced_once(function):
    """Runs a `tf.function` through one shape-relaxed trace from the start.

    With `reduce_retracing` alone, the first call is traced for its exact
    shapes and only later calls get a relaxed trace, and the two round
    differently (5e-7 on a loss): a process's results would depend on which
    widths it had seen before, so a restarted server or a resumed run could
    drift from an uninterrupted one. Tracing the first call with every
    dimension of the integer inputs (token ids, masks, labels: what varies
    from batch to batch) unknown gives one graph for every width, whatever
    the history; float arguments (the candidate) keep their exact shapes.
    """
    import tensorflow as tf

    traced = []

    def relaxed(value):
        if isinstance(value, (np.ndarray, tf.Tensor)) or keras.ops.is_tensor(value):
            value = tf.convert_to_tensor(value)
            if value.dtype.is_integer:
                return tf.TensorSpec([None] * value.shape.rank, value.dtype)
            return tf.TensorSpec(value.shape, value.dtype)
        return value

    def call(*args):
        if not traced:
            specs = tf.nest.map_structure(relaxed, args)
            traced.append(function.get_concrete_function(*specs))
        return function(*args)

    return call


def make_value_and_grad(fn):
    """Returns `g(arrays, *args) -> (fn(arrays, *args), grads)`.

    `fn(arrays, *args)` returns a tuple whose first element is the scalar
    loss; gradients are taken with respect to each array in `arrays`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_value_and_grad(arrays, *args):
            with tf.GradientTape() as tape:
                for a in arrays:
                    tape.watch(a)
                out = fn(arrays, *args)
            return out, tape.gradient(out[0], arrays)

        compiled = _traced_once(tf.function(tf_value_and_grad, reduce_retracing=True))

        def run(arrays, *args):
            out, grads = compiled([tf.convert_to_tensor(a) for a in arrays], *args)
            return out, [g.numpy() for g in grads]

        return run
    if backend == "jax":
        import jax

        def scalar(arrays, *args):
            out = fn(arrays, *args)
            return out[0], out

        grad_fn = jax.value_and_grad(scalar, has_aux=True)

        def run(arrays, *args):
            (_, out), grads = grad_fn([jax.numpy.asarray(a) for a in arrays], *args)
            return out, [np.asarray(g) for g in grads]

        return run
    if backend == "torch":
        import torch

        def run(arrays, *args):
            tensors = [torch.tensor(np.asarray(a), requires_grad=True) for a in arrays]
            out = fn(tensors, *args)
            out[0].backward()
            return out, [t.grad.detach().cpu().numpy() for t in tensors]

        return run
    raise NotImplementedError(f"No gradients for the {backend!r} backend.")
