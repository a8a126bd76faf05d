"""Errors that map to the CLI's exit codes, the contract a scheduler acts on.

code  meaning → what a scheduler should do
0     success → carry on; the run manifest lists inputs and outputs
1     internal failure (a bug, a crash, the store unreachable) → retry, then alert
2     bad input or usage: a file, column, params key or option is wrong, and the message
      names it → do not retry; alert whoever owns the export or the params file
3     too many rows refused (`leadq score --max-rejected-share`, scoring.max_rejected_share)
      → do not retry; alert the owner of the export
130   interrupted (Ctrl-C, SIGINT) → retry

A run that exits 3 publishes nothing (no scores, no quarantine); only a run that exits 0
writes a manifest.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_TOO_MANY_REJECTED = 3
EXIT_INTERRUPTED = 130

# The table above, one line per code, for the CLI's epilog and `--help`.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "internal failure (retry, then alert)",
    EXIT_BAD_INPUT: "bad input or usage (the message names the file or setting)",
    EXIT_TOO_MANY_REJECTED: "too many rows refused (--max-rejected-share); nothing published",
}


class LeadqError(Exception):
    """An expected failure with a message meant for the user."""

    exit_code = EXIT_FAILURE


class BadInputError(LeadqError):
    """The input or the configuration is wrong; the message names the file, column and problem."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInputError):
    """params.yaml is missing a key or has a value of the wrong kind."""


class GateError(LeadqError):
    """A training guard refused to produce a model (too few positives, leakage, ...)."""

    exit_code = EXIT_BAD_INPUT


class TooManyRejectedError(LeadqError):
    """More rows were quarantined than the scheduler's policy allows: the run publishes
    nothing. A distinct code, so a job can tell "the export went bad" from "leadq broke"."""

    exit_code = EXIT_TOO_MANY_REJECTED
