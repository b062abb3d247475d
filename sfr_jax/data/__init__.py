"""Raw readers, TFRecord writer, tf.data pipelines, augmentations, synthetic mini Sewer-ML."""
