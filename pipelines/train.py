"""`leadq train`: label historical leads, fit candidates out of time, calibrate, pick the MQL bar,
log everything to MLflow and register the model (challenger; champion if it meets the criteria)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from leadq.errors import ConfigError, GateError
from leadq.features.columns import assert_no_leakage, model_inputs, raw_input_columns
from leadq.features.split import split_leads, split_method, test_set_name
from leadq.features.tables import build_labels
from leadq.models.baselines import (
    baseline_metrics,
    baseline_scores,
    below_baseline,
    paired_auc_interval,
)
from leadq.models.behaviour import behaviour_report
from leadq.models.blend import blend_pipeline, cross_fitted_stack, positive_stack
from leadq.models.calibration_choice import choose_calibration, choose_calibration_oof
from leadq.models.evaluation import evaluate
from leadq.models.factories import check_encoding_size
from leadq.models.leakage import check_leakage
from leadq.models.metrics import classification_metrics, roc_auc_interval
from leadq.models.oof import OutOfFold, out_of_fold
from leadq.models.routing import lead_weights
from leadq.models.search import (
    DEFAULTS_SUFFIX,
    LIBRARY_CONFIG,
    SearchResult,
    fit_candidate,
    search_candidate,
    with_hyperparameters,
)
from leadq.models.thresholds import (
    SegmentBars,
    ThresholdDecision,
    choose_segment_bars,
    choose_threshold,
    rates_at,
)
from leadq.pipelines.io.crm import CrmTables, load_crm
from leadq.pipelines.io.progress import log, step
from leadq.pipelines.params.loader import agreement_of
from leadq.settings import setting


@dataclass
class TrainResult:
    model: BaseEstimator
    candidate: str
    metrics: dict[str, float]
    threshold: ThresholdDecision
    validation_metrics: dict[str, dict[str, float]]
    fingerprint: dict
    test_frame: pd.DataFrame  # lead id, split, label, score, for plots and reports
    sample: pd.DataFrame  # raw model-input rows, used for the signature
    labels: pd.DataFrame = field(repr=False, default=None)
    # Evaluation tables (gains, calibration, tiers, segments), search trials, calibration
    # choice, and the raw test rows the champion/challenger gate re-scores (never logged).
    tables: dict[str, pd.DataFrame] = field(repr=False, default_factory=dict)
    search: dict[str, SearchResult] = field(repr=False, default_factory=dict)
    calibration: dict = field(default_factory=dict)
    test_inputs: pd.DataFrame | None = field(repr=False, default=None)
    # The (inputs, labels) the registered model was fitted on (benchmarks compare on them).
    fit_rows: tuple[pd.DataFrame, pd.Series] | None = field(repr=False, default=None)
    baseline_scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    # segments.column set: the column, the segments that met the minimums, those that kept
    # their own model (the per-segment table is tables["segment_models"]).
    segments: dict = field(default_factory=dict)


def fingerprint(tables: CrmTables, labels: pd.DataFrame, split: pd.Series, params: dict,
                as_of: pd.Timestamp | None) -> dict:
    """Counts, date ranges and label rates that identify the data a model was trained on."""
    spec = params["data"]["leads"]
    created = tables.leads[spec["created_at"]] if spec.get("created_at") else None
    labelled = labels["label"].notna()
    info = {
        "leads_rows": int(len(tables.leads)),
        "deals_rows": int(len(tables.deals)) if tables.deals is not None else 0,
        "feedback_rows": int(len(tables.feedback)) if tables.feedback is not None else 0,
        "labelled": int(labelled.sum()),
        "censored": int((~labelled).sum()),
        "label_rate": float(labels.loc[labelled, "label"].mean()) if labelled.any() else None,
        "label_status": labels["label_status"].value_counts().to_dict(),
        "as_of": None if as_of is None else str(as_of),
        "split_rows": split.value_counts().to_dict(),
        # Judged on the labelled leads split_leads saw, as it judged them.
        "split_method": split_method(None if created is None else created.loc[split.index]),
        "test_set": test_set_name(None if created is None else created.loc[split.index]),
    }
    if created is not None and created.notna().any():
        info["created_min"] = str(created.min())
        info["created_max"] = str(created.max())
        for part in ("train", "validation", "test"):
            dates = created.loc[split.index[split == part]]
            if len(dates):
                info[f"{part}_dates"] = [str(dates.min()), str(dates.max())]
    return info


def thread_limited(fn):
    """Run a training step with at most train.n_threads BLAS/OpenMP threads (null: no limit).

    HistGradientBoosting's OpenMP threads spin-wait; on a busy 2-core machine one thread is up
    to ~100× faster than two (measured: 0.7 s vs 64 s for the same fit), and a single thread
    costs little on an idle one.
    """

    @functools.wraps(fn)
    def wrapper(tables: CrmTables, params: dict) -> TrainResult:
        from threadpoolctl import threadpool_limits

        n = setting(params["train"], "n_threads")
        if n is None:
            return fn(tables, params)
        with threadpool_limits(limits=int(n)):
            return fn(tables, params)

    return wrapper


def ipw_weights_for(leads: pd.DataFrame, labelled: pd.Series, routing: pd.DataFrame | None,
                    id_col: str) -> tuple[pd.Series | None, dict]:
    """Inverse-propensity weights from the scorer's past routing (see leadq.models.routing).

    Only MQLs and explored leads reached sales, so only their outcomes are real: a lead leadq
    routed below the bar that nobody worked has no outcome (weight 0, left out), and each
    explored lead stands for the 1/explore_rate below-bar leads it was drawn from.
    """
    if routing is None:
        return None, {}
    weights = pd.Series(lead_weights(leads[id_col], routing), index=leads.index)
    info = {
        "ipw_unworked_left_out": int((labelled & (weights == 0)).sum()),
        "ipw_weighted_leads": int((labelled & (weights > 1)).sum()),
        "ipw_max_weight": float(weights[labelled].max()) if labelled.any() else 0.0,
    }
    log.info("IPW from the scorer's routing: %d unworked routed leads left out, %d explored "
             "leads weighted up to %.0f×", info["ipw_unworked_left_out"],
             info["ipw_weighted_leads"], info["ipw_max_weight"])
    return weights, info


@thread_limited
def train_models(tables: CrmTables, params: dict) -> TrainResult:
    """The pure training step: data and params in, a calibrated model and its evidence out."""
    assert_no_leakage(params)
    spec = params["data"]["leads"]
    leads = tables.leads
    labels, as_of = build_labels(leads, tables.deals, tables.feedback, params)
    labelled = labels["label"].notna()
    since = params["train"].get("since")
    if since and spec.get("created_at"):
        # History from before the sales process existed (no deals could close) teaches noise.
        labelled &= ~(leads[spec["created_at"]] < pd.Timestamp(str(since)))
    if tables.activities is not None:
        from leadq.pipelines.io.activities import touched_before_cutoff

        early = touched_before_cutoff(tables, params) & labelled
        if early.any():
            # With label.cutoff_days > 0: an outcome known before the MQL moment is no
            # prediction, and counting the engagement after sales' touch would leak it.
            log.info("%s labelled leads were worked or decided before their cut-off "
                     "(label.cutoff_days): left out of training", f"{int(early.sum()):,}")
            labelled &= ~early
    weights, ipw_info = ipw_weights_for(leads, labelled, tables.routing, spec.get("id"))
    if weights is not None:
        labelled &= weights > 0
    positives = int(labels.loc[labelled, "label"].sum())
    min_pos = setting(params["train"], "min_positives", int)
    if positives < min_pos:
        raise GateError(
            f"only {positives} labelled positive leads (train.min_positives = {min_pos}); "
            "a model trained on so few conversions would be noise. Collect more outcomes or "
            "lower the minimum knowingly."
        )
    data = leads.loc[labelled]
    y = labels.loc[labelled, "label"].astype(int)
    created = data[spec["created_at"]] if spec.get("created_at") in data else None
    scfg = params["split"]
    split = split_leads(created, y, train=setting(scfg, "train", float),
                        validation=setting(scfg, "validation", float),
                        seed=setting(scfg, "seed", int))
    for part in ("train", "validation", "test"):
        n_pos = int(y[split == part].sum())
        if n_pos == 0 or n_pos == int((split == part).sum()):
            raise GateError(f"the {part} split has only one class ({n_pos} positives); "
                            "need more labelled history")
    cols = raw_input_columns(params)
    X = data[cols]  # noqa: N806 - sklearn naming
    check_leakage(X, y, params)  # one input column alone predicting the label stops here
    # Before any fit: a one-hot too large for memory stops here, not as a MemoryError later.
    check_encoding_size(params, X[split != "test"])
    snapshots = snapshot_evidence(tables, data, params)
    empty = [c for c in model_inputs(params)["activity"]
             if c.endswith("_days_since") and data[c].isna().all()]
    if empty:
        raise ConfigError(
            "data.activities.types: no labelled lead has an event of "
            + ", ".join(repr(c.removeprefix("act_").removesuffix("_days_since")) for c in empty)
            + " before its cut-off, so the model could learn nothing from it: remove it from "
            "the list (or check data.activities.type and the log's spelling)")
    parts = {p: (X[split == p], y[split == p]) for p in ("train", "validation", "test")}
    part_weights = {p: None if weights is None else weights.loc[parts[p][0].index].to_numpy()
                    for p in parts}
    log.info("labelled %d leads (%d positive, %d censored or before train.since left out); "
             "split %s", labelled.sum(), positives, (~labelled).sum(),
             split.value_counts().to_dict())

    tuned, searches = _tune(params, parts, created)
    select_by = setting(params["train"], "select_by")
    cal = params.get("calibration") or {}
    method = setting(cal, "method") if setting(cal, "enabled") else "none"
    seed = setting(params["train"], "random_state", int)
    final_fit = setting(params["train"], "final_fit")
    if final_fit == "train_validation":
        fit = _fit_on_history(tuned, parts, part_weights, created, select_by=select_by,
                              method=method, cal=cal, seed=seed)
    elif final_fit == "train":
        fit = _fit_on_train(tuned, parts, part_weights, select_by=select_by, method=method,
                            cal=cal, seed=seed)
    else:
        raise ConfigError(f"train.final_fit: expected train_validation or train, got "
                          f"{final_fit!r}")
    best, model, chosen, losses = fit.candidate, fit.model, fit.method, fit.losses
    val_metrics, fit_rows = fit.selection, fit.fit_rows
    log.info("  calibration %s (cross-fitted log loss %s)", chosen,
             ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    bar_scores, bar_y = fit.bar_scores, fit.bar_y
    segmented = None
    seg_column = (params.get("segments") or {}).get("column")
    if seg_column:
        segmented = _fit_segments(fit, data, X, y, split, weights, params, created,
                                  select_by=select_by, method=method, cal=cal, seed=seed)
        model, bar_scores, bar_y = segmented.model, segmented.bar_scores, segmented.bar_y
    agreement = agreement_of(params)
    decision = choose_threshold(bar_scores, bar_y, agreement)
    test_score = model.predict_proba(parts["test"][0])[:, 1]
    test_bar: float | np.ndarray = decision.threshold
    test_cutoffs = decision.cutoffs
    if agreement.per_segment:
        decision = _segment_bars(bar_scores, bar_y, data.loc[fit.bar_index, seg_column],
                                 agreement)
        bars = SegmentBars.from_dict(decision.segment_bars)
        test_bar, test_cutoffs = bars.for_rows(data.loc[parts["test"][0].index, seg_column])
    ecfg = params.get("evaluation") or {}
    seg_cols = [c for c in dict.fromkeys([*(ecfg.get("segments") or []),
                                          *([seg_column] if seg_column else [])])
                if c in data.columns]
    evaluation = evaluate(
        parts["test"][1].to_numpy(), test_score, cutoffs=test_cutoffs,
        segments=data.loc[parts["test"][0].index, seg_cols] if seg_cols else None,
        min_segment_rows=setting(ecfg, "min_segment_rows", int))
    metrics = evaluation.metrics
    probe = parts["test"][0].iloc[: setting(ecfg, "behaviour_rows", int)]
    metrics.update(behaviour_report(model, probe, params))
    # val_: out of fold over train + validation (train.final_fit: train_validation), or the
    # validation block (train): never the registered model on leads it was fitted on.
    metrics.update(classification_metrics(bar_y, bar_scores, prefix="val_"))
    share, precision, recall = rates_at(test_score, parts["test"][1].to_numpy(), test_bar)
    metrics.update({"test_mql_share": share, "test_mql_precision": precision,
                    "test_mql_recall": recall, "mql_threshold": decision.threshold})
    with step(f"fit the baselines (library defaults) on the same {len(fit_rows[0]):,} leads"):
        base_scores = baseline_scores(*fit_rows, parts["test"][0], random_state=seed)
        metrics.update(baseline_metrics(*fit_rows, *parts["test"], scores=base_scores))
    log.info("  baselines on the test set: HistGradientBoosting() roc_auc %.4f, "
             "LogisticRegression() roc_auc %.4f; leadq %.4f",
             metrics["baseline_hgb_test_roc_auc"], metrics["baseline_logreg_test_roc_auc"],
             metrics["test_roc_auc"])
    reg = params.get("registry") or {}
    behind = below_baseline(metrics, setting(reg, "baseline_tolerance", float))
    if behind:
        # Whether the gap is more than the noise of this many test leads (paired bootstrap).
        level = reg.get("baseline_confidence")
        if level is not None:
            lo, hi = paired_auc_interval(parts["test"][1].to_numpy(), test_score,
                                         base_scores[behind[0]], level=float(level), seed=seed)
            metrics.update({"baseline_gap_low": lo, "baseline_gap_high": hi})
        log.warning("leadq's model (test ROC AUC %.4f) loses to the %s baseline (%.4f) by more "
                    "than registry.baseline_tolerance%s", metrics["test_roc_auc"], behind[0],
                    behind[1], "" if level is None else (
                        f"; {float(level):.0%} paired bootstrap interval of the difference "
                        f"[{metrics['baseline_gap_low']:+.4f}, "
                        f"{metrics['baseline_gap_high']:+.4f}]: "
                        + ("more than noise, it will not be promoted unless "
                           "registry.allow_below_baseline is true"
                           if metrics["baseline_gap_high"] < 0 else
                           "within the noise of this test set")))
    test_index = parts["test"][0].index
    test_frame = pd.DataFrame({
        # Without an id column the lead's row number in the leads file stands in for it.
        "lead_id": (data.loc[test_index, spec["id"]].to_numpy() if spec.get("id")
                    else np.asarray(test_index) + 1),
        "label": parts["test"][1].to_numpy(),
        "score": test_score,
    }, index=parts["test"][0].index)
    # The training plots (reporting/charts.py) name the test set the way the printout does.
    test_frame.attrs["test_set"] = test_set_name(created)
    out = TrainResult(
        model=model,
        candidate=best,
        metrics=metrics,
        threshold=decision,
        validation_metrics=val_metrics,
        fingerprint={**fingerprint(tables, labels, split, params, as_of), **ipw_info,
                     **({"snapshot_suspects": sorted(snapshots)} if snapshots else {})},
        test_frame=test_frame,
        sample=X.iloc[: min(len(X), 200)],
        labels=labels,
        tables=evaluation.tables,
        search=searches,
        calibration={"method": chosen, "cross_fitted_log_loss": losses},
        test_inputs=data.loc[parts["test"][0].index],
        fit_rows=fit_rows,
        baseline_scores=base_scores,
        segments={} if segmented is None else {
            "column": segmented.column, "large": segmented.large,
            "own_model": segmented.members},
    )
    if segmented is not None and not segmented.table.empty:
        out.tables["segment_models"] = segmented.table
    return out


def _tune(params: dict, parts: dict, created: pd.Series | None
          ) -> tuple[dict[str, dict], dict[str, SearchResult]]:
    """Each candidate's params after its hyperparameter search on the train part (and, with
    train.compare_defaults, the library's configuration beside it)."""
    tuned: dict[str, dict] = {}
    searches: dict[str, SearchResult] = {}
    search_on = setting(params, "train.search.enabled")
    train_created = created.loc[parts["train"][0].index] if created is not None else None
    for name in setting(params["train"], "candidates"):
        tuned[name] = params
        if search_on:
            order = "time-ordered" if train_created is not None else "file-order (no date)"
            with step(f"search {name} hyperparameters on {order} folds"):
                searches[name] = search_candidate(name, params, *parts["train"], train_created)
            tuned[name] = with_hyperparameters(params, name, searches[name].best_params)
            log.info("  %s: %d trials, best fold %s %.4f with %s", name,
                     len(searches[name].trials),
                     setting(params, "train.search.metric"),
                     searches[name].best_score, searches[name].best_params)
    if setting(params["train"], "compare_defaults"):
        # The library's own configuration competes in the final comparison (out of fold over
        # train + validation): a search that overfit the folds of train cannot win over it.
        for name in list(tuned):
            tuned[name + DEFAULTS_SUFFIX] = with_hyperparameters(params, name,
                                                                 LIBRARY_CONFIG[name])
    return tuned, searches


