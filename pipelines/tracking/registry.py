"""The model registry lifecycle: champion/challenger gate, promote, rollback, and alias history.

Every trained model is registered as `challenger`. It becomes `champion` only when, on its own
out-of-time test set, its primary metric is above the current champion's (re-scored on the
same rows) minus registry.tolerance and its calibration error is under the limit — or when
the champion has held the title longer than registry.max_champion_age_days. A challenger that
ties the champion on every test metric (retrained on the same data) is never promoted.
MLflow keeps no history of alias moves, so each move is written as a registered-model tag
`leadq.alias_history.NNNNNN.<token>` (a small JSON record): `leadq models` and `leadq rollback`
read it.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from leadq.errors import BadInputError, LeadqError
from leadq.pipelines.io.progress import log
from leadq.settings import setting

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_PREFIX = "leadq.alias_history."
PROMOTING = ("gate", "promote", "force")  # history actions that make a version champion
KEY_METRICS = ("test_pr_auc", "test_roc_auc", "test_ece", "test_log_loss")


# --- pure decision ----------------------------------------------------------------------------
def baseline_gap(metrics: dict[str, float], registry: dict) -> str | None:
    """Why a model may not be promoted for losing to a library-default baseline, or None
    (also None when registry.allow_below_baseline is true, or no baseline was measured)."""
    from leadq.models.baselines import below_baseline

    if registry.get("allow_below_baseline"):
        return None
    tolerance = setting(registry, "baseline_tolerance", float)
    behind = below_baseline(metrics, tolerance)
    if behind is None:
        return None
    high = metrics.get("baseline_gap_high")
    if registry.get("baseline_confidence") is not None and high is not None and high >= 0:
        return None  # a gap this test set cannot tell from noise (training warned about it)
    return (f"challenger test_roc_auc {metrics['test_roc_auc']:.4f} is below the {behind[0]} "
            f"baseline's {behind[1]:.4f} − {tolerance} (library defaults on the same rows)"
            + ("" if high is None else f", beyond noise (the difference's interval ends at "
               f"{high:+.4f})")
            + "; set registry.allow_below_baseline: true to promote such a model")


def gate_decision(challenger: dict[str, float], champion: dict[str, float] | None,
                  champion_age_days: float | None, registry: dict) -> tuple[bool, str]:
    """Promote or not, and why. Metrics are test_-prefixed and from the same test rows.

    The absolute criteria (registry.criteria, e.g. max_test_ece) always apply: an old champion
    is replaced by age only with a challenger that is itself fit to serve.
    """
    from leadq.pipelines.tracking.store import meets_criteria

    primary = f"test_{setting(registry, 'primary_metric')}"
    tolerance = setting(registry, "tolerance", float)
    ok, why = meets_criteria(challenger, registry.get("criteria") or {})
    if not ok:
        return False, f"challenger fails the criteria ({why.removeprefix('criteria not met: ')})"
    behind = baseline_gap(challenger, registry)
    if behind:
        return False, behind
    if champion is None:
        return True, f"no champion to beat; challenger {why}"
    new, old = challenger.get(primary, float("nan")), champion.get(primary, float("nan"))
    max_age = registry.get("max_champion_age_days")
    if ties(challenger, champion):
        # The tolerance lets a different, fresher model in despite test noise; a model that
        # scores the test rows exactly as the champion does (retrained on the same data) brings
        # nothing, and promoting it would only restart the champion's age clock.
        return False, (f"challenger ties the champion on every test metric ({primary} "
                       f"{new:.4f}): nothing to gain, the champion stays (a tie never "
                       "promotes, whatever registry.tolerance or the champion's age)")
    if new > old - tolerance:
        return True, (f"challenger {primary} {new:.4f} > champion {old:.4f} − tolerance "
                      f"{tolerance} on the same test rows, and {why}")
    if max_age is not None and champion_age_days is not None and champion_age_days > max_age:
        return True, (f"champion is {champion_age_days:.0f} days old (> {max_age}); challenger "
                      f"{primary} {new:.4f} vs {old:.4f}, and {why}")
    return False, (f"challenger {primary} {new:.4f} ≤ champion {old:.4f} − tolerance "
                   f"{tolerance} on the same test rows")


TIE_ATOL = 1e-9  # metrics are computed alike on the same rows: equal models agree to rounding


def ties(challenger: dict[str, float], champion: dict[str, float]) -> bool:
    """True when the challenger's test metrics are the champion's re-scored ones, every key
    metric both have (at least one): the same model in effect."""
    shared = [k for k in KEY_METRICS if k in challenger and k in champion]
    return bool(shared) and all(
        abs(challenger[k] - champion[k]) <= TIE_ATOL for k in shared)


def champion_stack(history: list[dict], current: str | None) -> list[str]:
    """Champion versions in order of succession, as rollback unwinds them (last = current)."""
    stack: list[str] = []
    for event in history:
        if event.get("alias") != CHAMPION:
            continue
        if event.get("action") in PROMOTING:
            stack.append(str(event["version"]))
        elif event.get("action") == "rollback" and stack:
            stack.pop()
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)  # a champion set before leadq kept history
    return stack


# --- registry I/O -----------------------------------------------------------------------------
def _client(params: dict):
    import mlflow

    from leadq.pipelines.tracking.store import configure

    configure(params)
    return mlflow.MlflowClient()


def read_history(client, name: str) -> list[dict]:
    """The alias moves recorded for a registered model, oldest first."""
    tags = client.get_registered_model(name).tags or {}
    events = [json.loads(v) for k, v in tags.items() if k.startswith(HISTORY_PREFIX)]
    return sorted(events, key=lambda e: (e["seq"], e.get("ns", 0)))


def record_move(client, name: str, alias: str, version: str, action: str, reason: str,
                previous: str | None) -> dict:
    """Move an alias and append the move to the history (tag written after the move).

    Callers hold store.registry_lock, so leadq processes on one local store take turns. A
    server or database store has no such lock, and two writers may count the same next
    sequence number: the tag key therefore also carries a random token, so neither write
    replaces the other (one key per number once overwrote a move, or failed with a raw
    IntegrityError after the alias had moved); read_history orders equal numbers by time."""
    _retry_clash(lambda: client.set_registered_model_alias(name, alias, version))
    seq = len(read_history(client, name)) + 1
    event = {"seq": seq, "at": datetime.now(UTC).isoformat(timespec="seconds"),
             "ns": time.time_ns(), "alias": alias, "version": str(version),
             "previous": previous, "action": action, "reason": reason[:400]}
    key = f"{HISTORY_PREFIX}{seq:06d}.{secrets.token_hex(4)}"
    client.set_registered_model_tag(name, key, json.dumps(event))
    return event


def _retry_clash(call, attempts: int = 5) -> None:
    """Run an idempotent registry write again when a concurrent writer inserted the same row
    first (MLflow's SQL store upserts as select-then-insert, so the loser of a race gets a
    unique-key error); the retry finds the row and updates it."""
    for attempt in range(attempts):
        try:
            call()
            return
        except Exception as exc:
            if attempt == attempts - 1 or not _is_key_clash(exc):
                raise
            time.sleep(0.05 * (attempt + 1))


def _is_key_clash(exc: BaseException | None) -> bool:
    """A unique-key violation, raw or wrapped by MLflow."""
    while exc is not None:
        text = f"{type(exc).__name__}: {exc}"
        if "IntegrityError" in text or "UNIQUE constraint" in text or "duplicate key" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def alias_version(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_age_days(client, name: str, version: str, history: list[dict]) -> float:
    """Days since `version` last became champion (its registration time if never recorded)."""
    # Every champion event names the version that took the title (a rollback, the restored one).
    became = [e["at"] for e in history
              if e.get("alias") == CHAMPION and str(e.get("version")) == version]
    if became:
        start = max(pd.Timestamp(t) for t in became)
    else:
        ms = client.get_model_version(name, version).creation_timestamp
        start = pd.Timestamp(ms, unit="ms", tz="UTC")
    return float((pd.Timestamp.now(tz="UTC") - start) / pd.Timedelta(days=1))


def score_with_version(name: str, version: str, rows: pd.DataFrame) -> np.ndarray:
    """P(convert) from a registered version on raw lead rows (its own input columns)."""
    from leadq.models.calibration_choice import base_pipeline
    from leadq.pipelines.tracking.store import load_sklearn_model

    model = load_sklearn_model(f"models:/{name}/{version}")
    needed = list(dict.fromkeys(base_pipeline(model).named_steps["features"].source_columns()))
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise LeadqError(f"version {version} needs column(s) {missing} the new data lacks")
    return model.predict_proba(rows[needed])[:, 1]


def apply_gate(client, result, params: dict, version: str, run_id: str) -> tuple[bool, str]:
    """Register `version` as challenger, compare it with the champion, promote or not, log why;
    under the registry lock, so a concurrent training compares with this one's outcome."""
    from leadq.pipelines.tracking.store import registry_lock

    with registry_lock(params):
        return _apply_gate(client, result, params, version, run_id)


