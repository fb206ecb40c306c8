#!/usr/bin/env bash
# Build a real Debian 12 cloud image (systemd + cloud-init + openssh-server) for the config-drive
# tests, from Debian's packages only, without mounting anything:
#
#   tests/guest/build-cloud-image.sh [OUTDIR]
#
# OUTDIR defaults to ${COMPUTE_AGENT_CLOUD_IMAGE_DIR:-/var/cache/compute-agent/cloud-image}. It ends
# up holding:
#   vmlinuz, initrd.img   the image's own kernel (linux-image-cloud-amd64) and initramfs, for
#                         direct kernel boot (image properties kernel_id / ramdisk_id)
#   disk.qcow2            the root file system (ext4 on the whole disk, no partition table),
#                         made with `mkfs.ext4 -d` from the debootstrap folder
#   cloud-image.env       CLOUD_KERNEL, CLOUD_INITRD, CLOUD_DISK, CLOUD_CMDLINE (absolute paths)
#   stamp                 input hash; a rerun with the same inputs does nothing
# The last line on stdout is OUTDIR; progress goes to stderr.
#
# cloud-init is trimmed for TCG: only the ConfigDrive data source, ed25519 host keys only, and the
# module lists cut to users, SSH keys and user scripts. Needs root (debootstrap, mkfs.ext4 -d with
# owners) and the Debian mirror apt uses (or COMPUTE_AGENT_DEBIAN_MIRROR).
set -euo pipefail

export LC_ALL=C
umask 022
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="/usr/sbin:/sbin:$PATH" ;; esac

readonly SUITE=bookworm
# debootstrap does not resolve virtual packages: python3-cffi-backend provides what python3-cryptography needs.
readonly PACKAGES=python3-cffi-backend,systemd-sysv,udev,linux-image-cloud-amd64,initramfs-tools,cloud-init,openssh-server,sudo,netbase,ifupdown,isc-dhcp-client
readonly CMDLINE='root=/dev/vda rw console=ttyS0 net.ifnames=0'

log() { printf '[cloud-image] %s\n' "$*" >&2; }
die() { printf '[cloud-image] ERROR: %s\n' "$*" >&2; exit 1; }

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
OUTDIR=$(readlink -m -- "${1:-${COMPUTE_AGENT_CLOUD_IMAGE_DIR:-/var/cache/compute-agent/cloud-image}}")
[[ $OUTDIR != / ]] || die "refusing OUTDIR=/"
PARENT=$(dirname -- "$OUTDIR")
NAME=$(basename -- "$OUTDIR")

apt_mirror() { # the first Debian archive URI apt is configured with
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '$1 == "URIs:" && $2 !~ /security/ { print $2; exit }')
  if [[ -z $uri ]]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list 2>/dev/null)
  fi
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

MIRROR=${COMPUTE_AGENT_DEBIAN_MIRROR:-$(apt_mirror)}
STAMP=$({ sha256sum <"$SCRIPT_PATH"; printf '%s %s %s\n' "$SUITE" "$MIRROR" "$OUTDIR"; } | sha256sum | cut -d' ' -f1)
OUT_FILES=(vmlinuz initrd.img disk.qcow2 cloud-image.env stamp)

is_cached() {
  local f
  for f in "${OUT_FILES[@]}"; do [[ -s $OUTDIR/$f ]] || return 1; done
  [[ $(<"$OUTDIR/stamp") == "$STAMP" ]]
}

if is_cached; then
  log "up to date: $OUTDIR"
  printf '%s\n' "$OUTDIR"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "building the cloud image needs root (debootstrap)"
for tool in debootstrap:debootstrap mkfs.ext4:e2fsprogs qemu-img:qemu-utils flock:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 && continue
  log "installing ${tool#*:}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${tool#*:}" >&2
done

mkdir -p "$PARENT"
exec 9>"$PARENT/.$NAME.lock"
if ! flock -n 9; then
  log "waiting for another build of $OUTDIR"
  flock 9
