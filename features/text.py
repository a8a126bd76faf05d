"""Text columns of a few rows stripped by Arrow's own kernel (no other leadq import: the
activity features and typing both use it, and typing's imports lead back to them)."""

from __future__ import annotations

import pandas as pd

# Below this many rows (a lead scored by `leadq serve`) pandas' fixed cost per call dwarfs the
# work, and the small-frame paths take over (features.transform, tables, contracts).
SMALL_FRAME_ROWS = 32

_STRING = pd.StringDtype()  # what astype("string") gives


def stripped_string(values: pd.Series) -> pd.Series:
    """values.astype("string").str.strip(). For a few rows of Arrow-backed text (`leadq
    serve`), the Arrow kernel those two steps call is called on the column's data directly:
    the same values, without the two intermediate Series."""
    if 0 < len(values) <= SMALL_FRAME_ROWS and _STRING.storage == "pyarrow" and \
            isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        import pyarrow.compute as pc

        data = pc.utf8_trim_whitespace(values.array.__arrow_array__())
        return pd.Series(pd.arrays.ArrowStringArray(data, dtype=_STRING), index=values.index,
                         name=values.name, copy=False)
    return values.astype("string").str.strip()