def _apply_gate(client, result, params: dict, version: str, run_id: str) -> tuple[bool, str]:
    from leadq.models.metrics import classification_metrics

    reg = params["registry"]
    name = reg["model_name"]
    record_move(client, name, CHALLENGER, version, "register", "new model registered",
                alias_version(client, name, CHALLENGER))
    challenger = {k: float(v) for k, v in result.metrics.items()
                  if k.startswith(("test_", "baseline_"))}
    current = alias_version(client, name, CHAMPION)
    champion, age, note, broken, segments = None, None, None, None, []
    if current is not None and current != version:
        history = read_history(client, name)
        age = champion_age_days(client, name, current, history)
        y = result.test_frame["label"].to_numpy()
        try:
            score = score_with_version(name, current, result.test_inputs)
            champion = classification_metrics(y, score, prefix="test_")
            segments = _segment_gate(result, y, score, params)
        except LeadqError as exc:
            # It needs inputs the data no longer has: it could not score today's leads either.
            note = f"champion v{current} could not be re-scored: {exc}"
            log.warning("%s; judging the challenger on the criteria alone", note)
        except Exception as exc:  # noqa: BLE001 - an unloadable champion must not lose the run
            broken = (f"champion v{current} failed to score the test rows "
                      f"({type(exc).__name__}: {exc})")
    promoted, reason = gate_decision(challenger, champion, age, reg)
    if note:
        reason = f"{note}; {reason}"
    worse = [s for s in segments if s["worse"]]
    if promoted and worse and not (params.get("segments") or {}).get("allow_worse_segments"):
        promoted, reason = False, (
            "challenger is worse than the champion beyond noise on segment(s) "
            + ", ".join(f"{s['segment']} (test ROC AUC {s['challenger_roc_auc']:.4f} vs "
                        f"{s['champion_roc_auc']:.4f}, gap interval [{s['gap_low']:+.4f}, "
                        f"{s['gap_high']:+.4f}])" for s in worse)
            + "; set segments.allow_worse_segments: true to promote such a model")
    if broken:
        promoted, reason = False, f"{broken}; not promoted automatically (use `leadq promote`)"
    primary = f"test_{setting(reg, 'primary_metric')}"
    report = {
        "decision": "promote" if promoted else "keep champion",
        "reason": reason, "challenger_version": version, "champion_version": current,
        "champion_age_days": age, "primary_metric": primary,
        "tolerance": setting(reg, "tolerance"),
        "max_champion_age_days": reg.get("max_champion_age_days"),
        "criteria": reg.get("criteria") or {},
        "challenger": {k: challenger.get(k) for k in KEY_METRICS},
        "champion": None if champion is None else {k: champion.get(k) for k in KEY_METRICS},
        "segments": segments,
    }
    client.log_dict(run_id, report, "gate.json")
    if champion is not None:
        for key in KEY_METRICS:
            if np.isfinite(champion.get(key, float("nan"))):
                client.log_metric(run_id, f"champion_{key}", champion[key])
    client.set_model_version_tag(name, version, "promotion_decision", reason[:5000])
    client.set_tag(run_id, "leadq.gate", report["decision"])
    if promoted:
        record_move(client, name, CHAMPION, version, "gate", reason, current)
    log.info("gate: %s — %s", report["decision"], reason)
    return promoted, reason