fi
if is_cached; then
  log "up to date: $OUTDIR (built meanwhile)"
  printf '%s\n' "$OUTDIR"
  exit 0
fi

TMP=$(mktemp -d "$PARENT/.$NAME.build.XXXXXX")
cleanup() {
  # debootstrap mounts /proc and /sys in the target while it installs; never delete through a mount.
  local m
  awk -v r="$TMP/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while IFS= read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system -- "$TMP"
}
trap cleanup EXIT
ROOT=$TMP/root
OUT=$TMP/out
mkdir -p "$ROOT" "$OUT"

START=$SECONDS
log "debootstrap $SUITE from $MIRROR (this takes a few minutes)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >&2

log "configuring cloud-init and systemd for a fast boot under TCG"
cat >"$ROOT/etc/cloud/cloud.cfg.d/90-compute-agent-test.cfg" <<'EOF'
# compute-agent test image: the config drive is the only data source; the module lists keep what
# a login needs (default user, SSH keys) and the user's scripts, and drop what is slow under TCG.
datasource_list: [ ConfigDrive, None ]
ssh_genkeytypes: [ ed25519 ]
cloud_init_modules: [ seed_random, bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts, users_groups, ssh ]
cloud_config_modules: [ runcmd ]
cloud_final_modules: [ scripts_per_once, scripts_per_boot, scripts_per_instance, scripts_user, ssh_authkey_fingerprints, final_message ]
EOF
printf 'LABEL=cloudroot / ext4 rw,errors=remount-ro 0 1\n' >"$ROOT/etc/fstab"
printf 'cloud-image\n' >"$ROOT/etc/hostname"
printf 'auto lo\niface lo inet loopback\n' >"$ROOT/etc/network/interfaces"
: >"$ROOT/etc/machine-id"
rm -f "$ROOT"/etc/ssh/ssh_host_*_key* # cloud-init makes them per instance
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer man-db.timer systemd-timesyncd.service getty@tty1.service; do
  ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*

kernel=$(find "$ROOT/boot" -name 'vmlinuz-*' | sort -V | tail -n1)
initrd=$(find "$ROOT/boot" -name 'initrd.img-*' | sort -V | tail -n1)
[[ -f $kernel && -f $initrd ]] || die "no kernel / initrd in $ROOT/boot"
cp "$kernel" "$OUT/vmlinuz"
cp "$initrd" "$OUT/initrd.img"

size_mib=$(( $(du -sm --one-file-system "$ROOT" | cut -f1) * 13 / 10 + 256 ))
log "mkfs.ext4 -d (${size_mib} MiB)"
mkfs.ext4 -q -L cloudroot -d "$ROOT" "$TMP/disk.raw" "${size_mib}M" >&2
qemu-img convert -f raw -O qcow2 "$TMP/disk.raw" "$OUT/disk.qcow2"
rm -f "$TMP/disk.raw"

{
  echo "# Generated by tests/guest/build-cloud-image.sh; paths are absolute."
  echo "CLOUD_KERNEL=$OUTDIR/vmlinuz"
  echo "CLOUD_INITRD=$OUTDIR/initrd.img"
  echo "CLOUD_DISK=$OUTDIR/disk.qcow2"
  echo "CLOUD_CMDLINE='$CMDLINE'"
} >"$OUT/cloud-image.env"
printf '%s\n' "$STAMP" >"$OUT/stamp"
chmod 755 "$OUT"
chmod 644 "$OUT"/*

if [[ -e $OUTDIR || -L $OUTDIR ]]; then
  mv -T -- "$OUTDIR" "$TMP/old"
fi
mv -T -- "$OUT" "$OUTDIR"
log "built $OUTDIR in $((SECONDS - START)) s ($(du -sh "$OUTDIR/disk.qcow2" | cut -f1) qcow2)"
printf '%s\n' "$OUTDIR"
