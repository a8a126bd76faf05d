#!/usr/bin/env bash
# The nightly (and weekly) leadq job for cron, systemd or any scheduler that runs a command.
#
#   leadq-job.sh score        score the night's leads (nightly)
#   leadq-job.sh recalibrate  move the MQL bar on the scored leads' outcomes (weekly)
#   leadq-job.sh JOB ARGS…    the same, with more of leadq's options (e.g. --as-of 2026-06-30)
#
# Settings come from the environment (a crontab's variable lines, a systemd EnvironmentFile):
#   LEADQ_PARAMS              params.yaml of the job (required; its folder holds leadq-out/)
#   LEADQ_INPUT               score: leads file, folder, glob or database URL (required)
#   LEADQ_OUTPUT              score: scores file or database URL (default
#                             $LEADQ_SCORES_DIR/scores-YYYY-MM-DD.parquet, the UTC date)
#   LEADQ_SCORES_DIR          score: folder for the dated scores files
#   LEADQ_MAX_REJECTED_SHARE  score: exit 3, publish nothing, above this share of refused rows
#                             (default 0.02)
#   LEADQ_RETRIES             retries after exit 1 (internal failure; default 2), waiting
#                             LEADQ_RETRY_SECONDS (default 300) between tries
#   LEADQ_ALERT_CMD           run (through sh, message in $LEADQ_ALERT) when the job fails
#   LEADQ_TIMEOUT             stop a run that takes longer (default 6h; `timeout` syntax):
#                             exit 124, alert, no retry (a hang would hang again)
#   LEADQ                     the leadq command (default: leadq on PATH)
# A database password belongs in PGPASSWORD or ~/.pgpass, never in the URL on a command line.
#
# Exit codes are leadq's (leadq --help): 0 ok; 1 internal failure (retried here, then alert);
# 2 bad input or settings (no retry: alert the owner of the export or params); 3 too many
# rows refused (no retry: alert the owner of the export; nothing was published); 75 another
# run of this job still holds the lock (alert: the night's run did not happen); 124 the run
# took longer than LEADQ_TIMEOUT (alert, no retry).
set -uo pipefail

job="${1:-}"
shift || true
case "$job" in
    score|recalibrate) ;;
    *) echo "usage: $0 score|recalibrate" >&2; exit 64 ;;
esac
: "${LEADQ_PARAMS:?set LEADQ_PARAMS to the params.yaml of the job}"
leadq_cmd="${LEADQ:-leadq}"
retries="${LEADQ_RETRIES:-2}"
wait_seconds="${LEADQ_RETRY_SECONDS:-300}"

args=(--log-format json)
if [ "$job" = score ]; then
    : "${LEADQ_INPUT:?set LEADQ_INPUT to the leads file, folder or database URL}"
    output="${LEADQ_OUTPUT:-}"
    if [ -z "$output" ]; then
        : "${LEADQ_SCORES_DIR:?set LEADQ_OUTPUT or LEADQ_SCORES_DIR}"
        output="$LEADQ_SCORES_DIR/scores-$(date -u +%F).parquet"
    fi
    args+=(score --input "$LEADQ_INPUT" --output "$output"
           --max-rejected-share "${LEADQ_MAX_REJECTED_SHARE:-0.02}" --params "$LEADQ_PARAMS" "$@")
else
    args+=(recalibrate --params "$LEADQ_PARAMS" "$@")
fi

alert() {
    echo "leadq-job: $1" >&2
    if [ -n "${LEADQ_ALERT_CMD:-}" ]; then
        LEADQ_ALERT="$1" sh -c "$LEADQ_ALERT_CMD" || echo "leadq-job: alert command failed" >&2
    fi
}

run() {
    local try=0 code
    while :; do
        try=$((try + 1))
        # URLs shown as their scheme only: a password in one must not reach the log
        echo "leadq-job: $job try $try: $leadq_cmd ${args[*]%%://*}" >&2
        if command -v timeout >/dev/null 2>&1; then
            timeout "${LEADQ_TIMEOUT:-6h}" "$leadq_cmd" "${args[@]}"
        else
            "$leadq_cmd" "${args[@]}"
        fi
        code=$?
        case "$code" in
            0) return 0 ;;
            2) alert "$job: bad input or settings (exit 2): fix the export or params, no retry"
               return 2 ;;
            3) alert "$job: too many rows refused (exit 3): nothing published, see the log"
               return 3 ;;
            124) alert "$job: stopped after ${LEADQ_TIMEOUT:-6h} (exit 124): nothing published"
               return 124 ;;
            *) if [ "$try" -gt "$retries" ]; then
                   alert "$job: failed with exit $code after $try tries"
                   return "$code"
               fi
               echo "leadq-job: exit $code, retrying in ${wait_seconds}s" >&2
               sleep "$wait_seconds" ;;
        esac
    done
}

# One run of a job at a time: a slow night must not overlap the next.
lock="$(dirname "$LEADQ_PARAMS")/.leadq-$job.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock"
    if ! flock -n 9; then
        # Said loudly: a run that hangs would otherwise skip every later night in silence.
        alert "$job: another run still holds $lock; tonight's run did not start"
        exit 75
    fi
fi
run
