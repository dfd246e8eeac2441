"""Class labels as people write them: ``Good``, ``good`` and ``GOOD `` are one class.

Labels (folder names, CSV label cells) are compared by a key that ignores case, surrounding
space and the difference between ``_``, ``-`` and spaces. Spellings with one key become one
class, named by the configured spelling when there is one (``data.classes.names``, ``good``,
``open_set``), else by the most frequent spelling; every merge is logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import pandas as pd

from vqc.classes import label_key
from vqc.errors import ConfigError

log = logging.getLogger(__name__)



def _preferred_by_key(preferred: Iterable[str | None]) -> dict[str, str]:
    """The configured spellings by key; two configured names with one key are refused."""
    by_key: dict[str, str] = {}
    for name in preferred:
        if name is None:
            continue
        name = str(name)
        other = by_key.setdefault(label_key(name), name)
        if other != name:
            raise ConfigError(f"data.classes: {other!r} and {name!r} name one class (labels "
                              "are matched ignoring case, spaces, '_' and '-'); keep one")
    return by_key


def label_spellings(labels: Iterable[object], preferred: Iterable[str | None] = ()
                    ) -> dict[str, str]:
    """``{spelling: class name}`` for every spelling that is not its class's own name."""
    counts = Counter(str(x) for x in labels if x is not None)
    configured = _preferred_by_key(preferred)
    groups: dict[str, list[str]] = {}
    for spelling in counts:
        groups.setdefault(label_key(spelling), []).append(spelling)
    renames = {}
    for key, spellings in groups.items():
        name = configured.get(key) or min(spellings, key=lambda s: (-counts[s], s))
        renames.update({s: name for s in spellings if s != name})
    return renames


#: Merge warnings already logged by this process.
_WARNED: set[str] = set()


def harmonise_labels(frames: Sequence[pd.DataFrame | None], preferred: Iterable[str | None] = ()
                     ) -> tuple[list[pd.DataFrame | None], str | None]:
    """The frames with each label rewritten to its class's one name (see the module's doc),
    and the warning listing the merges (also logged), or ``None``."""
    labels = [x for f in frames if f is not None for x in f["label"]]
    renames = label_spellings(labels, preferred)
    if not renames:
        return list(frames), None
    counts = Counter(str(x) for x in labels if x is not None)
    merged: dict[str, list[str]] = {}
    for spelling, name in renames.items():
        merged.setdefault(name, []).append(spelling)
    shown = "; ".join(f"{', '.join(repr(s) for s in sorted(spellings))} -> {name!r} "
                      f"({sum(counts[s] for s in spellings)} image(s))"
                      for name, spellings in sorted(merged.items()))
    message = f"class labels merged (case, spaces, '_' and '-' ignored): {shown}"
    if message not in _WARNED:  # a run reads its tables more than once
        _WARNED.add(message)
        log.warning("%s", message)
    out: list[pd.DataFrame | None] = []
    for frame in frames:
        if frame is not None:
            frame = frame.copy()
            frame["label"] = [renames.get(x, x) if x is not None else None
                              for x in frame["label"]]
        out.append(frame)
    return out, message
