"""Train / validation / test split: out-of-time when leads have a timestamp."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

OUT_OF_TIME, RANDOM = "out_of_time", "random"
# What every output calls the test set: a random split's test leads are not "out of time", and
# a reader comparing a model to another must see that its figures were not measured on the future.
TEST_SET_NAMES = {OUT_OF_TIME: "out-of-time", RANDOM: "held-out (random split: no date column)"}


def split_method(created_at: pd.Series | None) -> str:
    """OUT_OF_TIME when `split_leads` orders by these timestamps, RANDOM when it cannot."""
    if created_at is not None and created_at.notna().all():
        return OUT_OF_TIME
    return RANDOM


def test_set_name(created_at: pd.Series | None) -> str:
    """"out-of-time" or "held-out (random split: no date column)", for printouts and pages."""
    return TEST_SET_NAMES[split_method(created_at)]


def split_leads(
    created_at: pd.Series | None,
    labels: pd.Series,
    *,
    train: float = 0.6,
    validation: float = 0.2,
    seed: int = 42,
) -> pd.Series:
    """Assign each labelled lead to 'train', 'validation' or 'test'.

    With timestamps the oldest leads train and the newest test, as the model will be used: on
    leads that arrive after it was fitted. Ties on the boundary date stay on one side so a day
    never straddles two sets. Without timestamps the split is stratified random.
    """
    if not 0 < train < 1 or not 0 < validation < 1 or train + validation >= 1:
        raise ValueError("split.train and split.validation must be in (0, 1) and sum below 1")
    index = labels.index
    if split_method(created_at) == OUT_OF_TIME:
        order = created_at.sort_values(kind="stable")
        n = len(order)
        cut_train = order.iloc[int(n * train)] if n else None
        cut_val = order.iloc[int(n * (train + validation))] if n else None
        part = np.where(created_at < cut_train, "train",
                        np.where(created_at < cut_val, "validation", "test"))
        return pd.Series(part, index=index, name="split")
    rest = 1 - train
    idx_train, idx_rest = train_test_split(
        index, train_size=train, stratify=labels, random_state=seed
    )
    idx_val, _ = train_test_split(
        idx_rest, train_size=validation / rest, stratify=labels.loc[idx_rest], random_state=seed
    )
    part = pd.Series("test", index=index, name="split")
    part.loc[idx_train] = "train"
    part.loc[idx_val] = "validation"
    return part
