"""Estimator factories: unfitted sklearn Pipelines that take raw lead rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
    TargetEncoder,
)

from leadq.errors import ConfigError
from leadq.features.columns import model_inputs
from leadq.features.transform import LeadFeatures, normalise_category
from leadq.models.baselines import MAX_CATEGORIES
from leadq.models.pairs import PairTargetEncoder
from leadq.settings import setting


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """log1p that keeps the sign: tames heavy-tailed counts without breaking on negatives."""
    return np.sign(x) * np.log1p(np.abs(x))


def lead_features(params: dict) -> LeadFeatures:
    roles = model_inputs(params)
    return LeadFeatures(
        categorical=tuple(roles["categorical"]),
        numeric=tuple(roles["numeric"]) + tuple(roles["activity"]),
        email=roles["email"],
        job_title=roles["job_title"],
        created_at=roles["created_at"],
    )


def target_encoded(params: dict, categorical: list[str]) -> tuple[list[str], list[str]]:
    """Split categorical inputs into (one-hot / native, target-encoded) by features.target_encode.

    High-cardinality columns (landing pages, campaigns) one-hot encode into hundreds of sparse,
    noisy columns; a cross-fitted target encoding turns each into one smoothed conversion rate
    without memory blow-up or in-sample overfitting.
    """
    wanted = set(setting(params, "features.target_encode") or [])
    return [c for c in categorical if c not in wanted], [c for c in categorical if c in wanted]


def target_encoder(params: dict) -> TargetEncoder:
    # Cross-fitting inside fit_transform: each training row is encoded by folds that exclude it.
    seed = setting(params, "train.random_state", int)
    return TargetEncoder(target_type="binary",
                         cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=seed))


def pair_encoder(params: dict, cfg: dict, categorical: list[str]) -> PairTargetEncoder | None:
    """The category-pair step (models/pairs.py) for train.<candidate>.category_pairs, or None
    when it is off or there are fewer than two category columns to pair."""
    k = int(cfg["category_pairs"] or 0)
    if k <= 0 or len(categorical) < 2:
        return None
    return PairTargetEncoder(max_pairs=k,
                             min_gain=setting(params, "features.pair_min_gain", float),
                             random_state=setting(params, "train.random_state", int))


def make_logreg(params: dict) -> Pipeline:
    """Logistic regression: one-hot categories (rare ones pooled), scaled log counts."""
    feats = lead_features(params)
    cfg = setting(params, "train.logreg")
    onehot, encoded = target_encoded(params, feats.categorical_out())
    # pool_rare false: every category its own column, as the library-default baseline has it,
    # up to the baseline's MAX_CATEGORIES (a column per value of a near-unique column does not
    # fit in memory).
    pool = cfg["pool_rare"]
    if cfg["high_cardinality"] == "onehot":
        # Searched: one-hot can beat the encoding. Unpooled it is the library-default
        # baseline's own encoding (logreg-defaults must equal it), capped like it.
        onehot, encoded = onehot + encoded, []
    pairs = pair_encoder(params, cfg, feats.categorical_out())
    encode = ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=setting(params, "features.min_category_frequency", int)
                    if pool else None,
                    max_categories=setting(params, "features.max_categories", int)
                    if pool else MAX_CATEGORIES,
                    sparse_output=False,
                ),
                onehot,
            ),
            # Only present when configured, so encoders never hold an unfitted empty branch.
            *([("te", Pipeline([("target", target_encoder(params)),
                                ("scale", StandardScaler())]), encoded)] if encoded else []),
            (
                "num",
                Pipeline([
                    ("impute", SimpleImputer(strategy="median",
                                             add_indicator=cfg["missing_indicator"],
                                             keep_empty_features=True)),
                    # Counts are heavy-tailed (log); balances and rates may be linear as they
                    # are: searched (train.logreg.numeric_scale), log by default.
                    *([("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one"))]
                      if cfg["numeric_scale"] == "log" else []),
                    ("scale", StandardScaler()),
                ]),
                feats.numeric_out(),
            ),
            *([("pairs", Pipeline([("pairs", pairs), ("scale", StandardScaler())]),
                feats.categorical_out())] if pairs else []),
        ]
    )
    model = LogisticRegression(
        C=float(cfg["C"]),
        max_iter=int(cfg["max_iter"]),
        class_weight=cfg["class_weight"],
    )
    return Pipeline([("features", feats), ("encode", encode), ("model", model)])


def onehot_widths(params: dict, X: pd.DataFrame) -> dict[str, int]:  # noqa: N803
    """Per categorical input, the most one-hot columns a logistic regression this training may
    fit builds from the rows `X`: the tuned configuration (pooled by features.min_category_
    frequency and max_categories when train.logreg.pool_rare; its target_encode columns too
    when one-hot may be searched), and with train.compare_defaults the library's (the
    baseline's encoding: every category column one-hot, unpooled up to MAX_CATEGORIES)."""
    cfg = setting(params, "train.logreg")
    min_freq = setting(params, "features.min_category_frequency", int)
    max_cats = setting(params, "features.max_categories", int)
    hc_onehot = cfg["high_cardinality"] == "onehot" or bool(
        setting(params, "train.search.enabled"))
    defaults = bool(setting(params, "train.compare_defaults"))
    plain, encoded = target_encoded(params, lead_features(params).categorical_out())
    out = {}
    for col in [*plain, *encoded]:
        counts = normalise_category(X[col]).value_counts()
        pooled = min(int((counts >= min_freq).sum()) + 1, max_cats, len(counts))
        unpooled = min(len(counts), MAX_CATEGORIES)
        widths = [0]
        if col in plain or hc_onehot:
            widths.append(pooled if cfg["pool_rare"] else unpooled)
        if defaults:
            widths.append(unpooled)
        out[col] = max(widths)
    return out


