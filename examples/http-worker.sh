#!/usr/bin/env bash
# A runq worker in bash, over HTTP: claim jobs, heartbeat, run them, complete or fail
# them with their fences. Needs curl and jq. Tasks it knows:
#   wordcount TEXT   -> the number of words in TEXT
#   upper TEXT       -> TEXT in capitals
# Any other task fails at once, without retries.
#
#   RUNQ_HTTP=http://127.0.0.1:1280 QUEUE=default ./examples/http-worker.sh
# Once the broker's store has access tokens, set RUNQ_TOKEN to one with work:QUEUE.
set -euo pipefail

RUNQ_HTTP=${RUNQ_HTTP:-http://127.0.0.1:1280}
WORKER=${WORKER:-sh-$$}
QUEUE=${QUEUE:-default}
WAIT=${WAIT:-10}        # seconds a claim waits for a job
MAX_JOBS=${MAX_JOBS:-0} # stop after this many jobs (0: run until killed)

# POST a JSON body; prints the response body, then the HTTP status on a line of its own.
post() {
    local auth=()
    if [ -n "${RUNQ_TOKEN:-}" ]; then
        auth=(-H "authorization: Bearer $RUNQ_TOKEN")
    fi
    curl -sS -X POST -H 'content-type: application/json' "${auth[@]}" --data "$2" \
        -w '\n%{http_code}' "$RUNQ_HTTP/api/v1$1"
}

report() { # report JOB KIND BODY: complete or fail, saying so if the broker refuses
    local out status
    out=$(post "/work/$1/$2" "$3")
    status=${out##*$'\n'}
    if [ "$status" != 200 ]; then
        echo "job $1: $2 refused ($status): ${out%$'\n'*}" >&2
    fi
}

run() { # run TASK ARGS_JSON: prints the result as JSON, or fails
    case "$1" in
        wordcount) jq -r '.[0]' <<<"$2" | wc -w | tr -d ' ' ;;
        upper) jq '.[0] | ascii_upcase' <<<"$2" ;;
        *) return 2 ;;
    esac
}

done_jobs=0
while [ "$MAX_JOBS" = 0 ] || [ "$done_jobs" -lt "$MAX_JOBS" ]; do
    claim=$(jq -cn --arg w "$WORKER" --arg q "$QUEUE" --argjson wait "$WAIT" \
        '{worker: $w, queues: [$q], limit: 1, wait: $wait}')
    out=$(post /work/claim "$claim")
    status=${out##*$'\n'}
    body=${out%$'\n'*}
    case "$status" in
        200) ;;
        204) continue ;; # nothing became ready: ask again
        *) echo "claim failed ($status): $body" >&2; sleep 1; continue ;;
    esac
    job=$(jq -c '.jobs[0]' <<<"$body")
    id=$(jq -r .id <<<"$job")
    fence=$(jq -r .fence <<<"$job")
    task=$(jq -r .task <<<"$job")
    lease=$(jq -cn --arg w "$WORKER" --argjson f "$fence" '{worker: $w, fence: $f}')
    post "/work/$id/heartbeat" "$lease" >/dev/null # long jobs heartbeat before lease_until

    if result=$(run "$task" "$(jq -c .args <<<"$job")"); then
        report "$id" complete "$(jq -cn --arg w "$WORKER" --argjson f "$fence" \
            --argjson r "$result" '{worker: $w, fence: $f, result: $r}')"
    else
        report "$id" fail "$(jq -cn --arg w "$WORKER" --argjson f "$fence" --arg t "$task" \
            '{worker: $w, fence: $f, code: "unknown_task", retryable: false,
              message: "this worker has no task \($t)"}')"
    fi
    done_jobs=$((done_jobs + 1))
done
