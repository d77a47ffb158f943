#!/usr/bin/env bash
# Submit one PyFlink job to the session cluster, unless a job of that name is already active.
#
#   submit-job.sh JOB_NAME flink run -d -m jobmanager:8081 -py FILE -- JOB_FLAGS...
#
# JOB_NAME is the job's pipeline name (fleetpulse-tracking, fleetpulse-delay). Waits (with a
# deadline) for the JobManager's REST API and at least one registered TaskManager, so running
# it again after `docker compose up` never submits a second copy of a running job; a job that
# is gone (JobManager restarted) is submitted again and, with `--restore latest`, resumes from
# its newest retained checkpoint.
set -euo pipefail

name="$1"
shift
rest="${FLINK_REST_URL:-http://jobmanager:8081}"
deadline=$((SECONDS + ${SUBMIT_TIMEOUT_S:-300}))

overview() { curl -fsS --max-time 5 "$rest/$1"; }

until [[ "$(overview overview 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["taskmanagers"])' 2>/dev/null || echo 0)" -ge 1 ]]; do
  if (( SECONDS >= deadline )); then
    echo "submit-job: no JobManager with a TaskManager at $rest after ${SUBMIT_TIMEOUT_S:-300}s" >&2
    exit 1
  fi
  sleep 2
done

active="$(overview jobs/overview | python3 -c '
import json, sys
name = sys.argv[1]
live = {"CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING", "FAILING", "CANCELLING"}
jobs = json.load(sys.stdin).get("jobs", [])
print(" ".join(j["jid"] for j in jobs if j.get("name") == name and j.get("state") in live))
' "$name")"

if [[ -n "$active" ]]; then
  echo "submit-job: $name is already active ($active); not submitting"
  exit 0
fi

echo "submit-job: submitting $name: $*"
exec "$@"
