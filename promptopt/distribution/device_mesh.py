"""Which devices a run uses, and the Keras distribution that lays it out."""

import contextlib
import os

import keras
import numpy as np

from promptopt.distribution.device_spec import parse_devices

POPULATION_AXES = ("candidates", "examples")
# The mesh's axis names, those keras-hub's `get_layout_map` expects.
BATCH_AXIS = "batch"
MODEL_AXIS = "model"
# The setup made current by `apply()` or `scope()`; see `current()`.
_current = None
_joined_processes = False


class DistributionSetup:
    """A `keras.distribution.DeviceMesh` and the distribution over it.

    With `model_parallel=1` (the default) the mesh is 1-D, `[N]` over the
    axis "batch", and the distribution is `keras.distribution.DataParallel`:
    every device holds the whole frozen backbone and the prompt, and the
    examples of a mini-batch (or the candidates of a population) are split
    over the devices. With `model_parallel=M` the mesh is `[N / M, M]` over
    ("batch", "model") and the distribution is `ModelParallel` with
    `layout_map_fn(mesh)` (e.g. keras-hub's `LlamaBackbone.get_layout_map`),
    for a backbone that does not fit one device; a layout axis that does not
    divide a weight's dimension (a vocabulary of 32001 over 2 devices) is
    replicated instead of refused.

    Models built while the setup is current (`apply()`, or inside
    `scope()`) get their variables laid out at creation, and evaluators
    built then (`LocalEvaluator` and its subclasses) score on the mesh
    (`promptopt.distribution.MeshScoring`). JAX backend only.

    In a multi-process run (one process per host), set
    `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's `host:port`),
    `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`
    before the first JAX computation; the first setup then joins the
    processes through `keras.distribution.initialize()`, and `devices`
    counts the devices of all of them.

    Args:
        devices: "all", an int N (the first N of
            `keras.distribution.list_devices()`), or a list of device
            names such as `["cpu:0", "cpu:1"]`.
        model_parallel: int M, devices per model replica (dividing N).
        layout_map_fn: callable `device_mesh -> keras.distribution.LayoutMap`;
            needed when `model_parallel > 1`.
        population: what a forward-only population (CMA-ES, BBTv2: K > 1
            candidates) splits over the "batch" axis: "candidates" (K / N
            candidates each, every one on the whole mini-batch) or
            "examples" (one candidate at a time, B / N examples each).
        device_type: "cpu", "gpu", "tpu" or None (Keras' default:
            accelerators when there are any).

    Example:
    ```python
    setup = DistributionSetup("all")
    with setup.scope():
        model = PromptedModel(backbone_fn(), task, prompt_length=20)
        evaluator = KerasEvaluator(model, x, y, batch_size=32)
    evaluator.evaluate(candidates, step=0, compute_gradients=True)

    mp = DistributionSetup(4, model_parallel=2,
                           layout_map_fn=keras_hub.models.LlamaBackbone.get_layout_map)
    ```
    """

    def __init__(
        self, devices="all", model_parallel=1, layout_map_fn=None,
        population="candidates", device_type=None,
    ):
        if keras.backend.backend() != "jax":
            raise ValueError(
                "promptopt's device setting needs the JAX backend; Keras "
                f"{keras.__version__} distributes only JAX (its TensorFlow "
                "distribution is a prototype and there is none for torch). "
                "Install promptopt[jax] and run with KERAS_BACKEND=jax, or "
                "leave devices unset for one device."
            )
        if population not in POPULATION_AXES:
            raise ValueError(
                f"population must be one of {POPULATION_AXES}, got {population!r}."
            )
        model_parallel = int(model_parallel)
        _join_processes_from_environment()
        if model_parallel > 1 and layout_map_fn is None:
            raise ValueError(
                "model_parallel > 1 shards the backbone's weights and needs "
                "layout_map_fn, e.g. keras_hub.models.LlamaBackbone.get_layout_map."
            )
        names = _device_names(devices, device_type)
        if model_parallel < 1 or len(names) % model_parallel:
            raise ValueError(
                f"model_parallel must divide the {len(names)} devices, got "
                f"{model_parallel}. Use a divisor of {len(names)}."
            )
        self.devices = devices
        self.model_parallel = model_parallel
        self.layout_map_fn = layout_map_fn
        self.population = population
        self.device_type = device_type
        if model_parallel == 1:
            self.device_mesh = keras.distribution.DeviceMesh(
                (len(names),), (BATCH_AXIS,), names)
            self.distribution = keras.distribution.DataParallel(
                device_mesh=self.device_mesh)
        else:
            self.device_mesh = keras.distribution.DeviceMesh(
                (len(names) // model_parallel, model_parallel), (BATCH_AXIS, MODEL_AXIS), names)
            self.distribution = _FittingModelParallel(
                layout_map=layout_map_fn(self.device_mesh), batch_dim_name=BATCH_AXIS)

    @classmethod
    def current(cls):
        """The setup of Keras' current distribution, or None.

        None on other backends and when no distribution is set; a
        distribution set with `keras.distribution.set_distribution` itself
        is wrapped, with `population="candidates"`.
        """
        if keras.backend.backend() != "jax":
            return None
        distribution = keras.distribution.distribution()
        if distribution is None:
            return None
        if _current is not None and _current.distribution is distribution:
            return _current
        setup = cls.__new__(cls)
        setup.devices = list(distribution.device_mesh.devices.flatten())
        setup.model_parallel = distribution.device_mesh.devices.size // _batch_size(distribution)
        setup.layout_map_fn = None
        setup.population = "candidates"
        setup.device_type = None
        setup.device_mesh = distribution.device_mesh
        setup.distribution = distribution
        return setup

    @property
    def num_devices(self):
        return int(self.device_mesh.devices.size)

    @property
    def data_shards(self):
        """How many ways examples or candidates are split: the "batch" axis."""
        return _batch_size(self.distribution)

    def apply(self):
        """Makes this setup current for the rest of the process; returns it."""
        global _current
        _current = self
        keras.distribution.set_distribution(self.distribution)
        return self

    @contextlib.contextmanager
    def scope(self):
        """Makes this setup current inside a `with` block."""
        global _current
        previous = _current
        _current = self
        try:
            with self.distribution.scope():
                yield self
        finally:
            _current = previous

    def __repr__(self):
        shape = "x".join(str(s) for s in self.device_mesh.shape)
        kind = "DataParallel" if self.model_parallel == 1 else "ModelParallel"
        return (f"DistributionSetup({kind} over {shape} "
                f"{self.device_mesh.axis_names}, population={self.population!r})")


class _FittingModelParallel(keras.distribution.ModelParallel):
    """`ModelParallel` that replicates a layout axis not dividing its dim.

    keras-hub's layout maps shard e.g. the token embedding's vocabulary
    axis; jax refuses a vocabulary (283, 32001) that the mesh axis does not
    divide, and replicating that one axis costs only memory.
    """

    def get_variable_layout(self, variable):
        layout = super().get_variable_layout(variable)
        mesh_shape = dict(zip(self.device_mesh.axis_names, self.device_mesh.shape))
        axes = [
            axis if axis is None or int(dim) % _axis_size(axis, mesh_shape) == 0 else None
            for axis, dim in zip(layout.axes, variable.shape)
        ]
        if list(axes) == list(layout.axes):
            return layout
        return keras.distribution.TensorLayout(axes, self.device_mesh)


def _axis_size(axis, mesh_shape):
    names = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([mesh_shape[n] for n in names]))


def _batch_size(distribution):
    mesh = distribution.device_mesh
    return int(mesh.shape[list(mesh.axis_names).index(distribution.batch_dim_name)])


def _device_names(devices, device_type):
    available = keras.distribution.list_devices(device_type)
    if isinstance(devices, (list, tuple)):
        missing = [d for d in devices if d not in available]
        if missing or not devices:
            raise ValueError(
                f"Devices {missing or devices} are not available; this process "
                f"sees {available}.")
        return list(devices)
    count = parse_devices(devices)
    if count == "all":
        return available
    if count > len(available):
        raise ValueError(
            f"devices={count} asks for more devices than the {len(available)} "
            f"available ({', '.join(available)}). Use devices='all' or at most "
            f"{len(available)}; on a CPU, XLA_FLAGS="
            "--xla_force_host_platform_device_count=N (set before JAX is "
            "imported) makes N virtual devices."
        )
    return available[:count]


def _join_processes_from_environment():
    """`keras.distribution.initialize()` once, if the launcher asked for it."""
    global _joined_processes
    if _joined_processes or "KERAS_DISTRIBUTION_NUM_PROCESSES" not in os.environ:
        return
    keras.distribution.initialize()
    _joined_processes = True
