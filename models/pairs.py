"""Pairs of categories, target-encoded: the interactions a tree on single columns finds late.

On the airline booking export, whether a route converts depends on where the booking comes
from: route × booking_origin ranks bookings at out-of-fold ROC AUC 0.750, where route alone
has 0.728 and booking_origin 0.725. CatBoost's defaults build such combinations of categories
themselves and were ahead of leadq there by 0.010 test ROC AUC. HistGradientBoosting needs many
splits to carve a 2,800-value interaction out of two target-encoded columns.

PairTargetEncoder chooses the pairs while it is fitted, on the training rows only: each pair of
category columns is target-encoded with cross-fitting (each row encoded by folds that exclude
it), and a pair is kept when its encoding alone ranks the rows better, out of fold, than both
of its columns alone by at least `min_gain`. Kept pairs are encoded by scikit-learn's
TargetEncoder (cross-fitted in fit_transform, so the model downstream never sees a row's own
label in its encoding).

The output always has `max_pairs` columns, so the estimator's per-column settings (categorical
mask, monotone constraints) are fixed before fitting; slots no pair fills hold a constant, which
no tree splits on and no linear coefficient can use: their contribution to every score is 0.
"""

from __future__ import annotations

import functools
import threading
import weakref
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import TargetEncoder

# Per fitted encoder, each column's training values as an Index and a dict (._lookups).
_indexes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_index_lock = threading.Lock()
_MISSING = "\x00"  # a blank is a category of its own, as in leadq's other encoders
SMALL_FRAME_ROWS = 32  # at most this many rows: looked up without pandas' per-call cost


def _text(values: pd.Series) -> np.ndarray:
    return values.astype(object).where(values.notna(), _MISSING).astype(str).to_numpy(object)


