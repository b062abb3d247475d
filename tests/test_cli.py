"""The `sfr-jax` entry point (usage, unknown verbs, the installed script) and the one exit-code convention
every verb runs under (sfr_jax.cli): user errors 2 in one line, failures 1 with the traceback, 130/143."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from sfr_jax import cli, options
from sfr_jax import main as sfr
from sfr_jax.errors import InputError


def test_help_lists_every_verb(capsys):
    assert sfr.main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in sfr.VERBS:
        assert verb in out


def test_unknown_verb_is_an_error(capsys):
    assert sfr.main(["trian"]) == 2
    assert "unknown verb 'trian'" in capsys.readouterr().err


def test_console_script_installed():
    script = os.path.join(os.path.dirname(sys.executable), "sfr-jax")  # the entry point pip installed
    assert os.path.isfile(script) and os.access(script, os.X_OK), script
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "convert-clip" in result.stdout


@cli.verb("sfr-jax toy")
def _toy(argv):
    what = argv[0]
    if what == "user":
        raise InputError("/data/x.csv: missing column(s) RB\nand a second line")
    if what == "bug":
        return {}["missing key"]
    if what == "ctrl-c":
        raise KeyboardInterrupt
    return int(what)


@pytest.mark.parametrize("argv, code, first_line, traceback", [
    (["0"], 0, None, False),
    (["user"], 2, "sfr-jax toy: /data/x.csv: missing column(s) RB; and a second line", False),
    (["user", "--debug"], 2, "Traceback (most recent call last):", True),
    (["bug"], 1, "Traceback (most recent call last):", True),
    (["ctrl-c"], 130, "sfr-jax toy: interrupted; run the same command to resume", False),
])
def test_exit_codes_and_messages(argv, code, first_line, traceback, capsys):
    assert _toy(argv) == code
    err = capsys.readouterr().err
    if first_line:
        assert err.splitlines()[0] == first_line
    assert ("Traceback" in err) == traceback
    if code == 2 and not traceback:
        assert len(err.strip().splitlines()) == 1


def test_sfr_jax_debug_variable_shows_user_error_tracebacks(capsys, monkeypatch):
    monkeypatch.setenv("SFR_JAX_DEBUG", "1")
    assert _toy(["user"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_sigterm_stops_a_verb_with_143_and_one_line(tmp_path):
    script = ("import time\nfrom sfr_jax import cli\n"
              "@cli.verb('sfr-jax slow')\ndef slow(argv):\n    print('started', flush=True)\n    time.sleep(60)\n"
              "raise SystemExit(slow([]))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.strip() == "sfr-jax slow: interrupted; run the same command to resume"


@pytest.mark.parametrize("verb", sorted(sfr.VERBS))
def test_a_usage_error_of_every_verb_is_one_line(verb, capsys):
    """argparse printed an 8-15 line usage block before its one error line; now the one line names the
    option and points to --help, with exit 2."""
    assert sfr.main([verb, "--no-such-option", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"sfr-jax {verb}: error: "), err
    assert err.rstrip().endswith(f"(see `sfr-jax {verb} --help`)"), err


def test_a_missing_required_option_is_one_line(capsys):
    assert sfr.main(["export", "--workdir", "w"]) == 2
    assert capsys.readouterr().err == ("sfr-jax export: error: the following arguments are required: --to "
                                       "(see `sfr-jax export --help`)\n")


@pytest.mark.parametrize("kind, text, value", [
    (options.positive_int, "3", 3), (options.positive_int, "0", None), (options.positive_int, "-2", None),
    (options.positive_int, "1.5", None), (options.positive_int, "1e3", None), (options.positive_int, "x", None),
    (options.nonnegative_int, "0", 0), (options.nonnegative_int, "-1", None),
    (options.finite_float, "-2.5", -2.5), (options.finite_float, "inf", None), (options.finite_float, "-Infinity", None),
    (options.finite_float, "nan", None), (options.finite_float, "1e999", None), (options.finite_float, "1e-320", 1e-320),
    (options.positive_float, "1e-320", 1e-320), (options.positive_float, "0", None), (options.positive_float, "-0.0", None),
    (options.fraction, "0", 0.0), (options.fraction, "0.999", 0.999), (options.fraction, "1", None), (options.fraction, "-0.1", None),
    (options.probability, "1", 1.0), (options.probability, "1.0000001", None), (options.probability, "nan", None),
])
def test_number_types(kind, text, value):
    import argparse

    if value is None:
        with pytest.raises(argparse.ArgumentTypeError, match=f"'{re.escape(text)}' is not "):
            kind(text)
    else:
        assert kind(text) == value and type(kind(text)) is type(value)


@pytest.mark.parametrize("argv, option", [
    (["eval", "--workdir", "w", "--batch", "0"], "--batch"),
    (["calibrate", "--workdir", "w", "--batch", "-8"], "--batch"),
    (["eval", "--workdir", "w", "--step", "-1"], "--step"),
    (["convert-clip", "--from", "a", "--out", "b", "--image-size", "0"], "--image-size"),
    (["synth", "--out", "s", "--val-fraction", "inf"], "--val-fraction"),
    (["synth", "--out", "s", "--normal-fraction", "1.5"], "--normal-fraction"),
    (["demo", "--steps", "0"], "--steps"),
    (["train", "--config", "configs/demo.py", "--num-processes", "-2"], "--num-processes"),
])
def test_numbers_at_the_edges_name_the_option(argv, option, capsys):
    assert sfr.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {option}: " in err, err
