"""Hyperparameter search for each candidate on time-ordered folds of the training leads.

Optuna's TPE sampler proposes settings; each is scored by fitting on older training leads and
scoring the next block (expanding window), as the model is used: on leads newer than its data.
The budget (trials and seconds per candidate, rows used) lives in params.yaml train.search so
the demo stays quick and a large CRM does not search for hours.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from leadq.models.behaviour import clamp_monotone_logreg
from leadq.models.explain import set_explain_reference
from leadq.models.factories import make_candidate
from leadq.settings import setting

# Search spaces. class_weight is searched too: "balanced" up-weights the rare converters, which
# can sharpen ranking; calibration afterwards restores honest probabilities.
SPACES = {
    "logreg": {
        "C": ("log_float", 1e-3, 10.0),
        "class_weight": ("choice", [None, "balanced"]),
        "high_cardinality": ("choice", ["target", "onehot"]),
        "numeric_scale": ("choice", ["log", "linear"]),
    },
    "hgb": {
        "learning_rate": ("log_float", 0.02, 0.2),
        "max_leaf_nodes": ("int", 7, 63),
        "min_samples_leaf": ("int", 20, 200),
        "l2_regularization": ("log_float", 1e-3, 10.0),
        "class_weight": ("choice", [None, "balanced"]),
        "high_cardinality": ("choice", ["target", "native"]),
    },
}
# Trial 1 of every search: scikit-learn's own defaults with the plainest encoding, so the
# search can only improve on what the library-default baselines (models/baselines.py) do.
LIBRARY_DEFAULTS = {
    "logreg": {"C": 1.0, "class_weight": None, "high_cardinality": "onehot",
               "numeric_scale": "linear"},
    "hgb": {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
            "l2_regularization": 1e-3, "class_weight": None, "high_cardinality": "native"},
}
# The library's own configuration, encoding included (what models/baselines.py fits), in
# leadq's pipeline: with train.compare_defaults it competes with the tuned configuration in
# the final out-of-fold comparison. The search scores on folds of train only and can overfit
# them; this way its winner must also beat the three-line default on the newer leads.
LIBRARY_CONFIG = {
    "logreg": {**LIBRARY_DEFAULTS["logreg"], "pool_rare": False, "missing_indicator": False,
               "category_pairs": 0},
    "hgb": {**LIBRARY_DEFAULTS["hgb"], "l2_regularization": 0.0, "max_iter": 100,
            "early_stopping": "auto", "pool_rare": False, "category_pairs": 0},
}
DEFAULTS_SUFFIX = "-defaults"


def factory_name(label: str) -> str:
    """The candidate factory behind a label: `hgb` for both `hgb` and `hgb-defaults`."""
    return label.removesuffix(DEFAULTS_SUFFIX)


@dataclass
class SearchResult:
    candidate: str
    best_params: dict
    best_score: float
    trials: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def with_hyperparameters(params: dict, name: str, values: dict) -> dict:
    """A copy of params whose train.<name> section carries `values`."""
    out = copy.deepcopy(params)
    out["train"].setdefault(name, {})
    out["train"][name] = {**(out["train"][name] or {}), **values}
    return out


def fit_candidate(name: str, params: dict, X: pd.DataFrame, y: pd.Series,  # noqa: N803
                  derived: bool = False, sample_weight: np.ndarray | None = None) -> Pipeline:
    """Build and fit one candidate; logistic regression gets its monotone coefficients clamped.

    derived=True: X already went through LeadFeatures (stateless), so the search derives
    features once instead of once per fold and trial; such a model is for scoring folds only.
    """
    name = factory_name(name)
    model = make_candidate(name, params)
    if derived:
        model.set_params(features="passthrough")
    if sample_weight is None:
        model.fit(X, y)
    else:
        model.fit(X, y, model__sample_weight=np.asarray(sample_weight, float))
    if name == "logreg":
        clamp_monotone_logreg(model, params["features"].get("monotonic_increasing") or [])
        if not derived:  # a model that may be registered: its reasons get a fixed reference
            set_explain_reference(model, X, sample_weight)
    return model


def score_metric(metric: str, y: np.ndarray, score: np.ndarray) -> float:
    """Higher is better for every metric the search may optimise."""
    if metric == "roc_auc":
        return float(roc_auc_score(y, score))
    if metric == "pr_auc":
        return float(average_precision_score(y, score))
    if metric == "log_loss":
        return -float(log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1]))
    raise ValueError(f"train.search.metric must be roc_auc, pr_auc or log_loss, got {metric!r}")


def time_folds(n: int, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over rows already in time order: fit on the past, score the next
    (scikit-learn's TimeSeriesSplit: `folds` equal blocks scored, the oldest only trains)."""
    from sklearn.model_selection import TimeSeriesSplit

    if n < folds + 1:
        return []
    return list(TimeSeriesSplit(n_splits=folds).split(np.arange(n)))