def check_encoding_size(params: dict, X: pd.DataFrame) -> None:  # noqa: N803
    """Stop (exit 2) before fitting when the logistic regression's dense one-hot matrix of the
    rows `X` would exceed features.max_encoded_mb, naming the widest columns and the settings
    that shrink it. Without logreg among train.candidates there is no one-hot to build."""
    if "logreg" not in (setting(params, "train.candidates") or []):
        return
    budget = setting(params, "features.max_encoded_mb", int)
    widths = onehot_widths(params, X)
    numbers = len(lead_features(params).numeric_out())
    if setting(params, "train.logreg")["missing_indicator"]:
        numbers *= 2
    megabytes = len(X) * (sum(widths.values()) + numbers) * 8 / 2**20
    if megabytes <= budget:
        return
    widest = sorted(widths.items(), key=lambda kv: -kv[1])[:3]
    raise ConfigError(
        f"features.max_encoded_mb: the logistic regression's one-hot encoding of {len(X):,} "
        f"leads would take {megabytes:,.0f} MB (budget {budget:,} MB); widest: "
        + ", ".join(f"{c!r} ({w:,} columns)" for c, w in widest)
        + ". List such columns in features.target_encode, lower features.max_categories, "
        "drop logreg from train.candidates, or raise features.max_encoded_mb if the machine "
        "has the memory (fitting needs about three times the matrix)")


def make_hgb(params: dict) -> Pipeline:
    """HistGradientBoosting with native categorical splits and monotone constraints."""
    feats = lead_features(params)
    cfg = dict(setting(params, "train.hgb"))
    pairs = pair_encoder(params, cfg, feats.categorical_out())
    cfg.pop("category_pairs", None)
    width = pairs.max_pairs if pairs else 0
    cats, encoded = target_encoded(params, feats.categorical_out())
    if cfg.pop("high_cardinality") == "native":
        cats, encoded = cats + encoded, []  # searched: native splits over the pooled codes
    pool = cfg.pop("pool_rare")
    nums = feats.numeric_out()
    encode = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    min_frequency=setting(params, "features.min_category_frequency", int)
                    if pool else None,
                    # HGB bins categories into at most 255 bins, one of them for missing.
                    max_categories=min(setting(params, "features.max_categories", int), 250)
                    if pool else 250,
                ),
                cats,
            ),
            *([("te", target_encoder(params), encoded)] if encoded else []),
            ("num", "passthrough", nums),
            *([("pairs", pairs, feats.categorical_out())] if pairs else []),
        ]
    )
    increasing = set(setting(params, "features.monotonic_increasing") or [])
    monotonic = ([0] * (len(cats) + len(encoded)) + [1 if c in increasing else 0 for c in nums]
                 + [0] * width)
    model = HistGradientBoostingClassifier(
        categorical_features=[True] * len(cats) + [False] * (len(encoded) + len(nums) + width),
        monotonic_cst=monotonic if any(monotonic) else None,
        random_state=setting(params, "train.random_state", int),
        **cfg,
    )
    return Pipeline([("features", feats), ("encode", encode), ("model", model)])


FACTORIES: dict[str, Callable[[dict], Pipeline]] = {"logreg": make_logreg, "hgb": make_hgb}


def make_candidate(name: str, params: dict) -> Pipeline:
    if name not in FACTORIES:
        raise ValueError(f"unknown candidate {name!r}; choose from {', '.join(FACTORIES)}")
    return FACTORIES[name](params)