def _segment_gate(result, y: np.ndarray, champion_score: np.ndarray, params: dict) -> list[dict]:
    """With segments.column: challenger vs champion on each segment that met the minimums in
    training (leadq.models.segments.segment_gaps); nothing without segments."""
    from leadq.models.segments import segment_gaps

    column = setting(params, "segments.column")
    large = (getattr(result, "segments", None) or {}).get("large") or []
    if not column or not large or column not in result.test_inputs.columns:
        return []
    return segment_gaps(y, result.test_frame["score"].to_numpy(), champion_score,
                        result.test_inputs[column], large,
                        confidence=setting(params, "segments.confidence", float),
                        seed=setting(params, "train.random_state", int),
                        min_rows=setting(params, "evaluation.min_segment_rows", int))


# --- commands -----------------------------------------------------------------------------------
def _version_metrics(mv) -> dict[str, float]:
    out = {}
    for key, value in (mv.tags or {}).items():
        if key.startswith(("test_", "baseline_")):
            try:
                out[key] = float(value)
            except ValueError:
                continue
    return out


def promote(params: dict, version: str, force: bool = False) -> dict:
    """`leadq promote VERSION [--force]`: make a version champion by hand."""
    from leadq.pipelines.tracking.store import registry_lock

    with registry_lock(params):
        return _promote(params, version, force)