def _segment_bars(score: np.ndarray, y: np.ndarray, values: pd.Series, agreement
                  ) -> ThresholdDecision:
    """segments.per_segment_bar: the bar per segment on the out-of-fold leads; a capacity
    share for a value no lead has stops training (exit 2)."""
    from dataclasses import replace

    try:
        bars, pooled = choose_segment_bars(score, y, values.to_numpy(), agreement)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for key, bar in bars.bars.items():
        log.info("  MQL bar for %s = %s: %.4f (%.0f%% of capacity; %s of its %d out-of-fold "
                 "leads pass)", bars.column, key, bar["threshold"], 100 * bar["capacity_share"],
                 f"{bar['mql_share']:.1%}", bar["leads"])
        # A share larger than the segment's flow passes every lead, and a bar set on a few
        # dozen scores is noise: say so before sales is routed by it.
        if bar["mql_share"] >= 0.999 or bar["leads"] < MIN_SEGMENT_BAR_LEADS:
            log.warning("the MQL bar for %s = %s is set on %d out-of-fold leads and passes %s "
                        "of them: lower segments.capacity_share for it, or drop it from the "
                        "split", bars.column, key, bar["leads"], f"{bar['mql_share']:.0%}")
    return replace(pooled, segment_bars=bars.as_dict())


