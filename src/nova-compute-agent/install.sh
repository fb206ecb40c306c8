#!/usr/bin/env bash
# Installs the driver into Nova's nova.virt package (as out-of-tree drivers such as nova-lxd did):
#   src/nova-compute-agent/install.sh [NOVA_VIRT_DIR]
# NOVA_VIRT_DIR defaults to the installed Nova's (python3 -c 'import nova.virt'), normally
# /usr/lib/python3/dist-packages/nova/virt; the driver lands in NOVA_VIRT_DIR/compute_agent/.
# Then nova.conf: [DEFAULT] compute_driver = compute_agent.ComputeAgentDriver (see README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-/usr/bin/python3}
target=${1:-$("$python" -c 'import os, nova.virt; print(os.path.dirname(nova.virt.__file__))')}
[[ -d $target ]] || { echo "no nova.virt package at $target (apt-get install python3-nova)" >&2; exit 1; }
staged=$(PYTHON=$python bash "$here/build-stubs.sh" "$(mktemp -d)" | tail -n 1)
rm -rf "$target/compute_agent"
cp -R "$staged" "$target/compute_agent"
rm -rf "$(dirname "$staged")"
find "$target/compute_agent" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
"$python" -m compileall -q "$target/compute_agent" >/dev/null || true
echo "$target/compute_agent"
