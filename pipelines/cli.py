"""The `leadq` command line. Every command is a thin wrapper around a step's main().

Heavy libraries (mlflow, great_expectations, sklearn) are imported inside the handlers so that
`leadq --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from leadq.errors import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BadInputError,
    LeadqError,
)

Handler = Callable[[argparse.Namespace], object]


def _params_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=None, metavar="FILE",
                   help="parameters file (default: ./params.yaml)")


def cmd_synth(args: argparse.Namespace) -> dict:
    from leadq.pipelines.synth import main

    return main(args.out, leads=args.leads, seed=args.seed, fmt=args.format,
                leads_only=args.leads_only, shape=args.shape, segments=args.segments)


def cmd_init(args: argparse.Namespace) -> dict:
    from leadq.pipelines.init import main

    return main(args.leads, out=args.out, deals=args.deals, feedback=args.feedback,
                lookups=args.lookup, label=args.label, name=args.name, force=args.force,
                activities=args.activities)


def cmd_train(args: argparse.Namespace) -> dict:
    from leadq.pipelines.train import main

    return main(args.params)


def cmd_score(args: argparse.Namespace) -> dict:
    if getattr(args, "engine", "pandas") == "spark":
        from leadq.pipelines.io.database import is_database_url

        if is_database_url(args.input) or is_database_url(args.output):
            raise BadInputError("--engine spark reads and writes files only: score a "
                                "database table with the pandas engine (leave out --engine)")
        from leadq.pipelines.scoring.spark import main_spark

        return main_spark(args.input, args.output, model_uri=args.model_uri,
                          params_path=args.params, master=args.master,
                          explain=bool(args.explain))
    from leadq.pipelines.score import main

    return main(args.input, args.output, model_uri=args.model_uri, params_path=args.params,
                chunk_size=args.chunk_size, explain=args.explain,
                max_rejected_share=args.max_rejected_share)


def cmd_validate(args: argparse.Namespace) -> dict:
    from leadq.pipelines.validate import main

    return main(args.params, docs=args.docs)


def cmd_report(args: argparse.Namespace) -> dict:
    from leadq.pipelines.report import main

    return main(args.params, out=args.out, model_uri=args.model_uri)


def cmd_demo(args: argparse.Namespace) -> dict:
    from leadq.pipelines.demo import main

    return main(args.params, leads=args.leads, seed=args.seed, out=args.out)


def cmd_recalibrate(args: argparse.Namespace) -> dict:
    from leadq.pipelines.recalibrate import main

    return main(args.params, as_of=args.as_of, scores=args.scores, model_uri=args.model_uri,
                dry_run=args.dry_run, change_policy=args.change_policy, changed_by=args.by)


def cmd_agreement(args: argparse.Namespace) -> dict:
    from leadq.pipelines.agreement import main

    return main(args.params, model_uri=args.model_uri)


def cmd_review(args: argparse.Namespace) -> dict:
    from leadq.pipelines.review import main

    return main(args.params, out=args.out, as_of=args.as_of, scores=args.scores,
                model_uri=args.model_uri)


def cmd_lift(args: argparse.Namespace) -> dict:
    from leadq.pipelines.lift import main

    return main(args.params, scores=args.scores, data=args.data,
                treatment_column=args.treatment_column, outcome_column=args.outcome_column,
                propensity_column=args.propensity_column,
                uplift_features=[c.strip() for c in args.uplift_features.split(",") if c.strip()]
                if args.uplift_features else None, score_column=args.score_column,
                fit_uplift=args.fit_uplift)


def cmd_thresholds(args: argparse.Namespace) -> dict:
    from leadq.pipelines.thresholds import main

    return main(args.params, model_version=args.model_version)


def cmd_serve(args: argparse.Namespace) -> dict:
    from leadq.pipelines.serve import main

    return main(args.params, host=args.host, port=args.port, workers=args.workers,
                model_uri=args.model_uri)


def cmd_plan(args: argparse.Namespace) -> dict:
    from leadq.pipelines.plan import main

    return main(args.params, won_deals=args.won_deals, period=args.period, scores=args.scores,
                as_of=args.as_of, model_uri=args.model_uri)


def cmd_promote(args: argparse.Namespace) -> dict:
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.registry import promote

    return promote(load_params(args.params), args.version, force=args.force)


def cmd_rollback(args: argparse.Namespace) -> dict:
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.registry import rollback

    return rollback(load_params(args.params))


def cmd_params(args: argparse.Namespace) -> dict | None:
    """The effective configuration: the packaged defaults with the params file merged over."""
    from leadq.pipelines.params.loader import load_params, public_params

    params = public_params(load_params(args.params))
    if args.json:
        return params
    import yaml

    print(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), end="")
    return None


def cmd_models(args: argparse.Namespace) -> dict:
    from leadq.pipelines.params.loader import load_params
    from leadq.pipelines.tracking.registry import list_models

    return list_models(load_params(args.params))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadq",
        description="Predictive lead quality: train on closed deals and sales feedback, "
                    "register in MLflow, score leads, keep the MQL bar honest.",
        epilog="Exit codes (for schedulers): "
               + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
               + ". Every command that reads tables writes a run manifest (inputs with "
                 "checksums and row counts, outputs, warnings, timings): beside the scores "
                 "for score, else in params outputs.dir.",
    )
    for flags, text in GLOBAL_FLAGS:
        parser.add_argument(*flags, action="store_true", help=text)
    parser.add_argument(*LOG_FORMAT_FLAG, choices=["text", "json"], default="text",
                        help=LOG_FORMAT_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("synth", help="write a synthetic CRM (leads, deals, feedback, truth)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--leads", type=int, default=20000, help="number of leads (default 20000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--leads-only", action="store_true",
                   help="only the leads table, streamed in chunks (for large scoring files)")
    p.add_argument("--shape", choices=["leadq", "salesforce", "hubspot"], default="leadq",
                   help="column names, ids, statuses, ratings and dates as that CRM's report "
                        "exports write them (the same leads and outcomes underneath)")
    p.add_argument("--segments", type=int, choices=[2, 3], default=None,
                   help="a CRM of 2 or 3 business lines that convert for different reasons "
                        "(leads with a 0/1 outcome, truth.csv and a params.yaml with "
                        "segments.column set): what per-segment models are for")
    p.set_defaults(handler=cmd_synth)

    p = sub.add_parser("init", help="profile an export and write a params file for it "
                                    "(only what differs from the defaults, guesses commented)")
    p.add_argument("--leads", required=True, metavar="PATH", help="the leads export")
    p.add_argument("--deals", default=None, metavar="PATH",
                   help="deals keyed by lead id, when the leads carry no outcome")
    p.add_argument("--activities", default=None, metavar="PATH",
                   help="an activity log (one row per event) for point-in-time features")
    p.add_argument("--feedback", default=None, metavar="PATH",
                   help="sales feedback (lead status, first contact, rating, reason): init "
                        "maps its statuses to accepted / rejected / not reached")
    p.add_argument("--lookup", action="append", default=[], metavar="PATH:KEY",
                   help="a lookup table joined on KEY (PATH:KEY=LEADS_COLUMN when the leads "
                        "name it differently); repeat for several")
    p.add_argument("--label", default=None, metavar="COLUMN",
                   help="the outcome column or conversion date, when init cannot tell")
    p.add_argument("--out", default="params.yaml", metavar="FILE",
                   help="params file to write (default ./params.yaml)")
    p.add_argument("--name", default=None,
                   help="registered model and experiment name (default leadq-<file>)")
    p.add_argument("--force", action="store_true", help="replace an existing, different --out")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("train", help="train, calibrate, evaluate and register a model")
    _params_arg(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("score", help="score a leads file with the champion model")
    p.add_argument("--input", required=True,
                   help="leads file (.csv or .parquet), or a database URL (postgresql://user@"
                        "host/db): params database.leads_table or leads_query is read")
    p.add_argument("--output", required=True,
                   help="scores file (.csv or .parquet), or a database URL: scores are "
                        "upserted into params database.scores_table in one transaction")
    p.add_argument("--model-uri", default=None,
                   help="MLflow model URI (default models:/<name>@champion)")
    p.add_argument("--engine", choices=["pandas", "spark"], default="pandas",
                   help="pandas (one machine, streamed) or spark (--input may be a glob or "
                        "directory; --output is a directory of partitioned Parquet)")
    p.add_argument("--master", default=None, metavar="URL",
                   help="Spark master for --engine spark (default local[*], or spark-submit's)")
    p.add_argument("--chunk-size", type=int, default=None, metavar="ROWS",
                   help="rows per chunk (default scoring.chunk_size); memory stays flat")
    p.add_argument("--explain", action=argparse.BooleanOptionalAction, default=None,
                   help="add reasons_positive / reasons_negative per lead (default: on for "
                        "files up to params explain.max_rows leads; off with --engine spark)")
    p.add_argument("--max-rejected-share", type=float, default=None, metavar="SHARE",
                   help="exit 3 and publish nothing when more than this share of rows is "
                        "refused (default params scoring.max_rejected_share: off)")
    _params_arg(p)
    p.set_defaults(handler=cmd_score)

    p = sub.add_parser("report", help="HTML report for marketers: importance, attribute "
                                      "insights, personas, campaign quality, model health")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="output HTML file (default params report.out)")
    p.add_argument("--model-uri", default=None,
                   help="MLflow model URI (default models:/<name>@champion)")
    _params_arg(p)
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("validate", help="check the configured CRM tables against their data "
                                        "contracts and write Great Expectations Data Docs")
    p.add_argument("--docs", default=None, metavar="DIR",
                   help="Data Docs directory (default gx_docs/ beside the params file)")
    _params_arg(p)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("promote", help="make a registered model version the champion")
    p.add_argument("version", help="registry version number")
    p.add_argument("--force", action="store_true",
                   help="promote even if its recorded test metrics fail registry.criteria")
    _params_arg(p)
    p.set_defaults(handler=cmd_promote)

    p = sub.add_parser("rollback", help="give the champion alias back to the previous champion")
    _params_arg(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("models", help="registered versions, aliases, key metrics and when each "
                                      "was champion")
    _params_arg(p)
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("params", help="print the effective parameters: the packaged defaults "
                                      "with the params file merged over them (YAML; --json)")
    _params_arg(p)
    p.set_defaults(handler=cmd_params)

    p = sub.add_parser("demo", help="synth → train → score on a synthetic CRM, with a summary")
    _params_arg(p)
    p.add_argument("--leads", type=int, default=None, help="override demo.leads")
    p.add_argument("--seed", type=int, default=None, help="override demo.seed")
    p.add_argument("--out", default=None, help="override demo.out")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("recalibrate", help="move the MQL bar and tiers to the recent leads, "
                                           "correct for base-rate shift, report SLA and drift")
    p.add_argument("--as-of", default=None, metavar="DATE",
                   help="YYYY-MM-DD: the end of the recent window (default: the latest lead)")
    p.add_argument("--scores", default=None, metavar="GLOB|URL",
                   help="the scorer's outputs: files, or the database URL score wrote to "
                        "(default params recalibration.scores)")
    p.add_argument("--model-uri", default=None,
                   help="registry model URI (default models:/<name>@champion)")
    p.add_argument("--dry-run", action="store_true", help="report, but store no new version")
    p.add_argument("--change-policy", default=None, metavar="WHY",
                   help="apply a new agreement.mql policy (edited in params) and record why; "
                        "without it recalibrate keeps the policy in force and refuses a "
                        "changed one")
    p.add_argument("--by", default=None, metavar="WHO",
                   help="who changes the policy (default: the login name)")
    _params_arg(p)
    p.set_defaults(handler=cmd_recalibrate)

    p = sub.add_parser("agreement", help="the agreement marketing and sales signed, in words: "
                                         "what counts as an MQL, how many a week, the SLA")
    p.add_argument("--model-uri", default=None,
                   help="registry model URI (default models:/<name>@champion; the MQLs a week "
                        "are shown when it and the scorer's outputs are found)")
    _params_arg(p)
    p.set_defaults(handler=cmd_agreement)

    p = sub.add_parser("review", help="the regular marketing-and-sales review on one page: SLA, "
                                      "acceptance, campaigns to cut, the bar, the goal")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="output HTML file (default params review.out)")
    p.add_argument("--as-of", default=None, metavar="DATE",
                   help="YYYY-MM-DD: the end of the review period (default: the latest lead)")
    p.add_argument("--scores", default=None, metavar="GLOB|URL",
                   help="the scorer's outputs: files, or the database URL score wrote to "
                        "(default params recalibration.scores)")
    p.add_argument("--model-uri", default=None,
                   help="registry model URI (default models:/<name>@champion)")
    _params_arg(p)
    p.set_defaults(handler=cmd_review)

    p = sub.add_parser("lift", help="what a sales call changes: the effect of routing on "
                                    "conversion above and below the bar, from the randomised "
                                    "holdout and exploration")
    p.add_argument("--scores", default=None, metavar="GLOB|URL",
                   help="the scorer's outputs: files, or the database URL score wrote to "
                        "(default params recalibration.scores)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="any randomised test in one table instead (with --treatment-column "
                        "and --outcome-column)")
    p.add_argument("--treatment-column", default=None, metavar="COLUMN",
                   help="with --data: who got the action (1/0, true/false, yes/no)")
    p.add_argument("--outcome-column", default=None, metavar="COLUMN",
                   help="with --data: who converted (1/0, true/false, yes/no)")
    p.add_argument("--propensity-column", default=None, metavar="COLUMN",
                   help="with --data: each row's probability of the action (default: one "
                        "coin for all)")
    p.add_argument("--uplift-features", default=None, metavar="COL,COL",
                   help="with --data: fit T- and X-learners on these columns (known before "
                        "the action) and report their Qini and top-20%% uplift on a held-out "
                        "30%%), and compare routing by probability with routing by the "
                        "value of the call at the same capacity")
    p.add_argument("--fit-uplift", action="store_true",
                   help="fit the uplift model on the randomised scored leads and register it "
                        "beside the champion: scoring then writes a per-lead uplift column")
    p.add_argument("--score-column", default=None, metavar="COLUMN",
                   help="with --uplift-features: the score routing by probability ranks by "
                        "(default: the T-learner's chance to convert when treated)")
    _params_arg(p)
    p.set_defaults(handler=cmd_lift)

    p = sub.add_parser("thresholds", help="threshold history of a model version")
    p.add_argument("--model-version", default=None, help="default: the champion")
    _params_arg(p)
    p.set_defaults(handler=cmd_thresholds)

    p = sub.add_parser("serve", help="real-time scoring API (HTTP) for the champion model")
    p.add_argument("--host", default=None, help="address to bind (default: serve.host, "
                                                "127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: serve.port, 8080")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: serve.workers, 1)")
    p.add_argument("--model-uri", default=None,
                   help="registry model URI (default models:/<name>@champion)")
    _params_arg(p)
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("plan", help="turn a won-deals goal into MQLs for sales and leads "
                                    "for marketing")
    p.add_argument("--won-deals", type=float, default=None,
                   help="the goal, e.g. 40 (default: agreement.goal.won_deals)")
    p.add_argument("--period", choices=["week", "month", "quarter"], default=None,
                   help="default: agreement.goal.period")
    p.add_argument("--scores", default=None, metavar="GLOB|URL",
                   help="the scorer's outputs: files, or the database URL score wrote to "
                        "(default params recalibration.scores)")
    p.add_argument("--as-of", default=None, metavar="DATE", help="end of the recent window")
    p.add_argument("--model-uri", default=None,
                   help="registry model URI (default models:/<name>@champion)")
    _params_arg(p)
    p.set_defaults(handler=cmd_plan)
    _finish_subcommands(sub)
    return parser


GLOBAL_FLAGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("-v", "--verbose"), "debug logging, a traceback on error, MLflow's download progress"),
    (("--json",), "print the result as JSON (with the run manifest)"),
)
LOG_FORMAT_FLAG = ("--log-format",)
LOG_FORMAT_HELP = "text (default) or json: one JSON object per log line on stderr"


def _finish_subcommands(sub: argparse._SubParsersAction) -> None:
    """What every subcommand gets, applied here so the add_parser calls above stay short.

    The global flags are accepted after the subcommand too (`leadq params --json`). Their
    default is SUPPRESS, so a subcommand that is not given one leaves the value parsed before
    the subcommand in place instead of resetting it to False.
    """
    from leadq.pipelines import cli_help

    for subparser in sub.choices.values():
        group = subparser.add_argument_group("global options (also accepted before COMMAND)")
        for flags, text in GLOBAL_FLAGS:
            group.add_argument(*flags, action="store_true", default=argparse.SUPPRESS,
                               help=text)
        group.add_argument(*LOG_FORMAT_FLAG, choices=["text", "json"],
                           default=argparse.SUPPRESS, help=LOG_FORMAT_HELP)
    cli_help.apply(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from leadq.pipelines.io.progress import log, setup_logging

    setup_logging(args.verbose, fmt=args.log_format)
    if not args.verbose:
        # MLflow draws a "Downloading artifacts" bar for every model or file it fetches; in a
        # command's output that is noise, so it shows only with -v (an explicit setting wins).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # MLflow's own INFO lines (creating the database tables, alembic migrations) repeat
        # what leadq says in its words; warnings and errors still show.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from leadq.pipelines.io import run
    from leadq.pipelines.io.manifest import write_manifest

    try:
        with run.started(args.command) as this_run:
            result = args.handler(args)
            written = write_manifest(this_run, result)
            if written is not None:
                log.info("run manifest: %s", written[0])
        if written is not None and isinstance(result, dict):
            result = {**result, "manifest_path": str(written[0]), "manifest": written[1]}
    except LeadqError as exc:
        _error(args, f"leadq {args.command}: error: {exc}", exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        _error(args, "leadq: interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.verbose or os.environ.get("LEADQ_DEBUG"):
            raise
        _error(args, f"leadq {args.command}: unexpected error: {type(exc).__name__}: {exc} "
               "(rerun with -v for the traceback)", EXIT_FAILURE)
        return EXIT_FAILURE
    if args.json and result is not None:
        print(json.dumps(result, indent=2, default=str))
    return EXIT_OK


def _error(args: argparse.Namespace, message: str, code: int) -> None:
    """The last line of a failed run: plain text, or with --log-format json one more JSON log
    line (with the exit code) so a log collector sees why the job failed."""
    if args.log_format == "json":
        from leadq.pipelines.io.progress import log

        log.error(message, extra={"exit_code": code})
    else:
        print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main", "build_parser", "EXIT_BAD_INPUT"]
