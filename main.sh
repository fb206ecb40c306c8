#!/usr/bin/env bash
# The agent's main job on this machine: install what is missing, start libvirtd, build the test
# guest and the CLI, then walk one real guest through its lifecycle, printing every step.
set -euo pipefail
cd "$(dirname "$0")"

bash tests/host/ensure-host.sh
guest_dir=$(bash tests/guest/build-guest.sh | tail -n 1)
# shellcheck source=/dev/null
source "$guest_dir/guest.env"
dotnet build src/ComputeAgent.Cli -c Release -nologo -v quiet
exec dotnet src/ComputeAgent.Cli/bin/Release/net10.0/compute-agent-cli.dll lifecycle \
  --image "$GUEST_DISK" --ready-line "$GUEST_READY_LINE" --virt-type "${VIRT_TYPE:-qemu}"