def _suggest(trial, space: dict) -> dict:
    values = {}
    for key, (kind, *args) in space.items():
        if kind == "log_float":
            values[key] = trial.suggest_float(key, args[0], args[1], log=True)
        elif kind == "int":
            values[key] = trial.suggest_int(key, args[0], args[1])
        else:
            values[key] = trial.suggest_categorical(key, args[0])
    return values


def search_candidate(name: str, params: dict, X: pd.DataFrame, y: pd.Series,  # noqa: N803
                     created_at: pd.Series | None) -> SearchResult:
    """Tune one candidate within train.search's budget; the configured values are trial 0."""
    import optuna

    metric = setting(params, "train.search.metric")
    order = np.argsort(created_at.to_numpy(), kind="stable") if created_at is not None else (
        np.arange(len(y)))
    max_rows = setting(params, "train.search.max_rows", int)
    order = order[-max_rows:]  # the most recent rows: closest to the leads the model will score
    ys = y.iloc[order]
    # LeadFeatures is stateless: derive once, reuse for every fold of every trial.
    Xs = make_candidate(name, params).named_steps["features"].fit_transform(X.iloc[order])  # noqa: N806
    folds = [(f, h) for f, h in time_folds(len(ys), setting(params, "train.search.folds", int))
             if 0 < ys.iloc[h].sum() < len(h) and 0 < ys.iloc[f].sum() < len(f)]
    space = dict(SPACES[name])
    if not setting(params, "features.target_encode"):
        space.pop("high_cardinality")  # nothing is target-encoded: the choice changes nothing
    base = setting(params, f"train.{name}")
    started = time.perf_counter()
    trials: list[dict] = []

    def objective(trial) -> float:
        values = _suggest(trial, space)
        trial_params = with_hyperparameters(params, name, values)
        scores = []
        for fit_idx, held_idx in folds:
            model = fit_candidate(name, trial_params, Xs.iloc[fit_idx], ys.iloc[fit_idx],
                                  derived=True)
            scores.append(score_metric(metric, ys.iloc[held_idx].to_numpy(),
                                       model.predict_proba(Xs.iloc[held_idx])[:, 1]))
        value = float(np.mean(scores)) if scores else float("nan")
        trials.append({"params": values, metric: value})
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=setting(params, "train.random_state", int))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    # Start from the hand-set values in params.yaml so the search can only improve on them.
    study.enqueue_trial({k: base.get(k, _default(space[k])) for k in space})
    study.enqueue_trial({k: v for k, v in LIBRARY_DEFAULTS[name].items() if k in space})
    if folds:
        study.optimize(objective, n_trials=setting(params, "train.search.trials", int),
                       timeout=setting(params, "train.search.timeout_seconds", float))
    if not study.trials or not folds:
        return SearchResult(name, {k: base.get(k) for k in space if k in base}, float("nan"),
                            trials, time.perf_counter() - started)
    return SearchResult(name, dict(study.best_params), float(study.best_value), trials,
                        time.perf_counter() - started)


def _default(spec: tuple) -> object:
    kind, *args = spec
    if kind == "log_float":
        return float(np.sqrt(args[0] * args[1]))
    if kind == "int":
        return int((args[0] + args[1]) // 2)
    return args[0][0]
