"""The demo's stage engine: cached, resumable, timed stages under OUT/stages.

A stage is done when its marker OUT/stages/NAME.json holds the same key: a digest of its parameters and of
the keys of the stages it depends on (by default the stage before it), so a changed parameter redoes that
stage and every stage after it. A stage left unfinished (NAME.started) resumes when its key is the same and
starts clean otherwise. Verbs are run by name through the one verb table (sfr_jax.verbs).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import time
from typing import Callable, Optional, Sequence

from sfr_jax import verbs
from sfr_jax.fileio import write_json


def say(text: str = "") -> None:
    """Print a line of the demo's screen at once (stages run for minutes)."""
    print(text, flush=True)


def show(path: str) -> str:
    """A path relative to the working directory when it lies below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def digest(payload) -> str:
    """A short stable hash of a JSON-able payload (cache keys)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str) -> str:
    """A short hash of a file's bytes, "missing" when it cannot be read (a config file in a cache key)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()[:16]
    except OSError:
        return "missing"


class StageFailed(Exception):
    """A verb the demo ran failed; its own message is already on the screen."""


def run_verb(argv: Sequence[str], quiet: bool = False) -> int:
    """Run `sfr-jax ARGV` in this process through the verb table, echoing the command line first."""
    say("    $ sfr-jax " + " ".join(argv))
    if quiet:
        with contextlib.redirect_stdout(io.StringIO()):
            code = verbs.run(argv[0], argv[1:])
    else:
        code = verbs.run(argv[0], argv[1:])
    if code:
        raise StageFailed(f"`sfr-jax {' '.join(argv)}` exited with code {code} (its message is above)")
    return code


@dataclasses.dataclass(frozen=True)
class Stage:
    """One cached step of the demo. `params(ctx)` and `outputs(ctx)` (paths wiped when the stage must be
    redone) feed the cache; `run(ctx)` does the work and returns a JSON-able info dict, kept in the marker
    and handed to later stages as ctx.info[name]. `after`: names of the stages it depends on (default:
    the one before it). `group`: stages of one group share a number on the screen (the training rows).
    `report(ctx)` / `where(ctx)`: optional lines and (label, path, note) rows for the summary."""

    name: str
    title: str
    run: Callable
    params: Callable = lambda ctx: {}
    outputs: Callable = lambda ctx: []
    after: Optional[tuple] = None
    group: Optional[str] = None
    report: Optional[Callable] = None
    where: Optional[Callable] = None


def _remove(paths) -> None:
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)


class Stages:
    """Stage bookkeeping under out/stages: markers, keys, resume and timings of one demo run."""

    def __init__(self, out: str, fresh: bool):
        self.dir = os.path.join(out, "stages")
        if fresh and os.path.isdir(out):
            shutil.rmtree(out)
        os.makedirs(self.dir, exist_ok=True)
        self.chain = ""
        self.keys = {}
        self.timings = {}

    def run(self, index: int, name: str, title: str, params: dict, outputs, fn, total: int = 9,
            after: Optional[Sequence[str]] = None):
        """Run fn() -> info dict unless done with the same key; returns the stage's info. The key chains on
        the keys of `after` (stages run earlier by this object), else on the stage run just before."""
        if after is not None:
            deps = [self.keys[n] for n in after]
            self.chain = deps[0] if len(deps) == 1 else digest(deps)
        key = digest([self.chain, name, params])
        self.chain = self.keys[name] = key
        marker = os.path.join(self.dir, f"{name}.json")
        started = os.path.join(self.dir, f"{name}.started")
        header = f"[{index}/{total}] {title}"
        if os.path.isfile(marker):
            with open(marker) as handle:
                done = json.load(handle)
            if done.get("key") == key:
                say(f"{header}: done earlier, skipped ({done['seconds']:.0f}s then)")
                self.timings[name] = 0.0
                return done["info"]
            os.remove(marker)
        if os.path.isfile(started):
            with open(started) as handle:
                if handle.read().strip() != key:  # left by a run with other parameters: start over
                    _remove(outputs)
                else:
                    say(f"{header}: resuming an unfinished run")
        else:
            _remove(outputs)  # outputs without a marker of ours: not trusted
        with open(started, "w") as handle:
            handle.write(key)
        say(f"{header} ...")
        start = time.time()
        info = fn() or {}
        seconds = time.time() - start
        write_json(marker, {"key": key, "params": params, "seconds": seconds, "info": info}, sort_keys=True,
                   default=str)
        os.remove(started)
        self.timings[name] = seconds
        say(f"    ({seconds:.0f}s)")
        return info

    def run_all(self, stages: Sequence[Stage], ctx) -> None:
        """Run `stages` in order, numbered by group, each one's info landing in ctx.info[stage.name]."""
        groups = list(dict.fromkeys(s.group or s.name for s in stages))
        total = len(groups) + 1  # + the summary
        for stage in stages:
            ctx.info[stage.name] = self.run(groups.index(stage.group or stage.name) + 1, stage.name, stage.title,
                                            stage.params(ctx), stage.outputs(ctx), lambda s=stage: s.run(ctx),
                                            total, stage.after)
