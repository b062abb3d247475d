"""The `sfr-jax` entry point: usage, unknown verbs."""
import subprocess
import sys

from sfr_jax import main as cli


def test_help_lists_every_verb(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in cli.VERBS:
        assert verb in out


def test_unknown_verb_is_an_error(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown verb 'trian'" in capsys.readouterr().err


def test_console_script_installed():
    result = subprocess.run([sys.executable, "-m", "sfr_jax.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "convert-clip" in result.stdout
