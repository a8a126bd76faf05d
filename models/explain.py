"""Exact per-lead contributions, grouped back to the raw CRM columns a marketer knows.

The registered model is CalibratedClassifierCV(FrozenEstimator(Pipeline(features, encode,
model))). Contributions are computed in the margin (log-odds) of the inner, uncalibrated model,
where they are exact:

- HistGradientBoosting: path-dependent Tree SHAP (Lundberg et al. 2018, Algorithm 2), the
  algorithm of ``shap.TreeExplainer(feature_perturbation="tree_path_dependent")``. shap's own
  converter reads HGB's categorical splits as numeric thresholds, which is wrong for leadq's
  native categorical splits, so the same recursion is run here (numba) with sklearn's exact
  split rule: bitsets for categories, unknown categories and NaN follow the missing branch.
- LogisticRegression: the exact linear decomposition coef × (x − reference) per encoded column,
  the reference being the mean encoded training row stored at fit (``set_explain_reference``),
  so a lead's reasons do not depend on the batch it is explained in (a background set, when
  given, replaces it; models saved without one fall back to the mean of the rows explained).

Then one-hot / derived columns are summed back to their raw source column (``email_corporate``
→ email, ``seniority`` → job_title, ``created_doy_*`` → created_at), so base + Σ contributions
equals the model's margin for every lead.

Points. The score a lead sees is the calibrated probability g(margin). A contribution φ (log-odds)
is shown as ``points = 100 · φ · (g(m) − g(m₀)) / (m − m₀)``: percentage points of calibrated
conversion probability, scaled so that the points of a lead add up to 100 · (p − p₀), where p is
its score and p₀ = g(m₀) the score of the base (average) lead. Where the calibration map is flat
between m₀ and m (isotonic steps) the local slope of g around m₀ is used instead, so reasons
never vanish; there the sum is approximate and the margins stay exact.
"""

from __future__ import annotations

import copy
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leadq.features.activities import describe, is_activity_feature
from leadq.features.columns import DERIVED_DATE_PARTS, DERIVED_FROM_EMAIL, DERIVED_SENIORITY

METHOD_TREE = "exact path-dependent Tree SHAP (log-odds of the uncalibrated HGB)"
METHOD_LINEAR = ("exact linear decomposition coef·(x − training mean) (log-odds of the logistic "
                 "regression)")
# Log-odds either side of the base margin over which the local slope of g is measured (widened
# ×2 up to ×8 while the calibration map is flat there).
SLOPE_WINDOW = 0.25


@dataclass
class Explanation:
    """Contributions per raw column (log-odds), the base margin and the model's margin."""

    contributions: pd.DataFrame  # n_leads × raw columns
    base_value: float  # margin of the average lead (m₀)
    margin: np.ndarray  # the uncalibrated model's margin per lead
    method: str
    # Per lead, when leads are explained by different models (a segmented model): each lead's
    # own base margin; base_value is then their mean, for display only.
    base_values: np.ndarray | None = None

    def additivity_error(self) -> float:
        base = self.base_values if self.base_values is not None else self.base_value
        total = base + self.contributions.to_numpy().sum(axis=1)
        return float(np.max(np.abs(total - self.margin))) if len(total) else 0.0


# --- unwrapping the registered model --------------------------------------------------------
def unwrap(model):
    """(pipeline, calibrators) from CalibratedClassifierCV(FrozenEstimator(Pipeline)) or a Pipeline.

    ``calibrators`` is a list of fitted one-dimensional calibration maps whose mean is the
    calibrated probability, or None for an uncalibrated pipeline. Of a segmented model: its
    pooled model's (explain and explain_leads route each lead to its own segment's model).
    """
    model = getattr(model, "pooled_", model)
    if hasattr(model, "calibrated_classifiers_"):
        parts = model.calibrated_classifiers_
        if any(getattr(c, "method", "") not in ("sigmoid", "isotonic") for c in parts):
            raise ValueError("explanations support sigmoid or isotonic calibration only")
        inner = parts[0].estimator
        inner = getattr(inner, "estimator", inner)  # FrozenEstimator → the fitted Pipeline
        return inner, [c.calibrators[0] for c in parts]
    return model, None


def calibrated_probability(calibrators, margin: np.ndarray) -> np.ndarray:
    """g(margin): what CalibratedClassifierCV.predict_proba[:, 1] returns for these margins."""
    margin = np.asarray(margin, float)
    if calibrators is None:
        return 1.0 / (1.0 + np.exp(-margin))
    # CalibratedClassifierCV's own arithmetic, step for step (a value a rounding error above 1
    # becomes 1, then a running sum divided by the count), so a score computed from an
    # explanation's margin is bit for bit the one predict_proba gives.
    out = np.zeros(len(margin))
    for calibrator in calibrators:
        p = np.array(calibrator.predict(margin), dtype=float)
        p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0
        out += p
    out /= len(calibrators)
    return out


