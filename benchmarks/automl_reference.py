"""FLAML AutoML, and LightGBM / XGBoost with their defaults, on one split: references for
bench_baselines.py, run in their own venv (leadq depends on none of them). Reads train/test
Parquet files, prints one JSON line.

    python benchmarks/automl_reference.py TRAIN.parquet TEST.parquet --budget 120
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds")
    args = parser.parse_args()
    from flaml import AutoML

    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)
    y_train, y_test = train.pop("__label__").to_numpy(int), test.pop("__label__").to_numpy(int)
    for col in train.columns:
        if not pd.api.types.is_numeric_dtype(train[col]):
            # Categories held as Python objects: LightGBM and XGBoost cannot read pandas 3's
            # string dtype. The test rows get the training categories (unseen = missing).
            seen = pd.Index(sorted(train[col].dropna().astype(str).unique()), dtype=object)
            train[col] = pd.Categorical(train[col].astype(object), categories=seen)
            test[col] = pd.Categorical(test[col].astype(object), categories=seen)
    # Column names as Python objects too: FLAML asks numpy about the columns' dtype.
    train.columns = pd.Index(list(train.columns), dtype=object)
    test.columns = pd.Index(list(test.columns), dtype=object)
    out = {}
    from lightgbm import LGBMClassifier
    from xgboost import XGBClassifier

    for name, model in (("lightgbm", LGBMClassifier(n_jobs=1, verbose=-1)),
                        ("xgboost", XGBClassifier(n_jobs=1, enable_categorical=True,
                                                  tree_method="hist"))):
        started = time.perf_counter()
        model.fit(train, y_train)
        p = model.predict_proba(test)[:, 1]
        out[name] = {"roc_auc": float(roc_auc_score(y_test, p)),
                     "pr_auc": float(average_precision_score(y_test, p)),
                     "seconds": round(time.perf_counter() - started, 1)}
    started = time.perf_counter()
    automl = AutoML()
    automl.fit(train, y_train, task="classification", metric="roc_auc", time_budget=args.budget,
               n_jobs=1, verbose=0, seed=0)
    took = time.perf_counter() - started
    p = automl.predict_proba(test)[:, 1]
    out["flaml"] = {"roc_auc": float(roc_auc_score(y_test, p)),
                    "pr_auc": float(average_precision_score(y_test, p)),
                    "seconds": round(took, 1), "best": str(automl.best_estimator),
                    "mean_score": float(np.mean(p))}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
