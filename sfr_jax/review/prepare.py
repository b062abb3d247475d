"""`sfr-jax prepare`: `prepare reviewed` (reviewed inspection videos, sfr_jax.review.dataset) or any raw
data set (sfr_jax.data.prepare). It lives here because reviewed data need review.json's schema, which the
data layer below may not import."""
from __future__ import annotations

from sfr_jax.data import prepare as data_prepare
from sfr_jax.review import dataset


def main(argv=()) -> int:
    """Dispatch on the first argument; each entry point is a `cli.verb` with its own exit codes."""
    argv = list(argv)
    if argv[:1] == ["reviewed"]:
        return dataset.main(argv[1:])
    return data_prepare.main(argv)
