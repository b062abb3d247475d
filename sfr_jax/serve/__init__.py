"""Model backends for the applications (predict, inspect): a trained SFR-Net from a workdir, a PyTorch
export or an ONNX file, all behind one Scorer interface with the decisions that go with it."""
