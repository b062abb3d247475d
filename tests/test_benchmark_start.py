"""Benchmarks that import JAX at start-up keep it to the CPU where libtpu is installed but no TPU chip is, as the
CLI does (sfr_jax.topology.leave_out_absent_tpu), instead of printing libtpu's start-up warnings."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script", ["train_step.py", "scaling.py"])
def test_benchmark_starts_jax_on_the_cpu_when_libtpu_has_no_chip(tmp_path, script):
    if os.path.exists("/dev/accel0"):
        pytest.skip("this machine has TPU chips")
    # a stand-in libtpu package: what JAX would find and try to start, like the real one, without chips
    (tmp_path / "libtpu").mkdir()
    (tmp_path / "libtpu" / "__init__.py").write_text("def get_library_path():\n    return '/nonexistent/libtpu.so'\n")
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), ROOT])
    code = ("import importlib.util, os, sys; "
            f"spec = importlib.util.spec_from_file_location('bench', {os.path.join(ROOT, 'benchmarks', script)!r}); "
            "spec.loader.exec_module(importlib.util.module_from_spec(spec)); import jax; "
            "print(os.environ.get('JAX_PLATFORMS'), jax.devices()[0].platform)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["cpu", "cpu"] and "tpu" not in proc.stderr.lower(), proc.stderr
