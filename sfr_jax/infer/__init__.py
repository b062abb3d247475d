"""Inference pieces that evaluation, training and the applications share: the model built from a run
config (split into trainable and frozen state), input normalisation, text features and the eval step."""
