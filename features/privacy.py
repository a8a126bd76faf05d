"""Personal data never reaches the model store: samples are redacted before they are logged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.features.transform import email_is_corporate


def redact_personal(frame: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Replace personal columns with placeholders that keep only what the model derives.

    An email keeps just its corporate/free-mail kind (the model's only use of it); names and
    phones become a fixed token.
    """
    out = frame.copy()
    email_col = params["features"].get("email_column")
    for col in params["data"]["leads"].get("personal") or []:
        if col not in out:
            continue
        present = out[col].notna()
        if col == email_col:
            corporate = email_is_corporate(out[col])
            placeholder = np.where(corporate == 1.0, "redacted@example.com", "redacted@gmail.com")
            out[col] = pd.Series(placeholder, index=out.index, dtype=object).where(present, np.nan)
        else:
            out[col] = pd.Series("redacted", index=out.index, dtype=object).where(present, np.nan)
    return out
