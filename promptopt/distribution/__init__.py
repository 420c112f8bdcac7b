"""Scoring and tuning on several devices and processes (JAX backend).

`DistributionSetup` picks the devices and makes the Keras distribution
(`DataParallel`, or `ModelParallel` with a keras-hub layout map); local
evaluators built under it score on the mesh through `MeshScoring`: a
mini-batch split over the devices (`ShardedLoss`), or a population's
candidates (`PopulationScorer`). On TensorFlow, `mirrored_strategy`
gives `fit()` a tf.distribute.MirroredStrategy. In a multi-process run only
the first process writes files (`is_primary_process`). See
docs/distributed.md.
"""

from promptopt.lazy_names import lazy_exports

_EXPORTS = {
    "BatchSharding": "promptopt.distribution.batch_sharding",
    "DistributionSetup": "promptopt.distribution.device_mesh",
    "MeshScoring": "promptopt.distribution.mesh_scoring",
    "PopulationScorer": "promptopt.distribution.population_scorer",
    "ShardedLoss": "promptopt.distribution.sharded_loss",
    "is_primary_process": "promptopt.distribution.primary_process",
    "mirrored_strategy": "promptopt.distribution.tf_mirrored",
    "parse_devices": "promptopt.distribution.device_spec",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