# Fewer out-of-fold leads than this behind a segment's own bar gets a warning (about ten
# conversions at a 5-10% rate: below it the bar moves with every few leads).
MIN_SEGMENT_BAR_LEADS = 200


def _fit_segments(fit: FinalFit, data: pd.DataFrame, X: pd.DataFrame, y: pd.Series,  # noqa: N803
                  split: pd.Series, weights: pd.Series | None, params: dict,
                  created: pd.Series | None, **procedure):
    """segments.column: the same search and out-of-fold procedure per large segment
    (leadq.pipelines.segmenting.training), each kept only where it beats the pooled model."""
    from leadq.pipelines.segmenting.training import fit_segments

    if setting(params, "train.final_fit") != "train_validation":
        raise ConfigError("segments.column needs train.final_fit: train_validation (segment "
                          "models are compared with the pooled one out of fold)")
    if fit.oof is None:
        raise ConfigError("segments.column: the pooled model has no out-of-fold scores to "
                          "compare segment models with")

    def fit_history(tuned, parts, part_weights):
        return _fit_on_history(tuned, parts, part_weights, created, **procedure)

    from leadq.pipelines.segmenting.training import member_params

    member = member_params(params)
    return fit_segments(fit, data, X, y, split, weights, params,
                        tune=lambda parts: _tune(member, parts, created)[0],
                        fit_history=fit_history)


