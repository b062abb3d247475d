"""sfr_jax: SFR-Net (multi-label zero-shot sewer defect detection) in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="sfr_jax",
    version="0.1.0",
    description="JAX/Flax reimplementation of SFR-Net for multi-label zero-shot sewer defect detection",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["sfr_jax", "sfr_jax.*"]),
    # built-in class sets (YAML); seed 0's tiny CLIP of the demo (sfr_jax/demo/shipped_clip.py)
    package_data={"sfr_jax.text": ["data/*"], "sfr_jax.demo": ["tiny_clip/*"]},
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "ml-collections>=1.1.0",
        "numpy",
        "tensorflow-cpu>=2.21",
        "tensorflow-datasets>=4.9.10",
        "tensorboard",
        "transformers>=5.0",
        "safetensors",
        "pillow",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "absl-py",
        "ftfy",
        "av>=18.1",
        "scikit-image>=0.26",  # the inspection quality gate's blur metric
    ],
    extras_require={
        # Export to / parity with PyTorch. On a GPU/TPU host install jax[cuda12] or jax[tpu] (same version) instead of plain jax.
        "torch": ["torch>=2.5"],
        # ONNX export (`sfr-jax export --format onnx`) and running it (predict/inspect --checkpoint X.onnx)
        "onnx": ["torch>=2.5", "onnx", "onnxscript", "onnxruntime"],
        # `train --dry-run --topology`: libtpu describes TPU slices to compile for on any machine (~700 MB).
        # The same pin as jax 0.10.2's own [tpu] extra; move both together.
        "tpu-aot": ["libtpu==0.0.42.*"],
        "test": ["torch>=2.5", "onnx", "onnxscript", "onnxruntime", "pytest", "pytest-timeout", "pytest-xdist", "scikit-learn",
                 "import-linter"],
    },
    entry_points={"console_scripts": ["sfr-jax=sfr_jax.main:main"]},
)
