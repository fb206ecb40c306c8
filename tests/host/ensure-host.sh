#!/usr/bin/env bash
# Makes this machine a libvirt/QEMU host the agent and its tests can use, on Debian 12 as root,
# with or without systemd: installs the missing Debian packages (apt-get only when something is
# missing) and starts virtlogd + libvirtd when they are not running.
set -euo pipefail

log() { printf '[host] %s\n' "$*" >&2; }

packages=(
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  qemu-system-x86 qemu-utils
  gcc make pkg-config
  libxml2-utils
  cpio syslinux syslinux-common mtools dosfstools fdisk
  procps iproute2 ovmf
  curl util-linux # the caller tests: curl speaks gRPC over the socket as another uid (setpriv)
  xorriso debootstrap e2fsprogs # config drives (xorriso), the cloud image (tests/guest/build-cloud-image.sh)
  dbus
  # the Nova driver's tests (src/nova-compute-agent/run-tests.sh): Debian's Nova, grpc and its stubs' compiler
  python3-nova python3-grpcio python3-grpc-tools python3-pytest socat
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing packages: ${missing[*]}; run as root (sudo) so they can be installed"
    exit 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v dotnet >/dev/null; then
  log "the .NET 10 SDK is not on PATH; install it (https://learn.microsoft.com/dotnet/core/install/linux-debian) and run again"
  exit 1
fi

# No udev runs here (containers, build machines), so nothing applied the rule of Debian's udev
# package (/lib/udev/rules.d/50-udev-default.rules): KERNEL=="kvm", GROUP="kvm", MODE="0660"
# (the same for vhost-net and vhost-vsock). Without it /dev/kvm stays root:root 0600, the QEMU
# user (libvirt-qemu, group kvm) cannot open it, and libvirt re-probes QEMU's capabilities at
# every lookup ("KVM was enabled when probing ... but it is not available now"): a domain define
# then takes over a minute instead of 0.05 s. Absent nodes (no KVM on this machine) are fine.
for node in /dev/kvm /dev/vhost-net /dev/vhost-vsock; do
  [[ -c $node ]] || continue
  if [[ $(stat -c '%G %a' "$node") != "kvm 660" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
      log "$node is $(stat -c '%U:%G %a' "$node"), not group kvm mode 0660 as udev would set; run as root to fix it"
      exit 1
    fi
    chgrp kvm "$node"
    chmod 0660 "$node"
    log "$node: group kvm, mode 0660 (what udev's rule would have set)"
  fi
done

if virsh -c qemu:///system version >/dev/null 2>&1; then
  log "libvirtd answers on qemu:///system"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "libvirtd is not running and only root can start it here"
  exit 1
fi

# No systemd on build machines and CI: start the daemons the way their units would.
pgrep -x virtlogd >/dev/null || /usr/sbin/virtlogd -d
pgrep -x libvirtd >/dev/null || /usr/sbin/libvirtd -d
for _ in $(seq 1 60); do
  if virsh -c qemu:///system version >/dev/null 2>&1; then
    log "started virtlogd + libvirtd; qemu:///system answers"
    exit 0
  fi
  sleep 0.5
done
log "libvirtd did not answer on qemu:///system within 30 s"
exit 1