def snapshot_evidence(tables: CrmTables, data: pd.DataFrame, params: dict) -> dict[str, str]:
    """Export-day counters among the numeric inputs, named in a warning: those listed in
    features.snapshot_columns (refused as inputs by the leakage guard) are known; with an
    activity log, a numeric input that follows the log's whole count of a type more than the
    count before each lead's cut-off is one too."""
    from leadq.features.activities import snapshot_suspects

    numeric = [c for c in params["features"].get("numeric") or [] if c in data.columns]
    if tables.activities is None or not numeric:
        return {}
    from leadq.pipelines.io.activities import export_day_counts

    before, after = export_day_counts(tables.activities, data, params)
    found = snapshot_suspects(data[numeric], before, after)
    for col, why in found.items():
        log.warning("features.numeric %r looks like an export-day counter: it %s. Trained on, "
                    "it scores leads on what happened after they were worked; list it in "
                    "features.snapshot_columns and let the point-in-time activity features "
                    "replace it", col, why)
    return found


@dataclass
class FinalFit:
    """What the two procedures (train.final_fit) hand back to train_models."""
    candidate: str
    model: BaseEstimator
    method: str
    losses: dict[str, float]
    selection: dict[str, dict[str, float]]   # per candidate: the metrics it was chosen on
    bar_scores: np.ndarray                   # calibrated scores of leads the model never saw,
    bar_y: np.ndarray                        # on which the first MQL bar is chosen
    fit_rows: tuple[pd.DataFrame, pd.Series]
    # Out-of-fold evidence a segment's own model is compared on (leadq.pipelines.segmenting):
    # the chosen candidate's fold scores, the index labels of their rows and of the bar's.
    oof: OutOfFold | None = None
    oof_index: pd.Index | None = None
    bar_index: pd.Index | None = None


