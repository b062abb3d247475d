"""Ctrl-C and SIGTERM noted where no library can swallow them. Python turns Ctrl-C into KeyboardInterrupt
wherever the main thread happens to be, and a library that catches broadly (torch.onnx's exporter wraps
whatever its tracer raised) turns it into its own error or goes on. The handlers installed by `noted()`
(sfr_jax.cli runs every verb inside it) also remember the signal, so the verb still ends with 130 / 143, and
`check()` before every commit of an output (sfr_jax.fileio) keeps a swallowed interrupt from publishing one.
"""
from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading

from sfr_jax.errors import Interrupted

HINT = "interrupted; run the same command to resume"
_received: list[str] = []  # names of the signals received inside `noted()`, oldest first


def received() -> str | None:
    """'SIGINT' or 'SIGTERM' when one arrived inside the running `noted()` block, else None."""
    return _received[0] if _received else None


def check() -> None:
    """Raise the interruption again if a signal arrived (and something swallowed what its handler raised)."""
    if _received:
        raise KeyboardInterrupt if _received[0] == "SIGINT" else Interrupted(HINT, _received[0])


def _in_gc_callback(frame) -> bool:
    """Whether the main thread is inside a garbage-collector callback (JAX registers one) or an object's
    finaliser (`__del__`, e.g. Orbax's async manager's): Python prints and ignores an exception raised there,
    which is how a Ctrl-C during an ONNX export used to vanish."""
    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _raise_later(signum) -> None:
    """Deliver the signal again in a moment, when the main thread has left the place that would ignore it."""
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()


def _on_sigint(signum, frame):
    _received.append("SIGINT")
    if _in_gc_callback(frame):
        return _raise_later(signum)
    raise KeyboardInterrupt


def _on_sigterm(signum, frame):
    _received.append("SIGTERM")
    if _in_gc_callback(frame):
        return _raise_later(signum)
    raise Interrupted(HINT, "SIGTERM")


@contextlib.contextmanager
def noted():
    """Within the block Ctrl-C raises KeyboardInterrupt and SIGTERM Interrupted in the main thread, both
    remembered for `received()`. A disposition someone chose is kept: SIGINT ignored (a background job, a
    test worker) or a handler of a verb's own (train's graceful stop installs its own inside)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    mine = {signal.SIGINT: (_on_sigint, (signal.default_int_handler,)),
            signal.SIGTERM: (_on_sigterm, (signal.SIG_DFL, None))}
    previous = {}
    for sig, (handler, replaceable) in mine.items():
        if signal.getsignal(sig) in replaceable:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
