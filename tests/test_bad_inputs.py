"""Every bad input of the probe (tests/bad_input_cases.py) ends in the promised way: the exit code, a last
line of stderr that names the file, key or value, and no traceback; the noted faults are survived and said."""
import re

import pytest

import bad_input_cases as probe
from sfr_jax import main as sfr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return probe.build_inputs(tmp_path_factory.mktemp("probe"))


def _run(case_argv, inputs, capsys):
    code = sfr.main(probe.argv(case_argv, inputs))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name, case_argv, want, pattern", probe.CASES, ids=[c[0] for c in probe.CASES])
def test_bad_input_is_one_clear_line(name, case_argv, want, pattern, inputs, capsys):
    code, err = _run(case_argv, inputs, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == want, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert lines and re.search(pattern, lines[-1]), lines[-1:] if lines else err


@pytest.mark.parametrize("name, case_argv, want, pattern", probe.NOTED, ids=[c[0] for c in probe.NOTED])
def test_faults_are_survived_and_said(name, case_argv, want, pattern, inputs, capsys):
    code, err = _run(case_argv, inputs, capsys)
    assert code == want, err[-2000:]
    assert "Traceback" not in err and re.search(pattern, err), err[-2000:]


def test_a_failed_start_leaves_no_workdir(inputs, capsys):
    """Before, a run that failed at start-up left a workdir holding only train.log, which a rerun then took
    for a run of its own."""
    import os

    workdir = os.path.join(inputs["tmp"], "never")
    args = [a.replace(os.path.join(inputs["tmp"], "t_new"), workdir) for a in inputs["train_args"]]
    assert sfr.main(["train", *args, f"--config.clip_dir={inputs['tmp']}/noclip"]) == 2
    assert not os.path.exists(workdir)