def _fit_on_history(tuned: dict[str, dict], parts: dict, part_weights: dict,
                    created: pd.Series | None, *, select_by: str, method: str, cal: dict,
                    seed: int) -> FinalFit:
    """Every lead before the test set used for the model, none spent on calibration alone.

    Each candidate is scored out of fold over train + validation (leadq.models.oof: with
    dates, time-ordered blocks each scored by a model fitted on older leads only); the best by
    `select_by` on those scores is refitted on all of train + validation, and its calibration
    map and first MQL bar come from its out-of-fold scores on the validation span."""
    X_fit = pd.concat([parts["train"][0], parts["validation"][0]])  # noqa: N806
    y_fit = pd.concat([parts["train"][1], parts["validation"][1]])
    w_fit = None if part_weights["train"] is None else np.concatenate(
        [part_weights["train"], part_weights["validation"]])
    folds = setting(cal, "oof_folds", int)
    when = None if created is None else created.loc[X_fit.index]

    def fitter(name: str):
        def fit(X, y, w):  # noqa: N803
            return fit_candidate(name, tuned[name], X, y, sample_weight=w)
        return fit

    oof, selection = {}, {}
    for name in tuned:
        with step(f"score {name} out of fold ({folds} time-ordered folds over train + "
                  "validation)" if when is not None else
                  f"score {name} out of fold ({folds + 1} stratified folds)"):
            oof[name] = out_of_fold(fitter(name), X_fit, y_fit, created=when, folds=folds,
                                    seed=seed, sample_weight=w_fit)
        selection[name] = classification_metrics(oof[name].y, oof[name].proba)
        log.info("  %s out of fold (%s leads): roc_auc %.4f, pr_auc %.4f", name,
                 f"{len(oof[name].rows):,}", selection[name]["roc_auc"],
                 selection[name]["pr_auc"])
    best = choose_candidate(selection, select_by)
    signal = not _warn_if_no_signal(best, oof[best], selection[best]["roc_auc"], seed,
                                    compared=len(selection))
    if not signal:
        careful = choose_candidate(selection, select_by, signal=False)
        if careful != best:
            log.warning("  without signal, %s (out-of-fold log loss %.4f) is chosen over %s "
                        "(%.4f): the lowest log loss, not the luckiest ranking", careful,
                        selection[careful]["log_loss"], best, selection[best]["log_loss"])
            best = careful
    # Without signal a blend would only average noise: the single candidate stays.
    blend = _blend_candidate(oof, selection, select_by, best, seed,
                             setting(tuned[best]["train"], "blend_members", int)
                             ) if signal else None
    if blend is not None:
        best = blend.name
        selection[best], oof[best] = blend.selection, blend.oof
        with step(f"fit {' + '.join(blend.members)} on {len(X_fit):,} leads (train + "
                  "validation) and blend them"):
            model = blend_pipeline([fitter(n)(X_fit, y_fit, w_fit) for n in blend.members],
                                   blend.weights, blend.intercept)
    else:
        with step(f"fit {best} on {len(X_fit):,} leads (train + validation)"):
            model = fitter(best)(X_fit, y_fit, w_fit)
    # The calibration map and the first bar are learnt on the out-of-fold scores of the most
    # recent leads (the validation span): scored by fold models fitted on the most history,
    # and closest to the base rate the model will meet. All the out-of-fold scores would
    # calibrate to the average of older periods: on the synthetic CRM, whose conversion
    # drifts, that under-predicted by a quarter.
    chosen = _recent(oof[best], X_fit, parts["validation"][0].index)
    evidence = {"oof": oof[best], "oof_index": X_fit.index[oof[best].rows],
                "bar_index": X_fit.index[chosen.rows]}
    if method == "none":
        return FinalFit(best, model, "none", {}, selection, chosen.proba, chosen.y,
                        (X_fit, y_fit), **evidence)
    init = X_fit.iloc[chosen.rows[:2000]], y_fit.iloc[chosen.rows[:2000]]
    if init[1].nunique() < 2:
        init = X_fit.iloc[chosen.rows], y_fit.iloc[chosen.rows]
    with step(f"calibrate {best} on its {len(chosen.rows):,} out-of-fold scores "
              f"(method {method})"):
        model, method_used, losses, scores = choose_calibration_oof(
            model, *init, chosen.decision, chosen.proba, chosen.y, method=method,
            folds=setting(cal, "folds", int), seed=seed, sample_weight=chosen.weight)
    return FinalFit(best, model, method_used, losses, selection, scores, chosen.y,
                    (X_fit, y_fit), **evidence)


