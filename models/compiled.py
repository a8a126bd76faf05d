"""A fitted pipeline's steps before its estimator, compiled for a few rows at a time.

`leadq serve` scores a lead on its own: `pipeline[:-1].transform` on one row spends ~10 ms in
pandas' and scikit-learn's per-call work (frames, input validation, narwhals) around a few
microseconds of arithmetic. `compile_transform` reads the *fitted* steps once, at model load,
and returns a transform of a few raw rows to the encoded NumPy rows the estimator takes:

- LeadFeatures: its own `transform_cells` (the same functions and memos, no output frame);
- one-hot, ordinal and target encoders: a table per input column of what the fitted encoder
  itself outputs for each category it knows, for a value it never saw and for a missing one
  (scikit-learn computes every entry once, on a probe frame, so unknown and infrequent handling
  is scikit-learn's own); a lead's value is looked up in it;
- the category-pair encoder: its own `transform_cells`;
- imputer (with its missing indicator), standard scaler, the signed log: their fitted
  statistics applied to the row with the same NumPy operations scikit-learn applies.

A step of any other kind, or a setting this does not follow (sparse output, pandas output, a
remainder that is passed through), makes `compile_transform` raise NotCompiled with the reason:
the caller then keeps the normal pipeline for that model. Never a different answer: the compiled
output equals `pipeline[:-1].transform` (tests/model/test_compiled_transform.py holds them equal
on every model kind leadq registers, and the service's warm-up checks it on the model's own
input example before using it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import FunctionTransformer, StandardScaler

# A category no encoder can have seen: probes what the encoder does with an unknown value.
_UNSEEN = "\x00leadq-unseen-category\x00"

Columns = dict[str, np.ndarray]       # LeadFeatures output, one array per column
Matrix = Callable[[Columns, int], np.ndarray]
Step = Callable[[np.ndarray], np.ndarray]


NUMERIC_STEPS = (SimpleImputer, StandardScaler, FunctionTransformer)


class NotCompiled(ValueError):
    """The pipeline holds a step (or a setting) the compiled path does not follow."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


