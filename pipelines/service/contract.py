"""The typed interface of `leadq serve`: OpenAPI schemas built from the model's contract, and a
self-contained /docs page.

The request schema is not written by hand: its fields, types and required fields come from
the same params roles and row contract that `leadq score` holds a file to (features.columns,
features.rules), and the categories and ranges from the served version's training reference,
so the documentation cannot drift from what the service accepts.
"""

from __future__ import annotations

import html
import json
from typing import Any

ERROR_STATUSES = {
    "400": "Malformed JSON or Content-Length",
    "401": "Missing or wrong bearer token (when LEADQ_API_TOKEN is set)",
    "413": "Body over serve.max_body_bytes, or more leads than serve.max_batch",
    "415": "Content-Type is not application/json",
    "422": "A lead broke the contract or a field has the wrong type: `detail` names the lead "
           "and field; `rejected` lists each refused lead",
    "503": "Not ready (no model, activity log missing) or overloaded (queue full, deadline "
           "passed): retry after the Retry-After header's seconds",
}
EXAMPLES = 8  # known categories shown per field
INT64 = (-(2 ** 63), 2 ** 63 - 1)  # integer ids a CRM's id column can hold


def known_fields(params: dict) -> list[str]:
    """Lead fields the service reads: the model's inputs, the id, the date, personal fields,
    and the export-day counters it knows to leave out (features.snapshot_columns)."""
    from leadq.pipelines.io.crm import leads_required_columns

    spec = params["data"]["leads"]
    extra = [*(spec.get("personal") or []), spec.get("label"), spec.get("converted_at"),
             *(params["features"].get("snapshot_columns") or [])]
    return list(dict.fromkeys([*leads_required_columns(params, for_training=False),
                               *[c for c in extra if c]]))


def lead_schema(params: dict, reference: dict | None) -> dict:
    """JSON Schema of one lead: the fields the service reads, by their contract role."""
    from leadq.features.columns import model_inputs
    from leadq.features.rules import settings

    spec = params["data"]["leads"]
    roles = model_inputs(params)
    contract = settings(params)
    max_text = contract.get("max_text_length")
    categories = (reference or {}).get("categories") or {}
    ranges = (reference or {}).get("numeric_ranges") or {}
    personal = set(spec.get("personal") or []) | {roles["email"]}
    snapshot = set(params["features"].get("snapshot_columns") or [])

    def text(description: str) -> dict:
        out: dict = {"type": ["string", "null"], "description": description}
        if max_text:
            out["maxLength"] = int(max_text)
        return out

    props: dict[str, dict] = {}
    for name in known_fields(params):
        if name == spec["id"]:
            props[name] = {"oneOf": [{"type": "string", "minLength": 1},
                                     {"type": "integer", "minimum": INT64[0],
                                      "maximum": INT64[1]}],
                           "description": "The lead's id: a string, or an integer within 64 "
                                          "bits. Unique within a request."}
        elif name == spec.get("created_at"):
            fmt = spec.get("date_format") or "ISO8601"
            props[name] = {"type": "string", "description": f"When the lead became an MQL "
                                                            f"({fmt}, data.leads.date_format)"}
            if fmt == "ISO8601":
                props[name]["format"] = "date-time"
        elif name in roles["numeric"]:
            props[name] = {"type": ["number", "string", "null"],
                           "description": "A number (or its text, as a CSV cell holds it)"}
            if name in ranges and len(ranges[name]) == 2:
                low, high = ranges[name]
                props[name]["description"] += (f"; training saw {low:g} to {high:g} (outside: "
                                               "a warning)")
        elif name in roles["categorical"]:
            props[name] = text("A category; one training never saw is scored with a warning")
            seen = categories.get(name) or []
            if seen:
                props[name]["examples"] = [str(c) for c in seen[:EXAMPLES]]
        elif name in personal:
            props[name] = text("Personal: read for the model's derived flags only, never "
                               "logged" if name == roles["email"] else
                               "Personal: never a model input, never logged")
        elif name == roles["job_title"]:
            props[name] = text("Job title: a seniority rank is derived from it")
        elif name in snapshot:
            props[name] = {"type": ["number", "string", "null"],
                           "description": "An export-day counter: accepted and ignored"}
        else:
            props[name] = {"type": ["string", "number", "boolean", "null"]}
    required = [spec["id"]]
    if spec.get("created_at"):
        required.append(spec["created_at"])  # the contract refuses a lead without it
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": True,
            "description": "One lead as a web form or CRM webhook sends it. Unknown fields are "
                           "ignored with a warning; a missing field is a missing value."}


