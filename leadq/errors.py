"""Errors that map to the CLI's exit codes: 2 for bad input or usage, 1 for anything else."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


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
