"""Raw readers, the one image loader, TFRecord preparation, tf.data pipelines, augmentations, and the
synthetic mini Sewer-ML (frames and inspection videos)."""
