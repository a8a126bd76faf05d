"""One-line descriptions and examples for every `leadq` subcommand's --help.

They live in one table keyed by command name, apart from the add_parser calls in cli.py, so a
new command needs one entry here and nothing else changes. build_parser() applies the table
after the subparsers exist; tests/code/test_cli.py fails for a command without an entry, and
the reference page (docs/reference/commands.md) is generated from the same parser.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple


class CommandHelp(NamedTuple):
    description: str  # one line: what the command is for
    examples: tuple[str, ...]  # complete command lines a reader can paste


HELP: dict[str, CommandHelp] = {
    "synth": CommandHelp(
        "Write a synthetic CRM (leads, deals, feedback, activity log and the true conversion "
        "probabilities) to try leadq without your own data.",
        ("leadq synth --out crm/ --leads 20000 --seed 1",
         "leadq synth --out big/ --leads 1000000 --leads-only --format parquet")),
    "init": CommandHelp(
        "Profile your CRM export and write a short params file for it: only what differs from "
        "the defaults, each guess with a comment saying why.",
        ("leadq init --leads export.csv --out params.yaml",
         "leadq init --leads leads.csv --deals deals.csv --lookup accounts.csv:account",
         "leadq init --leads leads.csv --feedback feedback.csv")),
    "train": CommandHelp(
        "Label, split out of time, search, calibrate, evaluate and register a model; the gate "
        "decides whether it becomes the champion.",
        ("leadq train --params params.yaml",)),
    "score": CommandHelp(
        "Score a leads file with the champion: score, MQL flag, tier and per-lead reasons; bad "
        "rows are quarantined beside the output.",
        ("leadq score --input new_leads.csv --output scores.csv --params params.yaml",
         "leadq score --engine spark --input 'exports/leads_*.parquet' --output scores/")),
    "report": CommandHelp(
        "Write the marketer report (HTML): what drives conversion, attribute insights, "
        "personas, campaign quality and model health.",
        ("leadq report --params params.yaml --out report.html",)),
    "validate": CommandHelp(
        "Check the configured CRM tables against their data contracts and write Great "
        "Expectations Data Docs; reads only.",
        ("leadq validate --params params.yaml --docs gx_docs/",)),
    "promote": CommandHelp(
        "Make a registered model version the champion (refused when it fails "
        "registry.criteria, unless --force).",
        ("leadq promote 7 --params params.yaml",)),
    "rollback": CommandHelp(
        "Give the champion alias back to the previous champion; repeat to walk further back.",
        ("leadq rollback --params params.yaml",)),
    "models": CommandHelp(
        "List registered versions with their aliases, key test metrics and when each was "
        "champion.",
        ("leadq models --params params.yaml", "leadq models --params params.yaml --json")),
    "params": CommandHelp(
        "Print the effective parameters: the packaged defaults with your params file merged "
        "over them.",
        ("leadq params --params params.yaml", "leadq params --params params.yaml --json")),
    "demo": CommandHelp(
        "Run synth, train and score on a synthetic CRM and print a summary (what `make run` "
        "does).",
        ("leadq demo", "leadq demo --leads 10000 --out demo_small")),
    "recalibrate": CommandHelp(
        "Move the MQL bar and tiers to the recent leads, correct for a base-rate shift, and "
        "report the SLA and drift.",
        ("leadq recalibrate --params params.yaml --as-of 2026-06-30",
         "leadq recalibrate --params params.yaml --dry-run",
         "leadq recalibrate --params params.yaml --change-policy 'capacity agreed at 400 a week'")),
    "thresholds": CommandHelp(
        "Show the threshold history (MQL bar and tier cut-offs) of a model version.",
        ("leadq thresholds --params params.yaml",
         "leadq thresholds --params params.yaml --model-version 3")),
    "serve": CommandHelp(
        "Serve the champion over HTTP: one lead (or a batch) per call, the batch scorer's "
        "answers.",
        ("leadq serve --params params.yaml --port 8080 --workers 1",)),
    "agreement": CommandHelp(
        "Print the agreement marketing and sales signed, in words: what counts as an MQL, how "
        "many a week, the SLA.",
        ("leadq agreement --params params.yaml",)),
    "review": CommandHelp(
        "Write the regular marketing-and-sales review on one page: SLA, acceptance, campaigns "
        "to cut, the bar, the goal.",
        ("leadq review --params params.yaml --out review.html",
         "leadq review --params params.yaml --as-of 2026-06-30")),
    "plan": CommandHelp(
        "Turn a won-deals goal into the MQLs sales must work and the leads marketing must "
        "bring.",
        ("leadq plan --params params.yaml",
         "leadq plan --params params.yaml --won-deals 40 --period month")),
    "lift": CommandHelp(
        "Measure what routing a lead to sales changes: the effect on conversion above the bar "
        "(routed vs held-out MQLs) and below it (explored vs not), from the randomised groups "
        "only, with intervals and the leads still needed; or any randomised test in a table.",
        ("leadq lift --params params.yaml",
         "leadq lift --data test.csv --treatment-column Promotion --outcome-column purchase",
         "leadq lift --data test.csv --treatment-column Promotion --outcome-column purchase "
         "--uplift-features V1,V2,V3")),
}


def apply(subparsers: argparse._SubParsersAction) -> None:
    """Give each subparser its description and an "examples" epilog from HELP.

    A command missing from HELP keeps argparse's defaults; the test names it.
    """
    for name, parser in subparsers.choices.items():
        entry = HELP.get(name)
        if entry is None:
            continue
        parser.description = entry.description
        lines = "\n".join(f"  {example}" for example in entry.examples)
        parser.epilog = f"{EXAMPLES_HEADING}\n{lines}"
        parser.formatter_class = _Formatter


EXAMPLES_HEADING = "examples:"


class _Formatter(argparse.HelpFormatter):
    """Wraps the description as usual but keeps each example on its own line (argparse would
    re-wrap the epilog into one paragraph)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES_HEADING):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)
