#!/usr/bin/env bash
# The agent's main job on this machine: install what is missing, start libvirtd, build the test
# guest, the agent and its CLI, serve the guest image Glance-shaped, start the agent, and walk one
# guest through spawn, pause, unpause, suspend, resume, rescue, unrescue, resize, confirm, stop,
# start, reboot and delete over gRPC,
# printing every state change the agent streams.
set -euo pipefail
cd "$(dirname "$0")"

bash tests/host/ensure-host.sh
guest_dir=$(bash tests/guest/build-guest.sh | tail -n 1)
# shellcheck source=/dev/null
source "$guest_dir/guest.env"
dotnet build src/ComputeAgent.Host -c Release -nologo -v quiet
dotnet build src/ComputeAgent.Cli -c Release -nologo -v quiet
agent=src/ComputeAgent.Host/bin/Release/net10.0/compute-agent.dll
cli=src/ComputeAgent.Cli/bin/Release/net10.0/compute-agent-cli.dll

work=/var/tmp/compute-agent-demo
rm -rf "$work" && mkdir -p "$work/images" && chmod 755 "$work"
cp "$GUEST_DISK" "$work/images/test-guest.qcow2"
# The test guest runs qemu-ga: say so, as an image would, so set-admin-password can reach it.
echo '{"properties": {"hw_qemu_guest_agent": "yes"}}' >"$work/images/test-guest.qcow2.json"
port=${IMAGE_PORT:-19292}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

dotnet "$cli" demo image-server --dir "$work/images" --listen "127.0.0.1:$port" >"$work/images.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^serving' "$work/images.log" 2>/dev/null && break; sleep 0.1; done
image_id=$(awk 'NR==1 {print $1}' "$work/images.log")
echo "image service on 127.0.0.1:$port, test guest image $image_id"

dotnet "$agent" \
  --Agent:LibvirtUri=qemu:///system --Agent:VirtType="${VIRT_TYPE:-qemu}" \
  --Agent:StateDirectory="$work/state" --Agent:InstancesDirectory="$work/instances" \
  --Agent:UnixSocketPath="$work/agent.sock" --Agent:ImageServiceUrl="http://127.0.0.1:$port" \
  --Agent:GracefulStopTimeoutSeconds=30 --Agent:ReclaimInstanceIntervalSeconds=3600 >"$work/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do [[ -S $work/agent.sock ]] && break; sleep 0.1; done
echo "agent on $work/agent.sock (log: $work/agent.log)"

dotnet "$cli" demo walk --socket "$work/agent.sock" --image-id "$image_id" --ready-line "$GUEST_READY_LINE"
