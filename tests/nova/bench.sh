#!/usr/bin/env bash
# Side-by-side benchmark: Nova's own libvirt driver vs compute-agent's driver, same Nova, same
# flavor and image, two nova-compute services on this host (tests/nova/stack.sh start both).
#
#   tests/nova/bench.sh [ROUNDS]        (default 5; as root)
#
# Prints a markdown table (median of ROUNDS per operation and the ratio ours / libvirt) on stdout.
# Stops the stack afterwards unless NOVA_BENCH_KEEP_STACK=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-5}

stop_stack() {
  [[ ${NOVA_BENCH_KEEP_STACK:-0} == 1 ]] && return 0
  bash "$here/stack.sh" stop || true
}
trap stop_stack EXIT

bash "$here/stack.sh" start both
cd "$here"
timeout 7200 /usr/bin/python3 bench.py --rounds "$rounds"
