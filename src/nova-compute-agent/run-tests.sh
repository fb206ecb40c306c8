#!/usr/bin/env bash
# The driver's pytest suite against a real agent (libvirt test:///default) and the CLI's image
# server, under eventlet monkey patching as in nova-compute:
#   src/nova-compute-agent/run-tests.sh JUNIT_XML [pytest args...]
# Builds the agent, the CLI and the stubs first; the tests start and stop what they need.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
junit=${1:?usage: $0 JUNIT_XML [pytest args...]}
shift
python=${PYTHON:-/usr/bin/python3}
mkdir -p "$(dirname "$junit")"
junit=$(cd "$(dirname "$junit")" && pwd)/$(basename "$junit")

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
PYTHON=$python bash "$here/build-stubs.sh" "$build" >/dev/null
dotnet build "$repo/src/ComputeAgent.Host" -c Release -nologo -v quiet >&2
dotnet build "$repo/src/ComputeAgent.Cli" -c Release -nologo -v quiet >&2
cd "$here"
NOVA_COMPUTE_AGENT_BUILD=$build "$python" -m pytest -p no:cacheprovider tests \
  --junitxml="$junit" -o junit_suite_name=nova-compute-agent "$@"