# --- encoded column → raw column ------------------------------------------------------------
def derived_source(feats) -> dict[str, str]:
    """Derived model inputs → the raw lead column they come from."""
    out: dict[str, str] = {}
    if getattr(feats, "email", None):
        out[DERIVED_FROM_EMAIL] = feats.email
    if getattr(feats, "job_title", None):
        out[DERIVED_SENIORITY] = feats.job_title
    if getattr(feats, "created_at", None):
        out.update({name: feats.created_at for name in DERIVED_DATE_PARTS})
    return out


def raw_columns_of(pipeline) -> list[str]:
    """The raw lead columns the pipeline reads, in the order LeadFeatures lists them."""
    return list(dict.fromkeys(pipeline.named_steps["features"].source_columns()))


def _pair_step(trans):
    """The PairTargetEncoder of an encoder branch (alone or first in a Pipeline), or None."""
    from leadq.models.pairs import PairTargetEncoder

    first = trans.steps[0][1] if hasattr(trans, "steps") else trans
    return first if isinstance(first, PairTargetEncoder) else None


def _encoded_groups(pipeline) -> list[str | tuple[str, ...]]:
    """For each column the encoder outputs, the LeadFeatures column it came from (a tuple of
    them for a category pair, models/pairs.py; an empty tuple for an unused pair slot).

    Works for any transformer whose output names are its input names, `<input>_<category>`
    (one-hot) or `missingindicator_<input>` (imputer indicators).
    """
    encode = pipeline.named_steps["encode"]
    groups: list[str | tuple[str, ...]] = []
    for name, trans, cols in encode.transformers_:
        cols = list(cols) if not isinstance(cols, str) else [cols]
        if name == "remainder" or trans == "drop" or not cols:
            continue
        pairs = _pair_step(trans)
        if pairs is not None:
            groups.extend(pairs.sources())
            continue
        names = cols if trans == "passthrough" else list(trans.get_feature_names_out(cols))
        for out_name in names:
            base = out_name.removeprefix("missingindicator_")
            if base in cols:
                groups.append(base)
                continue
            prefixed = [c for c in cols if out_name.startswith(f"{c}_")]
            if not prefixed:
                raise ValueError(f"cannot tell which input encoded column {out_name!r} is from")
            groups.append(max(prefixed, key=len))
    return groups


def _raw_group_matrix(pipeline) -> tuple[np.ndarray, list[str]]:
    """A 0/1 matrix (encoded × raw columns) that sums encoded contributions per raw column."""
    feats = pipeline.named_steps["features"]
    to_raw = derived_source(feats)
    raw = raw_columns_of(pipeline)
    # A pair's contribution is shared equally by its two columns: the sum, and so the
    # additivity base + Σ contributions = margin, stays exact; an unused slot contributes 0.
    groups = [tuple(to_raw.get(c, c) for c in g) if isinstance(g, tuple) else (to_raw.get(g, g),)
              for g in _encoded_groups(pipeline)]
    unknown = sorted({c for g in groups for c in g} - set(raw))
    if unknown:
        raise ValueError(f"cannot map encoded column(s) {unknown} to a raw lead column")
    mat = np.zeros((len(groups), len(raw)))
    for i, g in enumerate(groups):
        for c in g:
            mat[i, raw.index(c)] += 1.0 / len(g)
    return mat, raw


_per_model: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_per_model_lock = threading.Lock()


def _cached(fn, fitted, stamp):
    """fn(fitted), computed once per fit: what depends only on the fitted model (the encoded →
    raw column map, the packed trees) costs more than explaining a lead. `stamp` is an object
    that fitting replaces (sklearn assigns new fitted attributes), so a refit recomputes."""
    with _per_model_lock:
        found = _per_model.setdefault(fitted, {}).get(fn)
    if found is not None and found[0] is stamp:
        return found[1]
    value = fn(fitted)
    with _per_model_lock:
        _per_model[fitted][fn] = (stamp, value)
    return value


def _group_matrix(pipeline) -> tuple[np.ndarray, list[str]]:
    stamp = getattr(pipeline.named_steps["encode"], "transformers_", None)
    mat, raw = _cached(_raw_group_matrix, pipeline, stamp)
    mat.setflags(write=False)  # shared by every call
    return mat, list(raw)


def group_matrix(pipeline) -> tuple[np.ndarray, list[str]]:
    """(a read-only 0/1 matrix of encoded × raw columns, the raw columns): which encoded
    model inputs each raw lead column becomes."""
    return _group_matrix(pipeline)


