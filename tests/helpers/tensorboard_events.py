"""Reading TensorBoard event files back, as TensorBoard itself does."""

import glob
import os

import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2


def read_events(split_dir):
    """TensorBoard's event files in `split_dir` -> {tag: [(step, plugin, value)]}."""
    summaries = {}
    for path in sorted(glob.glob(os.path.join(split_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "hparams":
                    content = value.metadata.plugin_data.content
                    data = plugin_data_pb2.HParamsPluginData.FromString(content)
                else:
                    data = tf.make_ndarray(value.tensor)
                summaries.setdefault(value.tag, []).append((event.step, plugin, data))
    return summaries