def answer_schema(params: dict) -> dict:
    id_col = params["data"]["leads"]["id"]
    explain = bool(params["serve"]["explain"])
    props: dict[str, dict] = {
        id_col: {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1,
                  "description": "P(convert), after the prior-shift correction in force"},
        "is_mql": {"type": "boolean"},
        "model_version": {"type": "string"},
        "scored_at": {"type": "string", "format": "date-time"},
        "tier": {"type": "string", "enum": ["A", "B", "C", "D"]},
        "threshold_version": {"type": "string"},
        "explore": {"type": "boolean",
                    "description": "Sent to sales by the exploration share, not the bar"},
        "sales_propensity": {"type": "number"},
        "score_raw": {"type": "number"},
        "treatment": {"type": "integer", "enum": [0, 1],
                      "description": "1: route to sales (an MQL not held out, or explored)"},
        "propensity": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "The probability of treatment = 1 (leadq lift)"},
        "holdout": {"type": "boolean",
                    "description": "An MQL kept from sales by agreement.holdout_rate"},
    }
    if explain:
        props["reasons_positive"] = {"type": ["string", "null"]}
        props["reasons_negative"] = {"type": ["string", "null"]}
    required = list(props)
    # Only when an uplift model is registered for the model served (leadq lift --fit-uplift).
    props["uplift"] = {"type": "number", "minimum": -1, "maximum": 1,
                       "description": "What a sales call adds to P(convert) for this lead"}
    # Only with agreement.route_by: call_value, where is_mql means call_value ≥ the value bar.
    props["call_value"] = {"type": "number",
                           "description": "The expected gain of calling this lead (uplift × "
                                          "deal value − call cost): what is_mql was decided on"}
    return {"type": "object", "properties": props, "required": required}


def openapi_schema(app: Any, params: dict, reference: dict | None) -> dict:
    """FastAPI's schema with /v1/score's request and answers typed from the contract."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    max_batch = int(params["serve"]["max_batch"])
    warnings = {"type": "array", "items": {"type": "string"}}
    components["Lead"] = lead_schema(params, reference)
    components["Answer"] = answer_schema(params)
    components["ScoredLead"] = {"allOf": [{"$ref": "#/components/schemas/Answer"}, {
        "type": "object", "properties": {"warnings": warnings}, "required": ["warnings"]}]}
    components["ScoredLeads"] = {"type": "object", "required": ["leads", "warnings"],
                                 "properties": {"leads": {"type": "array", "items": {
                                     "$ref": "#/components/schemas/Answer"}},
                                     "warnings": warnings}}
    components["Error"] = {"type": "object", "required": ["detail"], "properties": {
        "detail": {"type": "string"},
        "rejected": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "id": {"type": ["string", "null"]},
            "reason": {"type": "string"}}}}}}
    post = schema["paths"]["/v1/score"]["post"]
    post["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [{"$ref": "#/components/schemas/Lead"},
                  {"type": "array", "minItems": 1, "maxItems": max_batch,
                   "items": {"$ref": "#/components/schemas/Lead"}}]}}}}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    retry = {"Retry-After": {"schema": {"type": "integer"},
                             "description": "seconds to wait before retrying"}}
    post["responses"] = {
        "200": {"description": "The answer: one object for one lead, {leads, warnings} for a "
                               "list", "content": {"application/json": {"schema": {"oneOf": [
                                   {"$ref": "#/components/schemas/ScoredLead"},
                                   {"$ref": "#/components/schemas/ScoredLeads"}]}}}},
        **{code: {"description": text, "content": error,
                  **({"headers": retry} if code == "503" else {})}
           for code, text in ERROR_STATUSES.items()}}
    return schema


def docs_page(schema: dict) -> str:
    """The API described in one HTML page with no script, style sheet or font from elsewhere:
    readable on a closed network (Swagger UI's default page loads from a public CDN)."""
    lead = schema["components"]["schemas"]["Lead"]
    required = set(lead.get("required") or [])
    rows = []
    for name, prop in lead["properties"].items():
        kinds = prop.get("type") or [k.get("type") for k in prop.get("oneOf", [])]
        kinds = kinds if isinstance(kinds, list) else [kinds]
        extra = prop.get("examples")
        rows.append("<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}{}</td></tr>".format(
            html.escape(name), html.escape(", ".join(str(k) for k in kinds)),
            "yes" if name in required else "", html.escape(prop.get("description", "")),
            f" (e.g. {html.escape(', '.join(extra))})" if extra else ""))
    codes = "".join(f"<li><b>{html.escape(code)}</b>: {html.escape(r['description'])}</li>"
                    for code, r in schema["paths"]["/v1/score"]["post"]["responses"].items())
    paths = "".join(f"<li><code>{html.escape(m.upper())} {html.escape(p)}</code>: "
                    f"{html.escape(op.get('summary', ''))}</li>"
                    for p, ops in schema["paths"].items() for m, op in ops.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(schema['info']['title'])} API
</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}}</style></head><body>
<h1>{html.escape(schema['info']['title'])} API</h1>
<p>{html.escape(schema['info'].get('description', ''))}</p>
<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a>.</p>
<h2>Endpoints</h2><ul>{paths}</ul>
<h2>POST /v1/score: one lead, or a list of leads</h2>
<p>Send <code>Content-Type: application/json</code>. Fields of a lead:</p>
<table><tr><th>field</th><th>type</th><th>required</th><th>notes</th></tr>
{''.join(rows)}</table>
<h2>Answers</h2><ul>{codes}</ul>
<h2>Schema</h2><pre>{html.escape(json.dumps(schema['components']['schemas'], indent=1))}</pre>
</body></html>"""