# --- Tree SHAP for HistGradientBoosting -----------------------------------------------------
def _pack_hgb(hgb) -> dict:
    """Every tree of a binary HGB as flat arrays with global node / bitset indices."""
    known, f_idx_map = hgb._bin_mapper.make_known_categories_bitsets()
    cols = {k: [] for k in ("value", "count", "feature", "threshold", "miss_left", "left",
                            "right", "is_leaf", "is_cat", "bitset")}
    bitsets, roots = [], []
    node_off = bit_off = 0
    for iteration in hgb._predictors:
        if len(iteration) != 1:
            raise ValueError("explanations support binary classifiers only")
        pred = iteration[0]
        nodes = pred.nodes
        roots.append(node_off)
        cols["value"].append(nodes["value"].astype(np.float64))
        cols["count"].append(nodes["count"].astype(np.float64))
        cols["feature"].append(nodes["feature_idx"].astype(np.int64))
        cols["threshold"].append(nodes["num_threshold"].astype(np.float64))
        cols["miss_left"].append(nodes["missing_go_to_left"].astype(np.bool_))
        cols["left"].append(nodes["left"].astype(np.int64) + node_off)
        cols["right"].append(nodes["right"].astype(np.int64) + node_off)
        cols["is_leaf"].append(nodes["is_leaf"].astype(np.bool_))
        cols["is_cat"].append(nodes["is_categorical"].astype(np.bool_))
        cols["bitset"].append(nodes["bitset_idx"].astype(np.int64) + bit_off)
        raw_bits = np.asarray(pred.raw_left_cat_bitsets, dtype=np.uint32).reshape(-1, 8)
        bitsets.append(raw_bits)
        node_off += len(nodes)
        bit_off += len(raw_bits)
    packed = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    packed["roots"] = np.asarray(roots, dtype=np.int64)
    packed["bitsets"] = (np.concatenate(bitsets) if bitsets else np.zeros((0, 8))).astype(
        np.uint32)
    packed["known"] = np.asarray(known, dtype=np.uint32).reshape(-1, 8)
    packed["f_idx_map"] = np.asarray(f_idx_map, dtype=np.int64)
    packed["depth"] = int(max((p[0].nodes["depth"].max() for p in hgb._predictors), default=0))
    packed["baseline"] = float(np.ravel(hgb._baseline_prediction)[0])
    # The Tree SHAP base is the model's own: worked out once, not per explained batch.
    packed["base"] = packed["baseline"] + _tree_expectations(packed)
    return packed


def _tree_expectations(packed: dict) -> float:
    """Σ over trees of the training-cover-weighted mean leaf value (the Tree SHAP base)."""
    leaf = packed["is_leaf"]
    total = 0.0
    roots = list(packed["roots"]) + [len(leaf)]
    for a, b in zip(roots[:-1], roots[1:], strict=False):
        sl = slice(a, b)
        mask = leaf[sl]
        total += float((packed["value"][sl][mask] * packed["count"][sl][mask]).sum()
                       / packed["count"][a])
    return total


# Up to this many rows Tree SHAP runs on the calling thread (see treeshap_kernel's serial
# kernels); more rows are shared among numba's threads.
SERIAL_SHAP_ROWS = 64
# Up to this many rows every tree is solved for every row in one kernel call: no per-tree call
# from Python, no grouping of rows by their directions (a row or two have nothing to share).
ALL_TREES_ROWS = 4


