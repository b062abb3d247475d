"""The only place that knows foreign formats: name tables (Hugging Face, OpenAI, the reference SFR-Net),
PyTorch and ONNX exports, imports of PyTorch checkpoints, and the torch-only SFR-Net."""
