"""The user's Python: a config file that cannot load is a one-line user error naming the file and the line
where Python stopped (the line is planted here, so the expected number is known independently)."""
import os

import pytest

from sfr_jax import config as cfg
from sfr_jax import main as sfr
from sfr_jax.errors import ConfigError

GOOD = "from sfr_jax.config import base_config\n\ndef get_config(arg=None):\n    return base_config()\n"

# (file text, the line Python stops at or None, a fragment the message must hold)
FILES = [
    ("x = 1\ndef get_config(arg=None):\n    return {1: (2\n", 3, "syntax error"),
    ("def get_config(arg=None):\n    if True:\n        a = 1\n      b = 2\n", 4, "syntax error"),
    ("import os\n\nvalue = spelt_wrong + 1\n" + GOOD, 3, "NameError: name 'spelt_wrong' is not defined"),
    ("import sfr_jax_no_such_module\n" + GOOD, 1, "ModuleNotFoundError"),
    (GOOD.replace("    return base_config()", "    c = base_config()\n    c.optim.head_lr = 1 / 0\n    return c"),
     5, "ZeroDivisionError"),
    ("def get_config(arg=None):\n    raise RuntimeError('pick a\\ndata set')\n", 2, "RuntimeError: pick a data set"),
    ("CONFIG = {}\n", None, "no get_config(arg=None) function"),
    ("def get_config(arg=None):\n    c = dict(a=1)\n", None, "returned NoneType"),
    ("def get_config(arg=None):\n    return [1, 2]\n", None, "returned list"),
]


@pytest.mark.parametrize("text, line, fragment", FILES)
def test_a_config_file_that_cannot_load_names_the_file_and_line(text, line, fragment, tmp_path):
    path = tmp_path / "my_config.py"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        cfg.parse(["--config", str(path)])
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}:" if line else f"{path}:"), message
    assert fragment in message and "\n" not in message, message


def test_through_the_command_one_line_exit_2_no_traceback(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text("def get_config(arg=None)\n    return None\n")  # the colon missing on line 1
    assert sfr.main(["train", f"--config={path}:bf16", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"sfr-jax train: {path}, line 1: syntax error in the config file (expected ':')", err
    assert not os.path.exists(tmp_path / "w")


@pytest.mark.parametrize("override", ["optim.head_lr=inf", "loss.temperature=-inf", "model.adjacency_threshold=nan"])
def test_an_override_must_be_finite(override, tmp_path):
    path = tmp_path / "ok.py"
    path.write_text(GOOD)
    with pytest.raises(ConfigError, match=f"config value {override.split('=')[0]}=.* must be a finite number"):
        cfg.parse(["--config", str(path), f"--config.{override}"])


def test_errors_of_our_own_keep_their_message(tmp_path):
    """An unknown variant raised by a config file's get_config is our ConfigError, not the user's bug."""
    with pytest.raises(ConfigError, match="unknown config variant 'nope'"):
        cfg.parse(["--config", os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py") + ":nope"])
    with pytest.raises(ConfigError, match="no_such.py: no such config file"):
        cfg.parse(["--config", str(tmp_path / "no_such.py")])
