"""The table every data layout returns: its columns, in order."""

from __future__ import annotations

import pandas as pd

#: path: absolute image path; filename: as written in the source; label: class name or None;
#: lib: die / preprocessing key or None; window: acquisition window or None; split: train/test/None;
#: group: grouping key for splits or None; where: "file row N" for messages; orig_index: the
#: source's own index value (the challenge's unnamed first column) for submissions; mask: absolute
#: path of the image's pixel defect mask, or None (only a CSV's ``mask`` column gives one).
INDEX_COLUMNS = ("path", "filename", "label", "lib", "window", "split", "group", "where",
                 "orig_index", "mask")


def finish_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``INDEX_COLUMNS``, in order (``None`` where a layout has none)."""
    for column in INDEX_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame.loc[:, list(INDEX_COLUMNS)].reset_index(drop=True)


__all__ = ["INDEX_COLUMNS", "finish_table"]