def _promote(params: dict, version: str, force: bool) -> dict:
    from mlflow.exceptions import MlflowException

    from leadq.pipelines.tracking.store import meets_criteria

    client = _client(params)
    name = params["registry"]["model_name"]
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise BadInputError(f"model {name!r} has no version {version!r}") from exc
    current = alias_version(client, name, CHAMPION)
    if current == str(version):
        return {"model_name": name, "champion": current, "changed": False,
                "reason": f"version {version} is already champion"}
    ok, why = meets_criteria(_version_metrics(mv), params["registry"].get("criteria") or {})
    behind = baseline_gap(_version_metrics(mv), params["registry"])
    if behind and ok:
        ok, why = False, behind
    if (mv.tags or {}).get("leadq.abandoned") and ok:
        # Its training was killed before the gate: whatever metrics got recorded, the version
        # was never judged (runs.mark_abandoned).
        ok, why = False, (mv.tags or {}).get("promotion_decision", "its training was killed")
    if not ok and not force:
        raise LeadqError(f"version {version} was not promoted: its recorded test metrics fail "
                         f"the criteria ({why}); pass --force to promote it anyway")
    action = "force" if force else "promote"
    reason = f"promoted by hand{' (--force)' if force else ''}; {why}"
    record_move(client, name, CHAMPION, str(version), action, reason, current)
    log.info("%s version %s is champion (was %s)", name, version, current)
    return {"model_name": name, "champion": str(version), "previous": current, "changed": True,
            "reason": reason}


def rollback(params: dict) -> dict:
    """`leadq rollback`: give the champion alias back to the previous champion."""
    from leadq.pipelines.tracking.store import registry_lock

    with registry_lock(params):
        return _rollback(params)


def _rollback(params: dict) -> dict:
    client = _client(params)
    name = params["registry"]["model_name"]
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise LeadqError(f"model {name!r} has no champion to roll back")
    stack = champion_stack(read_history(client, name), current)
    if len(stack) < 2:
        raise LeadqError(f"model {name!r}: version {current} is the first recorded champion; "
                         "there is no previous champion to roll back to")
    previous = stack[-2]
    record_move(client, name, CHAMPION, previous, "rollback",
                f"rolled back from version {current}", current)
    log.info("%s champion rolled back: version %s → %s", name, current, previous)
    return {"model_name": name, "champion": previous, "rolled_back_from": current}


def champion_periods(history: list[dict]) -> dict[str, list[tuple[str, str | None]]]:
    """Per version, the (from, to) times it was champion; to=None while it still is."""
    periods: dict[str, list[tuple[str, str | None]]] = {}
    holder, since = None, None
    for event in history:
        if event.get("alias") != CHAMPION:
            continue
        if holder is not None:
            periods.setdefault(holder, []).append((since, event["at"]))
        holder, since = str(event["version"]), event["at"]
    if holder is not None:
        periods.setdefault(holder, []).append((since, None))
    return periods


def list_models(params: dict) -> dict:
    """`leadq models`: versions, aliases, key metrics and when each was champion."""
    from mlflow.exceptions import MlflowException

    client = _client(params)
    name = params["registry"]["model_name"]
    try:
        history = read_history(client, name)
    except MlflowException as exc:
        raise LeadqError(f"no registered model {name!r} yet (run `leadq train`)") from exc
    periods = champion_periods(history)
    # search_model_versions leaves aliases out; the registered model holds alias → version.
    aliases: dict[str, list[str]] = {}
    for alias, number in (client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name='{name}'"):
        metrics = _version_metrics(mv)
        rows.append({
            "version": str(mv.version),
            "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
            "candidate": (mv.tags or {}).get("candidate", ""),
            "created": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC")
            .strftime("%Y-%m-%d %H:%M"),
            **{k.removeprefix("test_"): metrics.get(k, float("nan")) for k in KEY_METRICS},
            "champion_periods": "; ".join(
                f"{a[:16]}→{(b or 'now')[:16]}" for a, b in periods.get(str(mv.version), [])),
        })
    rows.sort(key=lambda r: int(r["version"]))
    frame = pd.DataFrame(rows)
    if len(frame):
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)
    return {"model_name": name, "versions": rows, "history": history}
