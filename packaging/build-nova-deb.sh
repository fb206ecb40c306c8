#!/usr/bin/env bash
# Builds python3-nova-compute-agent, the Nova compute driver for compute-agent, and prints its path
# as the last line:  packaging/build-nova-deb.sh -> packaging/build/python3-nova-compute-agent_<Version>_all.deb
# The driver installs as Nova's nova/virt/compute_agent/ (Nova Zed loads only nova.virt.<driver>);
# its gRPC stubs are generated from proto/ here, with Debian's python3-grpc-tools, so they match
# Debian 12's python3-grpcio and python3-protobuf. <Version> is Directory.Build.props' <Version>,
# as for the agent's own .deb (packaging/build-deb.sh). Writes under packaging/build/ only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$here/build
stage=$build/nova-root
package=python3-nova-compute-agent
pydir=usr/lib/python3/dist-packages/nova/virt
docdir=usr/share/doc/$package

log() { printf '[deb] %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

for tool in dpkg-deb /usr/bin/python3; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done

# shellcheck source=packaging/package-version.sh
source "$here/package-version.sh"

log "staging tree $stage"
rm -rf "$stage"
install -d -m 0755 "$stage/DEBIAN" "$stage/$pydir" "$stage/$docdir"
PYTHON=/usr/bin/python3 bash "$repo/src/nova-compute-agent/build-stubs.sh" "$build/nova-stubs" >/dev/null
cp -R "$build/nova-stubs/compute_agent" "$stage/$pydir/compute_agent"
rm -rf "$build/nova-stubs"
find "$stage/$pydir" -name __pycache__ -prune -exec rm -rf {} +
find "$stage/$pydir" -type d -exec chmod 0755 {} +
find "$stage/$pydir" -type f -exec chmod 0644 {} +

install -m 0644 "$here/debian/copyright" "$stage/$docdir/copyright"
gzip -9n <"$here/debian/changelog" >"$stage/$docdir/changelog.gz"
gzip -9n <"$repo/src/nova-compute-agent/README.md" >"$stage/$docdir/README.md.gz"
chmod 0644 "$stage/$docdir/changelog.gz" "$stage/$docdir/README.md.gz"
for script in postinst prerm; do
  install -m 0755 "$here/nova-compute-agent/$script" "$stage/DEBIAN/$script"
done

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: $package
Source: compute-agent
Version: $version
Architecture: all
Maintainer: Seed 1867e839 maintainers <maintainers@users.noreply.b-seed-1867e839.example>
Installed-Size: $installed_size
Depends: python3:any, python3-nova, python3-grpcio, python3-protobuf
Recommends: compute-agent (= $version)
Section: python
Priority: optional
Description: Nova compute driver for compute-agent
 python3-nova-compute-agent lets an unmodified nova-compute use the local
 compute-agent as its hypervisor: nova.conf says
 compute_driver = compute_agent.ComputeAgentDriver and [compute_agent]
 socket_path names the agent's gRPC Unix socket.
 .
 Every Nova driver call becomes the agent's RPC followed by WaitInstance,
 agent faults become the Nova exceptions the compute manager expects, and
 the agent's instance events reach Nova as lifecycle events at once.
CONTROL

(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"

deb=$build/${package}_${version}_all.deb
dpkg-deb --root-owner-group --build "$stage" "$deb" >&2
log "$(du -h "$deb" | cut -f1) $deb"
echo "$deb"
