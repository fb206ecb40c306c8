#!/usr/bin/env bash
# Stages the driver package with its gRPC stubs generated from proto/ (never a committed copy):
#   src/nova-compute-agent/build-stubs.sh [OUTDIR]   (default: src/nova-compute-agent/build)
# -> OUTDIR/compute_agent/ (the package that becomes nova/virt/compute_agent/), path printed last.
# Uses Debian's python3-grpc-tools so the stubs match Debian's python3-grpcio / python3-protobuf.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$here/build}
# Debian's interpreter (the one nova-compute runs), not whatever python3 is first in PATH.
python=${PYTHON:-/usr/bin/python3}

"$python" -c 'import grpc_tools.protoc' 2>/dev/null ||
  { echo "python3-grpc-tools is missing: apt-get install python3-grpc-tools" >&2; exit 1; }

package=$out/compute_agent
rm -rf "$package"
mkdir -p "$package/api"
cp "$here"/compute_agent/*.py "$package/"
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
# Only the agent's own service: the controller's proto is the other direction.
"$python" -m grpc_tools.protoc -I "$repo/proto" --python_out="$gen" --grpc_python_out="$gen" \
  "$repo/proto/computeagent/v1/compute_agent.proto"
# protoc writes absolute imports (from computeagent.v1 import ...); inside nova.virt they are relative.
sed 's/^from computeagent\.v1 import /from . import /' "$gen/computeagent/v1/compute_agent_pb2_grpc.py" \
  >"$package/api/compute_agent_pb2_grpc.py"
cp "$gen/computeagent/v1/compute_agent_pb2.py" "$package/api/"
printf '"""Generated at build time from proto/computeagent/v1/compute_agent.proto."""\n' >"$package/api/__init__.py"
echo "$package"