def tree_shap_hgb(hgb, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact path-dependent Tree SHAP of a binary HGB's raw margin: (n × features, base).

    In path-dependent Tree SHAP a row enters a tree only through the direction it takes at each
    split, so rows with the same directions get the same values: each tree is solved once per
    distinct direction pattern (a few hundred at most) and the result gathered to all rows.
    """
    from leadq.models import treeshap_kernel as kernel

    if len(X) <= SERIAL_SHAP_ROWS:
        decision_codes, decisions, shap_values = (kernel.decision_codes_serial,
                                                  kernel.decisions_serial,
                                                  kernel.shap_values_serial)
    else:
        decision_codes, decisions, shap_values = (kernel.decision_codes, kernel.decisions,
                                                  kernel.shap_values)

    p = _cached(_pack_hgb, hgb, getattr(hgb, "_predictors", None))
    X = np.ascontiguousarray(X, dtype=np.float64)
    d = p["depth"] + 2
    size = (d + 2) * (d + 3) // 2 + 2
    if len(X) <= ALL_TREES_ROWS:
        out = kernel.shap_values_all_trees(
            X, np.asarray(p["roots"], dtype=np.int64), size, p["value"], p["count"],
            p["feature"], p["threshold"], p["miss_left"], p["left"], p["right"], p["is_leaf"],
            p["is_cat"], p["bitset"], p["bitsets"], p["known"], p["f_idx_map"])
        return out, p["base"]
    split_args = (p["feature"], p["threshold"], p["miss_left"], p["is_cat"], p["bitset"],
                  p["bitsets"], p["known"], p["f_idx_map"])
    out = np.zeros(X.shape)
    ends = [*p["roots"][1:], len(p["is_leaf"])]
    for root, end in zip(p["roots"], ends, strict=True):
        internal = np.flatnonzero(~p["is_leaf"][root:end]) + root
        if len(internal) == 0:
            continue  # a stump adds only to the base
        if len(internal) <= 64:  # one integer key per row: a fast 1-D unique
            keys = decision_codes(X, internal, *split_args)
            _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        else:
            bits = np.packbits(decisions(X, internal, *split_args), axis=1)
            _, first, inverse = np.unique(bits, axis=0, return_index=True, return_inverse=True)
        phi = shap_values(X[first], root, size, p["value"], p["count"], p["feature"],
                          p["threshold"], p["miss_left"], p["left"], p["right"], p["is_leaf"],
                          p["is_cat"], p["bitset"], p["bitsets"], p["known"], p["f_idx_map"])
        out += phi[inverse.ravel()]
    return out, p["base"]


# --- the public entry point -----------------------------------------------------------------
def _as_array(encoded) -> np.ndarray:
    return np.asarray(encoded.to_numpy() if hasattr(encoded, "to_numpy") else encoded, float)


def _encoded(pipeline, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    return _as_array(pipeline[:-1].transform(X))


# --- one transform per batch, shared by the score and its reasons ---------------------------
# The pipeline's steps before the estimator (LeadFeatures, the ColumnTransformer) are most of
# the cost of scoring a few leads; explain() needs their output too. A scorer that wants both
# transforms once (`encode_rows`) and hands the result to `predict_encoded` and `explain`.
def _encoded_twin(model):
    """An estimator whose predict_proba(pipeline[:-1].transform(X)) is model.predict_proba(X),
    by the same scikit-learn code; None when the model is not one this holds for.

    Pipeline.decision_function / predict_proba(X) is the final step's method on
    `pipeline[:-1].transform(X)`. So a CalibratedClassifierCV whose calibrated classifiers all
    wrap one pipeline gives the same probabilities when each calibrated classifier's estimator
    is that pipeline's final step and it is given the encoded rows: sklearn's own calibration
    code then runs on the same margins, and nothing is re-implemented here (the scores stay
    bit-identical; tests/model/test_shared_transform.py checks it)."""
    stamp = getattr(model, "calibrated_classifiers_", None) or getattr(model, "steps", None)
    return _cached(_make_twin, model, stamp)


def _make_twin(model):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

    if type(model) is Pipeline:
        # A blend's encoded rows are Blocks, one per member; its classifier takes them whole.
        return model.steps[-1][1] if len(model.steps) > 1 else None
    parts = getattr(model, "calibrated_classifiers_", None)
    if type(model) is not CalibratedClassifierCV or not parts:
        return None
    first = parts[0].estimator
    inner = getattr(first, "estimator", first)  # FrozenEstimator → the fitted Pipeline
    if not (all(c.estimator is first for c in parts) and type(inner) is Pipeline
            and len(inner.steps) > 1
            and all(getattr(c, "method", "") in ("sigmoid", "isotonic") for c in parts)):
        return None
    twin = copy.copy(model)
    twin.calibrated_classifiers_ = []
    for c in parts:
        part = copy.copy(c)
        part.estimator = inner.steps[-1][1]
        twin.calibrated_classifiers_.append(part)
    return twin


def encode_rows(model, X: pd.DataFrame) -> Any:  # noqa: N803
    """pipeline[:-1].transform(X) for `predict_encoded` and `explain(..., transformed=)`, or
    None when this model's probabilities cannot be served from it (then call predict_proba).

    A few rows (a lead scored by `leadq serve`) go through the pipeline's compiled form
    (leadq.models.compiled) when it has one: the same numbers without pandas' and
    scikit-learn's per-call cost."""
    if _encoded_twin(model) is None:
        return None
    pipeline, _ = unwrap(model)
    if len(X) <= COMPILED_MAX_ROWS:
        compiled = _compiled(pipeline)
        if not isinstance(compiled, Exception):
            return compiled.transform(X)
    return pipeline[:-1].transform(X)


# Up to this many rows the compiled transform is used; above it pandas' and scikit-learn's
# vectorised steps are the faster ones (the per-row lookups are Python loops).
COMPILED_MAX_ROWS = 32


def _compile(pipeline):
    from leadq.models.compiled import NotCompiled, compile_transform

    try:
        return compile_transform(pipeline)
    except NotCompiled as exc:
        return exc


def _encode_stamp(pipeline):
    """What a refit replaces in the encoder: a ColumnTransformer's fitted transformers, a
    blend's fitted member encoders (a compiled form cached under it is then rebuilt)."""
    encode = pipeline.named_steps.get("encode")
    return getattr(encode, "transformers_", None) or getattr(encode, "encoders_", None)


def _compiled(pipeline):
    """The pipeline's CompiledTransform, or the NotCompiled saying why it has none."""
    stamp = _encode_stamp(pipeline)
    return _cached(_compile, pipeline, stamp)


def check_compiled(model, X: pd.DataFrame) -> str | None:  # noqa: N803
    """Hold the compiled transform of `model` equal to its pipeline on `X` (the service's
    warm-up leads): None when it is in use, else why this model is scored without it (it then
    is off for this fitted model for good, so a mismatch can never reach an answer)."""
    from leadq.models.compiled import NotCompiled, matches

    if _encoded_twin(model) is None:
        return "the model's probabilities are not computed from encoded rows " \
               f"({type(model).__name__})"
    pipeline, _ = unwrap(model)
    compiled = _compiled(pipeline)
    if isinstance(compiled, Exception):
        return str(compiled)
    try:
        why = None if matches(compiled, pipeline, X.iloc[:COMPILED_MAX_ROWS]) else \
            "its output differed from the pipeline's on the warm-up leads"
    except Exception as exc:  # noqa: BLE001 - whatever failed, the pipeline scores instead
        why = f"it failed on the warm-up leads ({type(exc).__name__})"
    if why is not None:
        stamp = _encode_stamp(pipeline)
        with _per_model_lock:
            _per_model[pipeline][_compile] = (stamp, NotCompiled(why))
    return why


def predict_proba_few(model, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    """model.predict_proba(X), through the compiled steps for a few rows when the model has
    them (the same scikit-learn estimator and calibration code on the same encoded rows)."""
    if len(X) <= COMPILED_MAX_ROWS and _encoded_twin(model) is not None:
        pipeline, _ = unwrap(model)
        compiled = _compiled(pipeline)
        if not isinstance(compiled, Exception):
            return _encoded_twin(model).predict_proba(compiled.transform(X))
    return model.predict_proba(X)


def predict_encoded(model, transformed: Any) -> np.ndarray:
    """model.predict_proba(X)[:, 1], from `encode_rows(model, X)`."""
    twin = _encoded_twin(model)
    if twin is None:
        raise ValueError("this model cannot score encoded rows; use predict_proba")
    return twin.predict_proba(transformed)[:, 1]


REFERENCE_ATTR = "explain_reference_"


def set_explain_reference(pipeline, X: pd.DataFrame,  # noqa: N803
                          sample_weight: np.ndarray | None = None) -> None:
    """Store the mean encoded training row on a fitted logistic-regression pipeline.

    It is the fixed reference the linear reasons are measured from. Without it the reference is
    the mean of the leads being explained, so a lead's reasons would depend on which other
    leads share its chunk or Spark batch."""
    encoded = _encoded(pipeline, X)
    setattr(pipeline.steps[-1][1], REFERENCE_ATTR,
            np.average(encoded, axis=0, weights=sample_weight))


def explain(model, X: pd.DataFrame, background: pd.DataFrame | None = None,  # noqa: N803
            *, transformed: Any = None) -> Explanation:
    """Exact contributions of each raw column to the uncalibrated model's margin, per lead.

    `transformed` is `encode_rows(model, X)` when the caller has it already (the scorer)."""

    from leadq.models.blend import BlendClassifier

    if hasattr(model, "members_"):
        return _explain_segmented(model, X, background)
    pipeline, _ = unwrap(model)
    estimator = pipeline.steps[-1][1]
    if isinstance(estimator, BlendClassifier):
        return _explain_blend(pipeline, X, background, transformed)
    values, raw, base, margin, method = _explain_arrays(pipeline, X, background, transformed)
    return Explanation(pd.DataFrame(values, columns=raw, index=X.index), base, margin, method)


def _explain_arrays(pipeline, X: pd.DataFrame, background: pd.DataFrame | None,  # noqa: N803
                    transformed: Any) -> tuple[np.ndarray, list[str], float, np.ndarray, str]:
    """explain() of a single-estimator pipeline as arrays: (contributions n × raw columns, the
    raw columns, base, margin, method); a blend adds its members' without a frame each."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression


    estimator = pipeline.steps[-1][1]
    group, raw = _group_matrix(pipeline)
    if transformed is None:
        transformed = pipeline[:-1].transform(X)
    if isinstance(estimator, HistGradientBoostingClassifier):
        encoded = _hgb_input(estimator, transformed)
        margin = _hgb_margin(estimator, encoded)
        phi, base = tree_shap_hgb(estimator, encoded)
        method = METHOD_TREE
    elif isinstance(estimator, LogisticRegression):
        encoded = _as_array(transformed)
        if isinstance(transformed, np.ndarray) and transformed.dtype == np.float64 and \
                estimator.coef_.shape[0] == 1 and np.isfinite(transformed).all():
            # decision_function's own product and sum (bit for bit), without its input checks
            # (what they refuse, an infinite or missing input, goes to decision_function)
            margin = (transformed @ estimator.coef_.T + estimator.intercept_).ravel()
        else:
            margin = np.asarray(estimator.decision_function(transformed), float)
        stored = getattr(estimator, REFERENCE_ATTR, None)
        if background is not None:
            reference = _encoded(pipeline, background).mean(axis=0)
        elif stored is not None:
            reference = np.asarray(stored, float)
        else:  # a model saved before the training reference was stored
            reference = encoded.mean(axis=0)
        coef = estimator.coef_.ravel()
        phi = (encoded - reference) * coef
        base = float(estimator.intercept_[0] + reference @ coef)
        method = METHOD_LINEAR
    else:
        raise ValueError(f"no exact explanation for {type(estimator).__name__}")
    return phi @ group, raw, float(base), margin, method


def _hgb_margin(hgb, encoded: np.ndarray) -> np.ndarray:
    """hgb.decision_function of its encoded input: for a few rows by walking the packed trees
    in one kernel call (the same sums: tests/model/test_compiled_transform.py), else by
    scikit-learn's own predictors (leadq.models.compiled.hgb_margin)."""
    from leadq.models.compiled import hgb_margin

    if len(encoded) <= COMPILED_MAX_ROWS and hgb.n_trees_per_iteration_ == 1:
        from leadq.models import treeshap_kernel as kernel

        p = _cached(_pack_hgb, hgb, getattr(hgb, "_predictors", None))
        return kernel.tree_margins(
            np.ascontiguousarray(encoded, dtype=np.float64), p["roots"], p["baseline"],
            p["value"], p["feature"], p["threshold"], p["miss_left"], p["left"], p["right"],
            p["is_leaf"], p["is_cat"], p["bitset"], p["bitsets"], p["known"], p["f_idx_map"])
    return np.asarray(hgb_margin(hgb, encoded), float)


def _compile_hgb(hgb):
    from leadq.models.compiled import NotCompiled, compile_hgb_input

    try:
        return compile_hgb_input(hgb)
    except NotCompiled as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - an input step it does not follow: sklearn's own
        return NotCompiled(f"{type(exc).__name__}: {exc}")


def _hgb_input(hgb, transformed: Any) -> np.ndarray:
    """`hgb._preprocess_X(transformed)`: for a few rows through its compiled form
    (leadq.models.compiled.compile_hgb_input, checked against scikit-learn's when built)."""
    if len(transformed) <= COMPILED_MAX_ROWS and not hasattr(transformed, "columns"):
        compiled = _cached(_compile_hgb, hgb, getattr(hgb, "_preprocessor", None))
        if not isinstance(compiled, Exception):
            return compiled(transformed)
    return hgb._preprocess_X(transformed, reset=False)


def _explain_blend(pipeline, X: pd.DataFrame, background: pd.DataFrame | None,  # noqa: N803
                   transformed: Any) -> Explanation:
    """A blend's margin is a + Σ wᵢ · memberᵢ's margin (leadq.models.blend), so each raw
    column's exact contribution is Σ wᵢ · its contribution to memberᵢ, and the base
    a + Σ wᵢ · baseᵢ: base + Σ contributions = margin still holds lead by lead."""
    from leadq.models.blend import member_pipelines

    blend = pipeline.steps[-1][1]
    members = _cached(member_pipelines, pipeline, getattr(blend, "estimators_", None))
    if transformed is None:
        transformed = pipeline[:-1].transform(X)
    raw = raw_columns_of(pipeline)
    at = {col: j for j, col in enumerate(raw)}
    contributions = np.zeros((len(X), len(raw)))
    base, methods = blend.intercept_, []
    # The blend's margin from its members' margins, in BlendClassifier.decision_function's own
    # order of operations (bit-identical), instead of running every member's model again.
    margin = np.full(len(X), blend.intercept_, dtype=float)
    for w, member, block in zip(blend.weights_, members, transformed, strict=True):
        values, cols, member_base, member_margin, method = _explain_arrays(
            member, X, background, block)
        contributions[:, [at[c] for c in cols]] += w * values
        base += w * member_base
        margin += w * np.asarray(member_margin, float).ravel()
        methods.append(f"{w:.3g} × {method}")
    return Explanation(pd.DataFrame(contributions, columns=raw, index=X.index), float(base),
                       margin, "blend: " + " + ".join(methods))


def _explain_segmented(model, X: pd.DataFrame,  # noqa: N803
                       background: pd.DataFrame | None) -> Explanation:
    """Each lead explained by the model that scores it (leadq.models.segments): its margin and
    base are that model's, so base + Σ contributions = margin holds lead by lead."""
    raw = raw_columns_of(unwrap(model)[0])
    contributions = pd.DataFrame(0.0, index=X.index, columns=raw)
    margin, base = np.zeros(len(X)), np.zeros(len(X))
    methods = []
    for part, rows in model.parts(X):
        exp = explain(part, X.iloc[rows], background)
        contributions.iloc[rows] = exp.contributions.reindex(columns=raw, fill_value=0.0
                                                             ).to_numpy()
        margin[rows], base[rows] = exp.margin, exp.base_value
        methods.append(exp.method)
    method = methods[0] if len(set(methods)) == 1 else "; ".join(dict.fromkeys(methods))
    return Explanation(contributions, float(base.mean()) if len(base) else 0.0, margin,
                       f"per segment ({model.column}): {method}", base_values=base)


def to_points(explanation: Explanation, calibrators) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Contributions in percentage points of calibrated probability (see module docstring).

    Returns (points per raw column, calibrated p per lead, calibrated p of the base lead).
    """
    m0 = explanation.base_value
    m = explanation.margin
    p = calibrated_probability(calibrators, m)
    p0, local = _base_point(calibrators, m0)
    dm = m - m0
    with np.errstate(divide="ignore", invalid="ignore"):
        secant = np.where(np.abs(dm) > 1e-9, (p - p0) / dm, local)
    slope = np.where(secant > 0, secant, local)
    contributions = explanation.contributions
    points = pd.DataFrame(contributions.to_numpy() * (100.0 * slope)[:, None],
                          index=contributions.index, columns=contributions.columns)
    return points, p, p0


# (p0, local slope) per model and base margin: they depend on neither the leads nor the batch.
_base_points: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _base_point(calibrators, m0: float) -> tuple[float, float]:
    """g(m0) and g's local slope around m0 (the base lead's score and the slope used where g
    is flat between m0 and a lead's margin), worked out once per model and base margin."""
    owner = calibrators[0] if calibrators else None
    key = (tuple(id(c) for c in calibrators or ()), float(m0))
    if owner is not None:
        with _per_model_lock:
            found = _base_points.get(owner, {}).get(key)
        if found is not None:
            return found
    p0 = float(calibrated_probability(calibrators, np.array([m0]))[0])
    local = p0 * (1 - p0)  # the logistic slope, if g is flat however wide we look
    for window in (SLOPE_WINDOW, 2 * SLOPE_WINDOW, 4 * SLOPE_WINDOW, 8 * SLOPE_WINDOW):
        lo, hi = calibrated_probability(calibrators, np.array([m0 - window, m0 + window]))
        if hi > lo:
            local = (hi - lo) / (2 * window)
            break
    if owner is not None:
        with _per_model_lock:
            per_owner = _base_points.setdefault(owner, {})
            if len(per_owner) > 64:  # segmented models' per-lead bases: keep it small
                per_owner.clear()
            per_owner[key] = (p0, local)
    return p0, local


# --- plain-words reasons --------------------------------------------------------------------
def display_values(X: pd.DataFrame, pipeline,  # noqa: N803
                   columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """What a reason shows for each raw column (or for `columns` only): never a personal value.

    The email shows only its kind (corporate / free-mail), as the model uses it; the creation
    time shows its date; other columns their own value.
    """
    from leadq.features.transform import (
        SMALL_FRAME_ROWS,
        email_is_corporate,
        per_distinct,
        per_value_cells,
    )

    feats = pipeline.named_steps["features"]
    # A few leads (`leadq serve`): pandas' fixed cost per column call is most of the work, so
    # numbers are formatted cell by cell (what Series.map does per cell) and texts come from
    # per_distinct's memo of this same function; both give the bulk path's strings.
    small = len(X) <= SMALL_FRAME_ROWS
    out: dict[str, np.ndarray] = {}
    for col in raw_columns_of(pipeline) if columns is None else columns:
        values = X[col]
        if is_activity_feature(col):  # "3 content downloads in the last 30 days"
            out[col] = np.array([describe(col, v) for v in values.tolist()], dtype=object)
            continue
        if col == feats.email:
            flag = email_is_corporate(values).to_numpy()
            text = np.where(flag == 1.0, "corporate", np.where(flag == 0.0, "free-mail",
                                                                "missing"))
            out[col] = text.astype(object)
            continue
        if col == feats.created_at:
            if small and pd.api.types.is_datetime64_any_dtype(values):
                # Timestamp.strftime is what the column's strftime runs per element.
                out[col] = np.array(["missing" if v is pd.NaT else v.strftime(DAY_FORMAT)
                                     for v in values.tolist()], dtype=object)
                continue
            when = pd.to_datetime(values, errors="coerce", format="mixed")
            text = when.dt.strftime(DAY_FORMAT).astype(object)
        elif pd.api.types.is_numeric_dtype(values):
            if small:
                out[col] = np.array([_number_text(v) or "missing" for v in values.tolist()],
                                    dtype=object)
                continue
            text = values.map(_number_text).astype(object)
        elif small and isinstance(values.dtype, pd.StringDtype):
            # Text dtypes only: an object column may hold 1 and 1.0, one memo entry apart.
            found = per_value_cells(values.tolist(), _display_text)
            if found is not None:
                out[col] = np.array(["missing" if pd.isna(v) else v for v in found.tolist()],
                                    dtype=object)
                continue
            text = per_distinct(values, _display_text)
        else:
            text = _display_text(values)
        out[col] = text.where(pd.notna(text), "missing").to_numpy(dtype=object)
    return out


class _Shown(dict):
    """display_values(X, pipeline), a column worked out when a reason first shows it: a lead's
    six reasons read a few of its thirty-odd columns."""

    def __init__(self, X: pd.DataFrame, pipeline) -> None:  # noqa: N803
        super().__init__()
        self.X, self.pipeline = X, pipeline

    def __missing__(self, col: str) -> np.ndarray:
        self[col] = value = display_values(self.X, self.pipeline, [col])[col]
        return value


DAY_FORMAT = "%Y-%m-%d (%a)"  # how a reason shows the lead's creation time


def _number_text(v) -> str | None:
    return f"{v:g}" if pd.notna(v) else None


def _display_text(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().astype(object)


def _label(col: str, feats) -> str:
    return "email domain" if col == feats.email else col


def reason_texts(points: pd.DataFrame, shown: dict[str, np.ndarray], pipeline,
                 top: int = 3) -> tuple[list[str], list[str]]:
    """Up to `top` positive and `top` negative reasons per lead, strongest first.

    Each reason reads ``job_title = CFO: +18.2 points``; contributions under 0.05 points are
    left out so a reason always moves the score visibly.
    """
    feats = pipeline.named_steps["features"]
    cols = list(points.columns)
    labels = [_label(c, feats) for c in cols]
    # An activity feature's shown value is already a phrase ("3 webinars in the last 30 days").
    heads = [("{}" if is_activity_feature(c) else label + " = {}") for c, label in
             zip(cols, labels, strict=True)]
    vals = points.to_numpy()
    order = np.argsort(-vals, axis=1, kind="stable")
    pos_out, neg_out = [], []
    for r in range(len(vals)):
        row, idx = vals[r], order[r]
        pos = [f"{heads[j].format(shown[cols[j]][r])}: {row[j]:+.1f} points"
               for j in idx[:top] if row[j] >= 0.05]
        neg = [f"{heads[j].format(shown[cols[j]][r])}: {row[j]:+.1f} points"
               for j in idx[::-1][:top] if row[j] <= -0.05]
        pos_out.append("; ".join(pos))
        neg_out.append("; ".join(neg))
    return pos_out, neg_out


@dataclass
class Scored:
    """An explanation and the scores computed from its margin."""

    explanation: Explanation
    probability: np.ndarray  # model.predict_proba(X)[:, 1], bit for bit


def explain_and_score(model, X: pd.DataFrame, transformed: Any) -> Scored | None:  # noqa: N803
    """The explanation of X and model.predict_proba(X)[:, 1] from its margin: an explanation
    computes the uncalibrated model's margin anyway, so the scores need not run the model a
    second time. None where the scores are not the calibration of that margin by
    CalibratedClassifierCV's own arithmetic (a segmented or uncalibrated model): the caller
    then scores with predict_proba and explains on its own.

    `transformed` is `encode_rows(model, X)`."""
    if transformed is None or hasattr(model, "members_") or \
            not hasattr(model, "calibrated_classifiers_") or _encoded_twin(model) is None:
        return None
    _, calibrators = unwrap(model)
    explanation = explain(model, X, transformed=transformed)
    return Scored(explanation, calibrated_probability(calibrators, explanation.margin))


def explain_leads(model, X: pd.DataFrame, top: int = 3, *,  # noqa: N803
                  transformed: Any = None, explanation: Explanation | None = None
                  ) -> pd.DataFrame:
    """reasons_positive / reasons_negative text columns for scored leads, indexed like X.

    `transformed`: `encode_rows(model, X)`, when the caller scored from it already.
    `explanation`: `explain(model, X)`, when the caller has it (`explain_and_score`)."""
    if hasattr(model, "members_"):  # a segmented model: each lead's reasons from its model
        out = pd.DataFrame({"reasons_positive": "", "reasons_negative": ""}, index=X.index,
                           dtype=object)
        for part, rows in model.parts(X):
            sub = X.iloc[rows]
            encoded = encode_rows(part, sub) if len(sub) <= COMPILED_MAX_ROWS else None
            out.iloc[rows] = explain_leads(part, sub, top=top, transformed=encoded).to_numpy()
        return out
    pipeline, calibrators = unwrap(model)
    if explanation is None:
        explanation = explain(model, X, transformed=transformed)
    points, _, _ = to_points(explanation, calibrators)
    pos, neg = reason_texts(points, _Shown(X, pipeline), pipeline, top=top)
    return pd.DataFrame({"reasons_positive": pos, "reasons_negative": neg}, index=X.index)
