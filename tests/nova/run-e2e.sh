#!/usr/bin/env bash
# The end-to-end proof: a real Nova (tests/nova/stack.sh, agent-backed compute only) drives one
# server through every seed command with the openstack CLI (tests/nova/test_e2e.py).
#
#   tests/nova/run-e2e.sh JUNIT.xml
#
# As root. Starts the stack, runs pytest (JUnit XML to JUNIT.xml), stops the stack even when
# something failed, and exits with pytest's status (or stack.sh's when the stack did not start).
# NOVA_E2E_KEEP_STACK=1 leaves the stack running for a look afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
junit=${1:?usage: $0 JUNIT.xml}
junit=$(realpath -m "$junit")
mkdir -p "$(dirname "$junit")"

stop_stack() {
  [[ ${NOVA_E2E_KEEP_STACK:-0} == 1 ]] && return 0
  bash "$here/stack.sh" stop || true
}
trap stop_stack EXIT

start=$(date +%s)
if ! bash "$here/stack.sh" start agent; then
  echo "run-e2e: the stack did not start (see the message above)" >&2
  exit 1
fi
echo "run-e2e: stack up in $(($(date +%s) - start)) s" >&2
rc=0
(cd "$here" && timeout 1500 /usr/bin/python3 -m pytest -v -p no:cacheprovider --junitxml="$junit" test_e2e.py) || rc=$?
echo "run-e2e: done in $(($(date +%s) - start)) s (pytest status $rc; logs in /var/tmp/nova-stack/logs)" >&2
if ((rc != 0)); then
  # CI keeps only this output: say what Nova and the agent logged as errors before the stack stops.
  logs=${NOVA_STACK_DIR:-/var/tmp/nova-stack}/logs
  for f in /var/log/nova/nova-conductor.log /var/log/nova/nova-scheduler.log "$logs"/nova-compute-*.log "$logs"/compute-agent.out; do
    [[ -f $f ]] || continue
    lines=$(grep -E ' (ERROR|CRITICAL) |NoValidHost|^[0-9:.]+ (ERR|FTL) ' "$f" | tail -n 15 | cut -c1-600) || true
    [[ -z $lines ]] || printf 'run-e2e: the last errors in %s:\n%s\n' "$f" "$lines" >&2
  done
fi
exit $rc