@dataclass
class BlendChoice:
    """A logistic stack of the best candidates' margins that beat the best one out of fold."""
    members: list[str]
    weights: np.ndarray
    intercept: float
    selection: dict[str, float]  # the cross-fitted stack's out-of-fold metrics
    oof: OutOfFold               # the stack's margins on the members' out-of-fold scores

    @property
    def name(self) -> str:
        return BLEND_PREFIX + "+".join(self.members)


BLEND_PREFIX = "blend:"


def _blend_candidate(oof: dict[str, OutOfFold], selection: dict[str, dict[str, float]],
                     select_by: str, best: str, seed: int, max_members: int
                     ) -> BlendChoice | None:
    """The blend of the `max_members` best candidates by `select_by` (models/blend.py), when
    its out-of-fold score beats the best single candidate's; else None.

    Every candidate was scored out of fold on the same blocks, so their margins line up lead
    by lead. The stack's weights are learnt on those margins; its own score for the
    comparison is cross-fitted (each lead scored by a stack fitted without it), so the blend
    is measured as honestly as the candidates are, and wins only where combining ranks the
    leads better, not because its weights saw the leads it is judged on."""
    if max_members < 2 or len(oof) < 2:
        return None
    ranked = sorted(oof, key=lambda n: selection[n][select_by], reverse=True)[:max_members]
    first = oof[ranked[0]]
    if any(not np.array_equal(oof[n].rows, first.rows) for n in ranked):
        return None
    margins = np.column_stack([oof[n].decision for n in ranked])
    members, weights, intercept = positive_stack(ranked, margins, first.y, first.weight)
    if len(members) < 2:
        return None
    used = margins[:, [ranked.index(n) for n in members]]
    try:
        honest = cross_fitted_stack(used, first.y, first.weight, seed=seed)
    except ValueError:
        return None
    metrics = classification_metrics(first.y, 1.0 / (1.0 + np.exp(-honest)))
    gain = metrics[select_by] - selection[best][select_by]
    log.info("  blend of %s out of fold (stack cross-fitted): roc_auc %.4f, pr_auc %.4f: "
             "%s %+.4f against %s, %s", " + ".join(members), metrics["roc_auc"],
             metrics["pr_auc"], select_by, gain, best, "kept" if gain > 0 else "not kept")
    if not gain > 0:
        return None
    decision = intercept + used @ weights
    return BlendChoice(members, weights, intercept, metrics, OutOfFold(
        rows=first.rows, decision=decision, proba=1.0 / (1.0 + np.exp(-decision)), y=first.y,
        weight=first.weight))


