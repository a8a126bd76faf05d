"""Which columns may feed the model. The leakage guard lives here."""

from __future__ import annotations

from leadq.errors import ConfigError
from leadq.settings import setting

# Derived inputs computed inside the model pipeline from raw lead columns.
DERIVED_FROM_EMAIL = "email_corporate"
DERIVED_SENIORITY = "seniority"
DERIVED_DATE_PARTS = ("created_doy_sin", "created_doy_cos", "created_weekday")


def model_inputs(params: dict) -> dict[str, list[str] | str | None]:
    """Raw columns the model reads, by role, from params.yaml's features and data.leads.

    "activity": the point-in-time aggregates of data.activities (features/activities.py),
    numbers computed beside the leads file rather than read from it."""
    from leadq.features.activities import activity_spec

    feats, leads = params["features"], params["data"]["leads"]
    spec = activity_spec(params)
    return {
        "categorical": list(feats.get("categorical") or []),
        "numeric": list(feats.get("numeric") or []),
        "activity": spec.feature_names() if spec else [],
        "email": feats.get("email_column"),
        "job_title": feats.get("job_title_column"),
        "created_at": leads.get("created_at") if setting(feats, "date_parts") else None,
    }


def raw_input_columns(params: dict) -> list[str]:
    """Every raw lead column the registered model takes, in a stable order."""
    roles = model_inputs(params)
    cols = roles["categorical"] + roles["numeric"] + roles["activity"]
    cols += [c for c in (roles["email"], roles["job_title"], roles["created_at"]) if c]
    seen: dict[str, None] = {}
    for col in cols:
        seen.setdefault(col, None)
    return list(seen)


def forbidden_columns(params: dict) -> dict[str, str]:
    """Columns that must never be model inputs, with the reason.

    Deal outcomes and sales feedback are only known after a lead is worked, so they are
    labels; ids identify, they do not predict; personal fields are not for the model.
    """
    data = params["data"]
    leads = data["leads"]
    reasons: dict[str, str] = {}
    for section, why in (("deals", "deal outcome"), ("feedback", "sales feedback")):
        spec = data.get(section) or {}
        for key, col in spec.items():
            if key in {"path", "table", "query", "delimiter", "encoding", "date_format"} \
                    or not isinstance(col, str):
                continue
            if key != "lead_id":
                reasons[col] = (f"{why} column ({section}.{key}) is known only after "
                                "the lead is worked")
    if leads.get("label"):
        reasons[leads["label"]] = "it is the label"
    if leads.get("converted_at"):
        reasons[leads["converted_at"]] = "it is the label (the conversion date)"
    reasons[leads["id"]] = "it is the lead id"
    for col in leads.get("personal") or []:
        reasons[col] = "personal data is never a direct model input"
    for col in params["features"].get("extra_forbidden") or []:
        reasons[col] = "listed in features.extra_forbidden"
    for col in params["features"].get("snapshot_columns") or []:
        reasons[col] = ("an export-day counter (features.snapshot_columns): it keeps rising "
                        "after a lead converts; use the activity log's point-in-time features")
    return reasons


def assert_no_leakage(params: dict) -> None:
    """Refuse a feature list that contains a label, an id, an outcome or a personal field.

    The email and job-title columns are allowed only as the source of a derived input;
    the raw value itself never reaches the estimator.
    """
    roles = model_inputs(params)
    direct = roles["categorical"] + roles["numeric"]
    forbidden = forbidden_columns(params)
    bad = [(c, forbidden[c]) for c in direct if c in forbidden]
    if bad:
        detail = "; ".join(f"{c!r}: {why}" for c, why in bad)
        raise ConfigError(f"params.yaml features: leakage guard refused column(s) {detail}")
    _refuse_sales_types(params)
    for role in ("email", "job_title"):
        col = roles[role]
        if col and col in forbidden and "personal" not in forbidden[col]:
            raise ConfigError(
                f"params.yaml features.{role}_column: {col!r} is refused: {forbidden[col]}"
            )


def _refuse_sales_types(params: dict) -> None:
    """An activity type named like a sales action (call, meeting, task…) among the feature
    types: it happens because the lead is being worked, like a deal column. leakage.allow
    lets a type that truly is marketing's through."""
    from leadq.features.activities import sales_like

    spec = (params["data"].get("activities") or {})
    if not spec.get("path"):
        return
    allowed = {str(a) for a in (params.get("leakage") or {}).get("allow") or []}
    bad = [t for t in spec.get("types") or [] if sales_like(t) and str(t) not in allowed]
    if bad:
        raise ConfigError(
            f"data.activities.types: {', '.join(map(repr, bad))} named like sales' own "
            "actions on a lead (logged because it is being worked): list them in "
            "data.activities.sales_types, or in leakage.allow if marketing logs them")
