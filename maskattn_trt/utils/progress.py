"""Progress bars: one place decides whether they show.

A bar shows only when asked for (every command with a bar has ``--no-progress``) and stderr is a terminal, so
logs, pipes and ``--json -`` output never fill with carriage-return frames.
"""

from __future__ import annotations

import sys


def progress_enabled(requested: bool = True) -> bool:
    stream = sys.stderr
    return bool(requested) and stream is not None and hasattr(stream, "isatty") and stream.isatty()


def progress_bar(requested: bool = True, **kwargs):
    """A ``tqdm`` bar (disabled unless :func:`progress_enabled`); keyword arguments go to tqdm."""
    from tqdm.auto import tqdm  # lazy: tqdm.auto probes for notebooks at import

    return tqdm(disable=not progress_enabled(requested), **kwargs)