def choose_candidate(selection: dict[str, dict[str, float]], select_by: str,
                     signal: bool = True) -> str:
    """The candidate to register from its out-of-fold metrics: the best by `select_by`; or,
    when no candidate ranks leads better than chance (`signal` False), the lowest log loss.

    Without signal the ranking metric's winner is the luckiest of noise (dbt: logistic
    regression led out of fold at 0.555 and scored 0.423 on test). Log loss, a proper score,
    prefers the candidate least confidently wrong, closest to the base rate where nothing is
    known: the safest model to hand to sales."""
    if signal:
        return max(selection, key=lambda n: selection[n][select_by])
    return min(selection, key=lambda n: selection[n]["log_loss"])


def _warn_if_no_signal(name: str, oof: OutOfFold, roc_auc: float, seed: int,
                       compared: int = 1) -> bool:
    """Say so (and return True) when even the chosen candidate ranks leads no better than
    chance out of fold: then which model wins on the test set is a coin toss, and the export
    (its label, its inputs) needs a look before any model is trusted.

    The best of `compared` candidates looks better than chance more often than any one of
    them does, so the interval is widened for that many comparisons (Bonferroni: 90 % for
    one, 97.5 % for four). Without it, dbt's generated labels, which no input is related
    to, passed as signal: the best of four out-of-fold ROC AUCs was 0.555. The search's
    trials are not counted, so the check still errs towards calling noise signal."""
    level = 1 - 0.1 / max(int(compared), 1)
    lo, hi = roc_auc_interval(oof.y, oof.proba, seed=seed, level=level)
    if lo == lo and lo <= 0.5:  # NaN-safe: no interval, no warning
        log.warning("no candidate ranks leads better than chance out of fold: the chosen %s "
                    "(best of %d) has ROC AUC %.3f, %.1f%% bootstrap interval [%.3f, %.3f] "
                    "over %s leads. The export may carry no signal for this label: check "
                    "the label and the inputs before trusting a model", name, compared,
                    roc_auc, 100 * level, lo, hi,
                    f"{len(oof.y):,}")
        return True
    return False


def _recent(oof: OutOfFold, X: pd.DataFrame, recent: pd.Index) -> OutOfFold:  # noqa: N803
    """The out-of-fold scores of the leads in `recent` (all of them if too few)."""
    keep = np.isin(X.index[oof.rows], recent)
    if keep.sum() < 50 or len(np.unique(oof.y[keep])) < 2:
        return oof
    return OutOfFold(rows=oof.rows[keep], decision=oof.decision[keep], proba=oof.proba[keep],
                     y=oof.y[keep], weight=None if oof.weight is None else oof.weight[keep])


