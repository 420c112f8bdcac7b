"""Which process of a multi-process run writes the run's files."""

import keras


def is_primary_process():
    """True unless this is a process other than the first of a multi-process run.

    In a multi-process JAX run (`keras.distribution.initialize`, one
    process per host) every process computes the same replicated loss,
    gradient and prompt, so one copy of the checkpoint, prompt file and
    TensorBoard events is enough: process 0 writes them, the others only
    read (a resumed run loads the checkpoint in every process, so the
    output directory must be on storage every host sees). A single process,
    and every backend other than JAX, is primary.
    """
    if keras.backend.backend() != "jax":
        return True
    import jax

    return jax.process_index() == 0