@functools.cache
def _missing_text() -> str:
    """What _text makes of a missing cell: the key training stored for blanks. Not _MISSING
    itself: pandas' `where` writes it as "" (so a blank has been "" in every fitted encoder),
    and a lead scored alone must find the key its batch would."""
    return _text(pd.Series([None], dtype=object))[0]


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Direction-free ROC AUC from ranks (Mann-Whitney): sklearn's roc_auc_score costs 30 ms a
    column, which every candidate pair of every fit would pay."""
    ranks = rankdata(score)
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    auc = (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return float(max(auc, 1.0 - auc))


class PairTargetEncoder(TransformerMixin, BaseEstimator):
    """Target encoding of the category pairs that rank leads better than either column alone.

    max_pairs: output width (pairs kept at most; 0 turns the step off).
    min_gain: out-of-fold ROC AUC a pair must add over the better of its two columns.
    max_columns: pairs are formed among at most this many columns (the first ones given), so
        the candidates stay at most max_columns·(max_columns−1)/2.
    cv: the number of stratified, shuffled cross-fitting folds.
    """

    def __init__(self, max_pairs: int = 5, min_gain: float = 0.01, max_columns: int = 10,
                 cv=5, random_state: int = 0):
        self.max_pairs = max_pairs
        self.min_gain = min_gain
        self.max_columns = max_columns
        self.cv = cv
        self.random_state = random_state

    def _encoder(self) -> TargetEncoder:
        from sklearn.model_selection import StratifiedKFold

        return TargetEncoder(target_type="binary", cv=StratifiedKFold(
            n_splits=int(self.cv), shuffle=True, random_state=self.random_state))

    def _index(self, column: str) -> pd.Index:
        """The column's training values as a pandas Index, built once per fitted encoder:
        values_ holds plain lists (skops stores those, not an Index), and building the Index
        for every call would cost a lead scored alone (`leadq serve`) milliseconds."""
        return self._lookups(column)[0]

    def _lookups(self, column: str) -> tuple[pd.Index, dict[str, int]]:
        with _index_lock:
            found = _indexes.setdefault(self, {}).get(column)
        if found is None or found[0] is not self.values_[column]:
            values = self.values_[column]
            found = (values, pd.Index(values), {v: i for i, v in enumerate(values)})
            with _index_lock:
                _indexes[self][column] = found
        return found[1], found[2]

    def _positions(self, X: pd.DataFrame, columns) -> dict[str, np.ndarray]:  # noqa: N803
        """Each value's position among the column's training values, from 1 (0: unseen)."""
        if len(X) > SMALL_FRAME_ROWS:
            return {c: self._index(c).get_indexer(_text(X[c])) + 1
                    for c in dict.fromkeys(columns)}
        # A few leads (`leadq serve`): plain Python, the same text as _text gives.
        return self._positions_of_cells({c: X[c].tolist() for c in dict.fromkeys(columns)})

    def _positions_of_cells(self, cells: dict[str, list]) -> dict[str, np.ndarray]:
        out = {}
        blank = _missing_text()
        for c, values in cells.items():
            where = self._lookups(c)[1]
            out[c] = np.array([where.get(blank if pd.isna(v) else str(v), -1) + 1
                               for v in values], dtype=np.int64)
        return out

    def _codes(self, pos: dict[str, np.ndarray], pairs: list[tuple[str, str]]) -> np.ndarray:
        """One integer per row and pair from the two values' positions (a value never seen in
        training makes a pair never seen, which TargetEncoder encodes as the overall rate)."""
        return np.column_stack([pos[a] * (len(self.values_[b]) + 1) + pos[b]
                                for a, b in pairs]).astype(np.int64)

    def fit(self, X: pd.DataFrame, y) -> PairTargetEncoder:  # noqa: N803
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y=None, **_) -> np.ndarray:  # noqa: N803
        X = pd.DataFrame(X)  # noqa: N806
        y = np.asarray(y, int)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        columns = list(X.columns)[: int(self.max_columns)]
        candidates = list(combinations(columns, 2)) if int(self.max_pairs) > 0 else []
        self.values_ = {c: pd.unique(_text(X[c])).tolist() for c in columns}
        self.pairs_: list[tuple[str, str]] = []
        self.gains_: dict[str, float] = {}
        self.encoder_ = None
        out = np.zeros((len(X), int(self.max_pairs)))
        if not candidates or len(np.unique(y)) < 2:
            return out
        pos = self._positions(X, columns)
        # Singles and pairs cross-fitted together: the same folds for every column.
        encoded = self._encoder().fit_transform(
            np.hstack([np.column_stack([pos[c] for c in columns]), self._codes(pos, candidates)]),
            y)
        auc = [_auc(y, encoded[:, i]) for i in range(encoded.shape[1])]
        single = dict(zip(columns, auc[: len(columns)], strict=True))
        gains = {p: auc[len(columns) + i] - max(single[p[0]], single[p[1]])
                 for i, p in enumerate(candidates)}
        kept = sorted((p for p in candidates if gains[p] >= float(self.min_gain)),
                      key=lambda p: -gains[p])[: int(self.max_pairs)]
        self.pairs_ = kept
        self.gains_ = {f"{a}*{b}": round(gains[(a, b)], 4) for a, b in kept}
        self.values_ = {c: v for c, v in self.values_.items() if any(c in p for p in kept)}
        if kept:
            # The cross-fitted columns above are what TargetEncoder.fit_transform on the kept
            # pairs alone returns (same folds, per-column smoothing); a plain fit on all rows
            # then encodes new leads.
            idx = [len(columns) + candidates.index(p) for p in kept]
            out[:, : len(kept)] = encoded[:, idx]
            self.encoder_ = self._encoder().fit(self._codes(pos, kept), y)
        return out

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        X = pd.DataFrame(X)  # noqa: N806
        pos = self._positions(X, [c for p in self.pairs_ for c in p]) if self.pairs_ else {}
        return self._encode(pos, len(X))

    def transform_cells(self, cells: dict[str, list]) -> np.ndarray:
        """transform() of a few rows given as each input column's cells (a list per column):
        the compiled single-lead path (leadq.models.compiled) skips building a frame."""
        n = len(next(iter(cells.values()))) if cells else 0
        wanted = dict.fromkeys(c for p in self.pairs_ for c in p)
        return self._encode(self._positions_of_cells({c: cells[c] for c in wanted}), n)

    def _encode(self, pos: dict[str, np.ndarray], n: int) -> np.ndarray:
        out = np.zeros((n, int(self.max_pairs)))
        if self.pairs_:
            codes = self._codes(pos, self.pairs_)
            # TargetEncoder.transform's own arithmetic (a known code gets its encoding, an
            # unseen one the overall rate), without its per-call input validation, which
            # costs a lead scored alone more than the lookup (tests compare the two).
            enc = self.encoder_
            for i, (known, values) in enumerate(zip(enc.categories_, enc.encodings_,
                                                    strict=True)):
                at = np.clip(np.searchsorted(known, codes[:, i]), 0, len(known) - 1)
                out[:, i] = np.where(known[at] == codes[:, i], values[at], enc.target_mean_)
        return out

    def sources(self) -> list[tuple[str, ...]]:
        """Per output column, the input columns it was built from (() for an empty slot)."""
        return [*self.pairs_, *[()] * (int(self.max_pairs) - len(self.pairs_))]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray([f"{a}*{b}" for a, b in self.pairs_]
                          + [f"pair_slot_{i}" for i in range(len(self.pairs_),
                                                            int(self.max_pairs))], dtype=object)
