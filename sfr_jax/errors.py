"""Errors a user can cause and fix. The command line prints them as one line and exits with code 2.

Every message names the file, key or value and, where it helps, what to do. Each class also derives from
the built-in exception a Python caller would expect (ValueError, FileNotFoundError, ...), so library users
can catch either. Anything else that escapes a verb is a failure of ours: exit code 1 with the traceback.
"""


class UserError(Exception):
    """Something the user can fix: a path, a value, a file's content, an option."""


class ConfigError(UserError, ValueError):
    """A config file, variant, override or stored run config that cannot work; the key is named."""


class InputError(UserError, ValueError):
    """An input file or value is unusable (wrong format, header, shape, range); the file or value is named."""


class UnknownNames(InputError, KeyError):
    """A checkpoint holds tensors (or lacks names) that the expected format does not know; all are listed."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingInput(UserError, FileNotFoundError):
    """A file or folder the user named does not exist or lacks a part it needs."""


class OutputError(UserError, OSError):
    """An output cannot be written where asked (exists, is a folder, not writable)."""


class CheckpointError(UserError, RuntimeError):
    """No usable checkpoint where one is needed, or one that does not fit the model."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM stopped a verb cleanly; `signal` is 'SIGINT' or 'SIGTERM'. BaseException, like
    KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, message: str, signal: str = "SIGINT"):
        super().__init__(message)
        self.signal = signal