def _fit_on_train(tuned: dict[str, dict], parts: dict, part_weights: dict, *, select_by: str,
                  method: str, cal: dict, seed: int) -> FinalFit:
    """The procedure before 0.2: fitted on train, chosen and calibrated on validation."""
    fitted, selection = {}, {}
    for name in tuned:
        with step(f"fit {name} on {len(parts['train'][0]):,} leads"):
            fitted[name] = fit_candidate(name, tuned[name], *parts["train"],
                                         sample_weight=part_weights["train"])
        score = fitted[name].predict_proba(parts["validation"][0])[:, 1]
        selection[name] = classification_metrics(parts["validation"][1], score)
        log.info("  %s validation: roc_auc %.4f, pr_auc %.4f", name,
                 selection[name]["roc_auc"], selection[name]["pr_auc"])
    best = max(selection, key=lambda n: selection[n][select_by])
    with step(f"calibrate {best} on validation (method {method}, cross-fitted log loss)"):
        model, chosen, losses = choose_calibration(
            fitted[best], *parts["validation"], method=method, folds=setting(cal, "folds", int),
            seed=seed, sample_weight=part_weights["validation"])
    return FinalFit(best, model, chosen, losses, selection,
                    model.predict_proba(parts["validation"][0])[:, 1],
                    parts["validation"][1].to_numpy(), parts["train"])


def main(params_path: str | None = None, overrides: dict | None = None) -> dict:
    """Load the configured tables, train, log and register. Returns a summary for the CLI."""
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.runs import log_training

    params = load_params(params_path, overrides)
    import warnings

    # The target encoder's stratified folds warn when a class has fewer rows than folds; the
    # run already refuses fewer than train.min_positives conversions, and the encoder's
    # cross-fitting stays valid with uneven folds: the raw warning would only alarm.
    warnings.filterwarnings("ignore", message="The least populated class in y has only",
                            category=UserWarning)
    with step("load CRM tables"):
        tables = load_crm(params)
    result = train_models(tables, params)
    with step("log run and register model in MLflow"):
        summary = log_training(result, tables, params)
    m = result.metrics
    log.info("test roc_auc %.4f · pr_auc %.4f · ece %.4f · brier %.4f · MQL bar %.4f (%s)",
             m["test_roc_auc"], m["test_pr_auc"], m["test_ece"], m["test_brier"],
             result.threshold.threshold, result.threshold.policy)
    print_evaluation(result)
    summary["metrics"] = {k: v for k, v in m.items() if np.isfinite(v)}
    summary["candidate"] = result.candidate
    summary["test_set"] = result.test_frame.attrs.get("test_set")
    summary["test_rows"] = int(len(result.test_frame))
    summary["calibration"] = result.calibration["method"]
    summary["threshold"] = result.threshold.as_dict()
    if result.segments:
        summary["segments"] = result.segments
    return summary


def print_evaluation(result: TrainResult) -> None:
    """The test-set evaluation a reviewer reads before trusting the model (stdout): out of
    time, or held out at random when the leads have no date."""
    from leadq.models.evaluation import format_table

    m = result.metrics
    name = result.fingerprint.get("test_set", "out-of-time")
    lines = [
        f"\n{name} test ({int(m['test_n']):,} leads, conversion {m['test_positive_rate']:.3f})"
        f" · model {result.candidate}, calibration {result.calibration.get('method')}"
        + (f"; own models for {result.segments['column']} = "
           + ", ".join(result.segments["own_model"])
           if (result.segments or {}).get("own_model") else ""),
        f"  ROC AUC {m['test_roc_auc']:.4f} · PR AUC {m['test_pr_auc']:.4f} · log loss "
        f"{m['test_log_loss']:.4f} · Brier {m['test_brier']:.4f} · ECE {m['test_ece']:.4f}",
        "  conversions captured by the best-scored 10% / 20% / 30% of leads: "
        f"{m['test_capture_top10']:.1%} / {m['test_capture_top20']:.1%} / "
        f"{m['test_capture_top30']:.1%}",
    ]
    for name, title in (("tiers", "tiers (cut-offs from the MQL bar)"),
                        ("gains", "cumulative gains and lift by decile"),
                        ("calibration", "calibration: predicted vs observed by score band"),
                        ("segments", "by segment (evaluation.segments)")):
        if name in result.tables:
            lines += [f"\n{title}:", format_table(result.tables[name])]
    if "segment_models" in result.tables:
        from leadq.pipelines.segmenting.training import format_segment_table

        seg = result.segments
        lines += [f"\nsegment models ({seg.get('column')}; out of fold, on the leads both "
                  "models scored):", format_segment_table(result.tables["segment_models"])]
    print("\n".join(lines), flush=True)