class _Lookup:
    """A fitted per-column categorical encoder as tables: value → the encoder's output."""

    def __init__(self, encoder: Any, columns: list[str]) -> None:
        from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

        if type(encoder) not in (OneHotEncoder, OrdinalEncoder, TargetEncoder):
            raise NotCompiled(f"no compiled form of {type(encoder).__name__}")
        if isinstance(encoder, OneHotEncoder) and encoder.sparse_output:
            raise NotCompiled("a sparse one-hot encoder")
        if isinstance(encoder, TargetEncoder) and encoder.target_type_ == "multiclass":
            raise NotCompiled("a multiclass target encoder")
        if isinstance(encoder, OneHotEncoder):
            widths = list(getattr(encoder, "_n_features_outs", []))
        else:
            widths = [1] * len(columns)
        if len(widths) != len(columns) or len(encoder.categories_) != len(columns):
            raise NotCompiled(f"cannot tell the output columns of {type(encoder).__name__}")
        for known in encoder.categories_:
            if known.dtype != object:
                raise NotCompiled("an encoder fitted on non-text categories")
        # One probe frame: column j runs through its categories, then an unseen value, then a
        # missing one (shorter columns padded with their first category).
        probes = [[v for v in known if not _missing(v)] or [_UNSEEN]
                  for known in encoder.categories_]
        rows = max(len(p) for p in probes) + 2
        frame = pd.DataFrame({c: pd.Series(
            p + [_UNSEEN, np.nan] + [p[0]] * (rows - len(p) - 2), dtype=object)
            for c, p in zip(columns, probes, strict=True)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown categories found": probed on purpose
            out = np.asarray(encoder.transform(frame), dtype=np.float64)
        if out.shape != (rows, sum(widths)):
            raise NotCompiled(f"unexpected output shape from {type(encoder).__name__}")
        self.columns = columns
        self.tables: list[dict[str, np.ndarray]] = []
        self.unseen: list[np.ndarray] = []
        self.absent: list[np.ndarray] = []
        start = 0
        for p, w in zip(probes, widths, strict=True):
            block = out[:, start:start + w]
            self.tables.append({v: block[i].copy() for i, v in enumerate(p) if v != _UNSEEN})
            self.unseen.append(block[len(p)].copy())
            self.absent.append(block[len(p) + 1].copy())
            start += w
        self.width = sum(widths)

    def __call__(self, cols: Columns, n: int) -> np.ndarray:
        parts = []
        for c, table, unseen, absent in zip(self.columns, self.tables, self.unseen,
                                            self.absent, strict=True):
            parts.append(np.array([absent if _missing(v) else table.get(v, unseen)
                                   for v in cols[c].tolist()]).reshape(n, -1))
        return np.hstack(parts) if parts else np.zeros((n, 0))


def _numeric(columns: list[str]) -> Matrix:
    def take(cols: Columns, n: int) -> np.ndarray:
        if not columns:
            return np.zeros((n, 0))
        return np.column_stack([np.asarray(cols[c], dtype=np.float64) for c in columns])
    return take


def _pairs(encoder: Any, columns: list[str]) -> Matrix:
    def encode(cols: Columns, n: int) -> np.ndarray:
        return encoder.transform_cells({c: cols[c].tolist() for c in columns})
    return encode


def _imputer(imputer: Any) -> Step:
    missing = imputer.missing_values
    if not (isinstance(missing, float) and missing != missing):
        raise NotCompiled("an imputer of a missing-value marker other than NaN")
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    if not imputer.keep_empty_features and np.isnan(stats).any():
        raise NotCompiled("an imputer that drops empty columns")
    indicator = getattr(imputer, "indicator_", None) if imputer.add_indicator else None
    flagged = None if indicator is None else np.asarray(indicator.features_, dtype=np.int64)

    def step(x: np.ndarray) -> np.ndarray:
        gaps = np.isnan(x)
        filled = np.where(gaps, stats, x)
        if flagged is None:
            return filled
        return np.hstack([filled, gaps[:, flagged].astype(np.float64)])
    return step


def _scaler(scaler: Any) -> Step:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def step(x: np.ndarray) -> np.ndarray:
        # StandardScaler.transform's own order: subtract the mean, then divide by the scale.
        out = np.array(x, dtype=np.float64)
        if mean is not None:
            out -= mean
        if scale is not None:
            out /= scale
        return out
    return step


def _function(transformer: Any) -> Step:
    from leadq.models.factories import signed_log1p

    if transformer.kw_args or transformer.validate:
        raise NotCompiled("a function transformer with arguments or validation")
    if transformer.func is None:
        # What a fitted ColumnTransformer holds for a "passthrough" member.
        return lambda x: x
    if transformer.func is not signed_log1p:
        raise NotCompiled("a function transformer other than leadq's signed log")
    return lambda x: signed_log1p(x)


def _step(transformer: Any) -> Step:
    kind = type(transformer)
    if kind is SimpleImputer:
        return _imputer(transformer)
    if kind is StandardScaler:
        return _scaler(transformer)
    if kind is FunctionTransformer:
        return _function(transformer)
    raise NotCompiled(f"no compiled form of {kind.__name__} after an encoder's first step")


def _branch(transformer: Any, columns: list[str], numeric: set[str]) -> Matrix:
    """One ColumnTransformer member: its first step reads LeadFeatures columns, the steps after
    it work on the first step's numbers."""
    from sklearn.pipeline import Pipeline

    from leadq.models.pairs import PairTargetEncoder

    if isinstance(transformer, str):
        if transformer == "passthrough" and set(columns) <= numeric:
            return _numeric(columns)
        raise NotCompiled(f"a {transformer!r} member over non-numeric columns")
    steps = [s for _, s in transformer.steps] if type(transformer) is Pipeline else [transformer]
    steps = [s for s in steps if s is not None and s != "passthrough"]
    if not steps:
        return _numeric(columns)
    first, rest = steps[0], steps[1:]
    if type(first) is PairTargetEncoder:
        head = _pairs(first, columns)
    elif set(columns) <= numeric and type(first) in NUMERIC_STEPS:
        head, rest = _numeric(columns), steps
    else:
        head = _Lookup(first, columns)
    chain = [_step(s) for s in rest]

    def run(cols: Columns, n: int) -> np.ndarray:
        x = head(cols, n)
        for step in chain:
            x = step(x)
        return x
    return run


class CompiledTransform:
    """`pipeline[:-1].transform(X)` for a few rows, as a float64 NumPy array."""

    def __init__(self, features: Any, branches: list[Matrix]) -> None:
        self.features = features
        self.branches = branches

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        cols = self.features.transform_cells(X)
        n = len(X)
        return np.hstack([branch(cols, n) for branch in self.branches])


class CompiledBlend:
    """A blend's `pipeline[:-1].transform(X)` (leadq.models.blend.Blocks, one per member) for a
    few rows: the shared LeadFeatures once, then each member's compiled encoder."""

    def __init__(self, features: Any, members: list[CompiledTransform]) -> None:
        self.features = features
        self.members = members

    def transform(self, X: pd.DataFrame) -> list:  # noqa: N803
        from leadq.models.blend import Blocks

        cols = self.features.transform_cells(X)
        n = len(X)
        return Blocks(np.hstack([branch(cols, n) for branch in m.branches])
                      for m in self.members)


def compile_transform(pipeline: Any) -> CompiledTransform | CompiledBlend:
    """The compiled form of `pipeline[:-1]` (LeadFeatures, then one ColumnTransformer), or
    NotCompiled saying which step or setting it does not follow."""
    import sklearn
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from leadq.features.transform import LeadFeatures

    if type(pipeline) is not Pipeline or len(pipeline.steps) != 3:
        raise NotCompiled("not a (features, encode, model) pipeline")
    (_, features), (_, encode), _ = pipeline.steps
    if type(features) is not LeadFeatures:
        raise NotCompiled(f"a first step of kind {type(features).__name__}")
    from leadq.models.blend import BlendEncoder, member_pipelines

    if type(encode) is BlendEncoder:
        members = [compile_transform(m) for m in member_pipelines(pipeline)]
        return CompiledBlend(features, members)
    if type(encode) is not ColumnTransformer:
        raise NotCompiled(f"a second step of kind {type(encode).__name__}")
    output = (getattr(encode, "_sklearn_output_config", None) or {}).get("transform")
    if output not in (None, "default") or sklearn.get_config()["transform_output"] != "default":
        raise NotCompiled("an encoder set to output frames")
    if getattr(encode, "sparse_output_", False):
        raise NotCompiled("a sparse encoder output")
    numeric = set(features.numeric_out())
    branches = []
    for name, transformer, columns in encode.transformers_:
        columns = [columns] if isinstance(columns, str) else list(columns)
        if transformer == "drop" or not columns:
            continue
        if name == "remainder":
            raise NotCompiled("a remainder passed on")
        branches.append(_branch(transformer, columns, numeric))
    return CompiledTransform(features, branches)


def matches(compiled: CompiledTransform, pipeline: Any, X: pd.DataFrame) -> bool:  # noqa: N803
    """The compiled output equals the pipeline's own on `X` (NaN where it has NaN)."""
    if isinstance(compiled, CompiledBlend):
        wants, gots = pipeline[:-1].transform(X), compiled.transform(X)
        return len(wants) == len(gots) and all(
            _equal(np.asarray(w, dtype=np.float64), g) for w, g in zip(wants, gots, strict=True))
    return _equal(np.asarray(pipeline[:-1].transform(X), dtype=np.float64), compiled.transform(X))


def _equal(want: np.ndarray, got: np.ndarray) -> bool:
    return want.shape == got.shape and bool(np.array_equal(want, got, equal_nan=True))


# --- HistGradientBoosting's own input step ---------------------------------------------------
# An HGB fitted with categorical features holds a private ColumnTransformer (an OrdinalEncoder on
# the categorical columns, check_array on the others) that every decision_function call runs:
# ~2 ms of pandas-free but validation-heavy work per call for one row, paid twice per explained
# lead (the margin, then Tree SHAP's input). compile_hgb_input reads the fitted encoder once and
# returns its output for a NumPy block with NumPy alone; hgb_margin then sums the trees.
class CompiledHGBInput:
    """`hgb._preprocess_X(X, reset=False)` for a float block, without scikit-learn's checks."""

    def __init__(self, n_features: int, parts: list[tuple[np.ndarray, list | None]]) -> None:
        self.n_features = n_features
        self.parts = parts  # (input column indices, sorted known codes per column or None)

    def __call__(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        X = np.asarray(X, dtype=np.float64)  # noqa: N806
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} columns, got shape {X.shape}")
        blocks = []
        for index, known in self.parts:
            if known is None:
                blocks.append(X[:, index])
                continue
            block = np.empty((len(X), len(index)))
            for k, (j, codes) in enumerate(zip(index, known, strict=True)):
                values = X[:, j]
                if np.isinf(values).any():
                    raise ValueError("an infinite category code")  # sklearn's check refuses it
                pos = np.searchsorted(codes, values)
                at = np.minimum(pos, max(len(codes) - 1, 0))
                hit = (pos < len(codes)) & (codes[at] == values) if len(codes) else \
                    np.zeros(len(values), dtype=bool)
                # Unknown and missing values both encode to NaN (HGB's own encoder settings).
                block[:, k] = np.where(hit, pos, np.nan)
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.empty((len(X), 0))


def compile_hgb_input(hgb: Any) -> CompiledHGBInput:
    """The compiled form of a fitted HGB's input step, or NotCompiled saying why not. It is
    checked against `_preprocess_X` on a probe holding every known category, an unknown value
    and a missing one per categorical column before it is returned."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    pre = getattr(hgb, "_preprocessor", None)
    n = int(getattr(hgb, "n_features_in_", 0))
    if pre is None:
        raise NotCompiled("an HGB without categorical features (nothing to compile)")
    if type(pre) is not ColumnTransformer or hasattr(hgb, "feature_names_in_"):
        raise NotCompiled("an HGB input step of an unexpected kind")
    parts: list[tuple[np.ndarray, list | None]] = []
    for name, transformer, columns in pre.transformers_:
        cols = np.asarray(columns)
        index = np.flatnonzero(cols) if cols.dtype == bool else cols.astype(np.int64)
        if len(index) == 0 or (isinstance(transformer, str) and transformer == "drop"):
            continue
        if type(transformer) is OrdinalEncoder:
            ok = (transformer.handle_unknown == "use_encoded_value"
                  and np.isnan(transformer.unknown_value)
                  and np.isnan(transformer.encoded_missing_value)
                  and not getattr(transformer, "_infrequent_enabled", False))
            if not ok:
                raise NotCompiled("an HGB categorical encoder with other settings")
            known = []
            for cats in transformer.categories_:
                codes = np.asarray(cats, dtype=np.float64)
                codes = codes[~np.isnan(codes)]
                if np.any(np.diff(codes) <= 0):
                    raise NotCompiled("HGB categories not sorted")
                known.append(codes)
            parts.append((index, known))
        elif type(transformer) is FunctionTransformer and name != "remainder":
            parts.append((index, None))
        else:
            raise NotCompiled(f"an HGB input step holding {type(transformer).__name__}")
    compiled = CompiledHGBInput(n, parts)
    probe = _hgb_probe(n, parts)
    if not _equal(np.asarray(hgb._preprocess_X(probe, reset=False), dtype=np.float64),
                  compiled(probe)):
        raise NotCompiled("the compiled HGB input step differed from scikit-learn's on a probe")
    return compiled


def _hgb_probe(n: int, parts: list[tuple[np.ndarray, list | None]]) -> np.ndarray:
    """Rows covering each categorical column's known codes, a code it never saw and NaN."""
    longest = max([len(c) for _, known in parts if known for c in known] + [0]) + 2
    probe = np.tile(np.linspace(-1.5, 2.5, longest)[:, None], (1, n))
    for index, known in parts:
        if known is None:
            continue
        for j, codes in zip(index, known, strict=True):
            column = np.full(longest, np.nan)
            column[:len(codes)] = codes
            column[len(codes)] = (codes.max() + 1.0) if len(codes) else 0.0  # never seen
            probe[:, j] = column
    return probe


def hgb_margin(hgb: Any, encoded: np.ndarray) -> np.ndarray:
    """`hgb.decision_function(X)` from `encoded = hgb._preprocess_X(X, reset=False)` (binary):
    the same trees, summed by scikit-learn's own predictors in its own order, without running
    the input step a second time."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    raw = np.zeros((encoded.shape[0], hgb.n_trees_per_iteration_),
                   dtype=hgb._baseline_prediction.dtype, order="F")
    raw += hgb._baseline_prediction
    hgb._predict_iterations(encoded, hgb._predictors, raw, False,
                            _openmp_effective_n_threads(None))
    return raw.ravel() if raw.shape[1] == 1 else raw
