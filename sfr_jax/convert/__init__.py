"""The only place that knows foreign parameter names: Hugging Face, OpenAI, reference SFR-Net, PyTorch export."""
