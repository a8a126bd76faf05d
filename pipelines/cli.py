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

from pipelines.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, LeadqError

Handler = Callable[[argparse.Namespace], object]


def _params_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=None, metavar="FILE",
                   help="parameters file (default: ./params.yaml)")


def cmd_synth(args: argparse.Namespace) -> dict:
    from pipelines.synth import write_crm

    paths = write_crm(args.out, n_leads=args.leads, seed=args.seed, fmt=args.format,
                      leads_only=args.leads_only)
    return {"written": {k: str(v) for k, v in paths.items()}}


def cmd_train(args: argparse.Namespace) -> dict:
    from pipelines.train import main

    return main(args.params)


def cmd_score(args: argparse.Namespace) -> dict:
    from pipelines.score import main

    return main(args.input, args.output, model_uri=args.model_uri, params_path=args.params)


def cmd_demo(args: argparse.Namespace) -> dict:
    from pipelines.demo import main

    return main(args.params, leads=args.leads, seed=args.seed, out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadq",
        description="Predictive lead quality: train on closed deals and sales feedback, "
                    "register in MLflow, score leads, keep the MQL bar honest.",
        epilog="Exit codes: 0 success, 2 bad input or usage, 1 anything else.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("synth", help="write a synthetic CRM (leads, deals, feedback, truth)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--leads", type=int, default=20000, help="number of leads (default 20000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--leads-only", action="store_true",
                   help="only the leads table, streamed in chunks (for large scoring files)")
    p.set_defaults(handler=cmd_synth)

    p = sub.add_parser("train", help="train, calibrate, evaluate and register a model")
    _params_arg(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("score", help="score a leads file with the champion model")
    p.add_argument("--input", required=True, help="leads file (.csv or .parquet)")
    p.add_argument("--output", required=True, help="scores file (.csv or .parquet)")
    p.add_argument("--model-uri", default=None,
                   help="MLflow model URI (default models:/<name>@champion)")
    _params_arg(p)
    p.set_defaults(handler=cmd_score)

    p = sub.add_parser("demo", help="synth → train → score on a synthetic CRM, with a summary")
    _params_arg(p)
    p.add_argument("--leads", type=int, default=None, help="override demo.leads")
    p.add_argument("--seed", type=int, default=None, help="override demo.seed")
    p.add_argument("--out", default=None, help="override demo.out")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from pipelines.progress import setup_logging

    setup_logging(args.verbose)
    try:
        result = args.handler(args)
    except LeadqError as exc:
        print(f"leadq {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("leadq: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.verbose or os.environ.get("LEADQ_DEBUG"):
            raise
        print(f"leadq {args.command}: unexpected error: {type(exc).__name__}: {exc} "
              "(rerun with -v for the traceback)", file=sys.stderr)
        return EXIT_FAILURE
    if args.json and result is not None:
        print(json.dumps(result, indent=2, default=str))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main", "build_parser", "EXIT_BAD_INPUT"]
