#!/usr/bin/env bash
# Build a tiny, real test guest for compute-agent's integration tests from Debian 12 packages.
#
#   tests/guest/build-guest.sh [OUTDIR]
#
# OUTDIR defaults to ${COMPUTE_AGENT_GUEST_DIR:-/var/cache/compute-agent/test-guest}. It ends up
# holding:
#   vmlinuz      Debian's cloud kernel (linux-image-cloud-amd64's current ABI package)
#   initrd.gz    busybox-static + virtio/ACPI modules + an /init (see write_init below)
#   disk.qcow2   64M BIOS-bootable disk (MBR, one FAT partition, syslinux) holding the same
#                kernel + initrd, booted with "console=ttyS0"
#   disk-no-guest-agent.qcow2  the same, booted with "compute_agent.guest_agent=off" (an image
#                that declares a guest agent which never answers)
#   guest.env    shell-sourceable KEY=value lines (GUEST_KERNEL, GUEST_INITRD, GUEST_DISK,
#                GUEST_READY_LINE, GUEST_KERNEL_VERSION, ...), absolute paths
#   stamp        input hash; a rerun with the same inputs does nothing
# The last line on stdout is OUTDIR; progress goes to stderr.
#
# The guest prints, on ttyS0, "COMPUTE-AGENT-GUEST KERNEL <uname -r>" and then
# "COMPUTE-AGENT-GUEST READY" once acpid is listening (then, when it has a config drive, its files:
# see write_init); an ACPI power-button press (libvirt
# virDomainShutdown / `virsh shutdown`) prints "COMPUTE-AGENT-GUEST POWEROFF" and powers off.
# When the domain has a QEMU guest-agent channel (org.qemu.guest_agent.0), the guest runs Debian's
# qemu-ga on it before READY (unless booted with compute_agent.guest_agent=off); its chpasswd (a
# script: busybox has none) prints "COMPUTE-AGENT-GUEST PASSWORD <user> <sha256 of the password>"
# so a test can check that set-admin-password delivered the password byte for byte; its fsfreeze
# hook prints "COMPUTE-AGENT-GUEST FSFREEZE freeze" / "... thaw" when a quiesced snapshot freezes
# and thaws the guest's file systems through it.
# Those three lines are written with onlcr off, so they end in a bare "\n" (kernel messages on
# the same serial port end in "\r\n").
# From READY on, a shell reads commands from ttyS0, a line at a time: a silent read-eval loop in
# sh -c (no prompt, no login; respawned when it exits), so a console test can type "echo $((6*7))" and read "42" back.
# It writes nothing until a command comes, so the lines above are unchanged.
#
# Follows docs/test-guest.md (shared docs). Needs: root (only to apt-get install missing tools),
# Debian's apt mirror. Downloaded .debs are kept in ${COMPUTE_AGENT_GUEST_DEB_DIR:-OUTDIR/../debs}.
set -euo pipefail

export LC_ALL=C
umask 022
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="/usr/sbin:/sbin:$PATH" ;; esac

readonly KERNEL_META_PKG=linux-image-cloud-amd64
readonly BUSYBOX_PKG=busybox-static
readonly QGA_PKG=qemu-guest-agent
readonly PASSWORD_LINE_PREFIX='COMPUTE-AGENT-GUEST PASSWORD'
readonly FSFREEZE_LINE_PREFIX='COMPUTE-AGENT-GUEST FSFREEZE'
readonly READY_LINE='COMPUTE-AGENT-GUEST READY'
readonly KERNEL_LINE_PREFIX='COMPUTE-AGENT-GUEST KERNEL'
readonly POWEROFF_LINE='COMPUTE-AGENT-GUEST POWEROFF'
readonly SELF_POWEROFF_LINE='COMPUTE-AGENT-GUEST SELF-POWEROFF'
readonly CONFIG_DRIVE_PREFIX='COMPUTE-AGENT-GUEST CONFIG-DRIVE'
readonly KERNEL_CMDLINE='console=ttyS0'
readonly DISK_SIZE_MIB=64
# Modules to put in the initramfs and load. Their dependencies (the .ko's depends=) are added and
# loaded first automatically; this list's order only matters among independent modules.
readonly GUEST_MODULES=(
  virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  failover net_failover virtio_blk virtio_net virtio_console
  button evdev
  isofs # for config-drive tests (pulls in cdrom)
  ata_piix sr_mod # the config drive's CD-ROM on Nova's default bus for i440fx (IDE); the cloud kernel has no AHCI
)

log() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] ERROR: %s\n' "$*" >&2; exit 1; }

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
OUTDIR=${1:-${COMPUTE_AGENT_GUEST_DIR:-/var/cache/compute-agent/test-guest}}
[[ $# -le 1 ]] || die "usage: $0 [OUTDIR]"
OUTDIR=$(readlink -m -- "$OUTDIR")
[[ $OUTDIR != / ]] || die "refusing OUTDIR=/"
PARENT=$(dirname -- "$OUTDIR")
NAME=$(basename -- "$OUTDIR")
DEB_DIR=$(readlink -m -- "${COMPUTE_AGENT_GUEST_DEB_DIR:-$PARENT/debs}")
OUT_FILES=(vmlinuz initrd.gz disk.qcow2 disk-no-guest-agent.qcow2 guest.env stamp)

APT_UPDATED=0
apt_update_once() {
  [[ $APT_UPDATED -eq 0 ]] || return 1
  APT_UPDATED=1
  log "apt-get update"
  apt-get update >&2
}

# ---------------------------------------------------------------------------- input resolution
KERNEL_PKG='' KERNEL_PKG_VERSION='' KERNEL_VERSION='' BUSYBOX_VERSION='' QGA_VERSION='' STAMP=''

candidate_versions() { # PKG... -> "PKG VERSION" lines for those with a candidate (one apt-cache run)
  apt-cache policy "$@" 2>/dev/null |
    awk '/^[^[:space:]].*:$/ { pkg = substr($0, 1, length($0) - 1) }
         $1 == "Candidate:" && $2 != "(none)" { print pkg, $2 }'
}

resolve_inputs() {
  local pkgs versions
  # Exactly the ABI package the meta package depends on; never a glob (that would fetch them all).
  pkgs=$(apt-cache depends "$KERNEL_META_PKG" 2>/dev/null |
    sed -nE 's/^[[:space:]]*\|?Depends: (linux-image-[0-9.]+-[0-9]+-cloud-amd64)$/\1/p' | sort -Vu)
  [[ -n $pkgs ]] || return 1
  if [[ $(wc -l <<<"$pkgs") -gt 1 ]]; then
    log "warning: $KERNEL_META_PKG names several kernels (${pkgs//$'\n'/ }); taking the newest"
  fi
  KERNEL_PKG=$(tail -n1 <<<"$pkgs")
  KERNEL_VERSION=${KERNEL_PKG#linux-image-}
  versions=$(candidate_versions "$KERNEL_PKG" "$BUSYBOX_PKG" "$QGA_PKG")
  KERNEL_PKG_VERSION=$(awk -v p="$KERNEL_PKG" '$1 == p { print $2 }' <<<"$versions")
  BUSYBOX_VERSION=$(awk -v p="$BUSYBOX_PKG" '$1 == p { print $2 }' <<<"$versions")
  QGA_VERSION=$(awk -v p="$QGA_PKG" '$1 == p { print $2 }' <<<"$versions")
  [[ -n $KERNEL_PKG_VERSION && -n $BUSYBOX_VERSION && -n $QGA_VERSION ]] || return 1
  STAMP=$({
    sha256sum <"$SCRIPT_PATH"
    printf 'kernel %s=%s\nbusybox %s=%s\nqga %s=%s\noutdir %s\n' "$KERNEL_PKG" "$KERNEL_PKG_VERSION" \
      "$BUSYBOX_PKG" "$BUSYBOX_VERSION" "$QGA_PKG" "$QGA_VERSION" "$OUTDIR"
  } | sha256sum | cut -d' ' -f1)
}

is_cached() {
  local f
  for f in "${OUT_FILES[@]}"; do [[ -s $OUTDIR/$f ]] || return 1; done
  [[ $(<"$OUTDIR/stamp") == "$STAMP" ]]
}

cache_hit() {
  log "up to date: $OUTDIR (kernel $KERNEL_VERSION, $KERNEL_PKG $KERNEL_PKG_VERSION, busybox $BUSYBOX_VERSION)"
  printf '%s\n' "$OUTDIR"
  exit 0
}

# ---------------------------------------------------------------------------- build tools
ensure_tools() {
  # command (or file) -> Debian package; only missing ones are installed.
  local -A need=(
    [cpio]=cpio [gzip]=gzip [dpkg-deb]=dpkg [sfdisk]=fdisk [mkfs.vfat]=dosfstools
    [mcopy]=mtools [syslinux]=syslinux [/usr/lib/syslinux/mbr/mbr.bin]=syslinux-common
    [qemu-img]=qemu-utils [flock]=util-linux [sha256sum]=coreutils
  )
  local tool missing=()
  for tool in "${!need[@]}"; do
    if [[ $tool == /* ]]; then [[ -e $tool ]] && continue
    else command -v "$tool" >/dev/null 2>&1 && continue; fi
    missing+=("${need[$tool]}")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  install_pkgs "${missing[@]}"
}

ensure_cmd() { # CMD PKG: for tools only some kernels need (compressed modules)
  command -v "$1" >/dev/null 2>&1 || install_pkgs "$2"
}

install_pkgs() {
  local missing
  mapfile -t missing < <(printf '%s\n' "$@" | sort -u)
  [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); install them or rerun as root"
  log "installing build tools: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt_update_once || die "apt-get install ${missing[*]} failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

# ---------------------------------------------------------------------------- downloads
deb_path() { printf '%s/%s_%s_amd64.deb' "$DEB_DIR" "$1" "${2//:/%3a}"; }

fetch_deb() { # PKG VERSION -> cached .deb (downloaded once)
  local pkg=$1 ver=$2 dest dl
  dest=$(deb_path "$pkg" "$ver")
  if [[ -s $dest ]] && dpkg-deb --info "$dest" >/dev/null 2>&1; then
    log "using cached $(basename "$dest")"
    return 0
  fi
  mkdir -p "$DEB_DIR"
  dl=$(mktemp -d "$DEB_DIR/.download.XXXXXX")
  # apt's download sandbox user must be able to write here (avoids an "unsandboxed" warning).
  if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
  log "downloading $pkg=$ver"
  if ! (cd "$dl" && apt-get download "$pkg=$ver" >&2); then
    rm -rf "$dl"
    return 1
  fi
  local got=("$dl"/*.deb)
  [[ ${#got[@]} -eq 1 && -s ${got[0]} ]] || { rm -rf "$dl"; die "apt-get download $pkg=$ver gave: ${got[*]}"; }
  mv -f "${got[0]}" "$dest"
  rm -rf "$dl"
  # Drop other cached versions of the same package.
  local old
  for old in "$DEB_DIR/${pkg}_"*.deb; do [[ $old == "$dest" || ! -e $old ]] || rm -f "$old"; done
  if [[ $pkg == "$KERNEL_PKG" ]]; then
    for old in "$DEB_DIR"/linux-image-*-cloud-amd64_*.deb; do
      [[ $old == "$dest" || ! -e $old ]] || { log "pruning $(basename "$old")"; rm -f "$old"; }
    done
  fi
}

# ---------------------------------------------------------------------------- initramfs
ROOT='' MODSRC='' MODDST=''
declare -A MOD_FILE=() MOD_BUILTIN=() MOD_STATE=()
MOD_ORDER=()

index_modules() {
  local f n
  while IFS= read -r -d '' f; do
    n=$(basename "$f"); n=${n%%.ko*}; n=${n//-/_}
    MOD_FILE[$n]=$f
  done < <(find "$MODSRC/kernel" -type f -name '*.ko*' -print0)
  if [[ -f $MODSRC/modules.builtin ]]; then
    while IFS= read -r f; do
      n=$(basename "$f"); n=${n%%.ko*}; n=${n//-/_}
      MOD_BUILTIN[$n]=1
    done <"$MODSRC/modules.builtin"
  fi
}

ko_field() { # KO FIELD -> value of FIELD= in .modinfo (reads the whole file: no SIGPIPE)
  tr '\0' '\n' <"$1" | awk -v k="$2=" 'index($0, k) == 1 && !done { print substr($0, length(k) + 1); done = 1 }'
}

add_module() { # depth-first: dependencies before the module itself
  local m=$1 src dst deps d vermagic
  case ${MOD_STATE[$m]:-} in
    loaded) return 0 ;;
    busy) die "module dependency cycle at $m" ;;
  esac
  if [[ -z ${MOD_FILE[$m]:-} ]]; then
    if [[ -n ${MOD_BUILTIN[$m]:-} ]]; then
      log "module $m is built into the kernel"
      MOD_STATE[$m]=loaded
      return 0
    fi
    die "module $m not found in $KERNEL_PKG"
  fi
  MOD_STATE[$m]=busy
  src=${MOD_FILE[$m]}
  dst=$MODDST/$m.ko
  case $src in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) ensure_cmd xz xz-utils && xz -dc "$src" >"$dst" ;;
    *.ko.zst) ensure_cmd zstd zstd && zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) die "unknown module format: $src" ;;
  esac
  vermagic=$(ko_field "$dst" vermagic)
  [[ $vermagic == "$KERNEL_VERSION "* ]] || die "$m: vermagic '$vermagic' is not for $KERNEL_VERSION"
  deps=$(ko_field "$dst" depends)
  for d in ${deps//,/ }; do add_module "$d"; done
  MOD_STATE[$m]=loaded
  MOD_ORDER+=("$m")
}

write_init() { # /init, PID 1; must never exit
  cat >"$ROOT/init" <<EOF
#!/bin/sh
# PID 1 of the compute-agent test guest; generated by tests/guest/build-guest.sh.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The initramfs has no /dev/console node, so the kernel could not give us stdio: take it now.
exec </dev/console >/dev/console 2>&1
mkdir -p /var/log /var/run /run /tmp
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
SERIAL=/dev/ttyS0
[ -c \$SERIAL ] || SERIAL=/dev/console
say() { echo "\$*" >"\$SERIAL"; }

while read -r m; do
  [ -n "\$m" ] || continue
  insmod "/lib/modules/$KERNEL_VERSION/\$m.ko" || say "COMPUTE-AGENT-GUEST INSMOD-FAILED \$m"
done </etc/guest-modules

# acpid scans /dev/input/event0.. once at start: give devtmpfs a moment to show them.
i=0
while [ ! -e /dev/input/event0 ] && [ \$i -lt 50 ]; do usleep 100000; i=\$((i + 1)); done
# busybox acpid exits at once if it cannot open its log file (hence /var/log above).
acpid -c /etc/acpi -l /var/log/acpid.log
usleep 200000
if ! pidof acpid >/dev/null; then
  say "COMPUTE-AGENT-GUEST ACPID-FAILED (retrying in the foreground, logging to the console)"
  acpid -f -d -c /etc/acpi &
fi

# The QEMU guest agent, on the virtio-serial port libvirt names org.qemu.guest_agent.0 (no udev
# here: find the port by its name in sysfs; devtmpfs made /dev/vportNpM).
if ! grep -q 'compute_agent.guest_agent=off' /proc/cmdline; then
  i=0
  while [ \$i -lt 20 ]; do
    for port in /sys/class/virtio-ports/*; do
      if [ "\$(cat "\$port/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
        qemu-ga -d -m virtio-serial -p "/dev/\$(basename "\$port")" -f /run/qemu-ga.pid -t /run --fsfreeze-hook=/etc/qemu/fsfreeze-hook || say "COMPUTE-AGENT-GUEST QEMU-GA-FAILED"
        i=20
      fi
    done
    i=\$((i + 1))
    [ \$i -ge 20 ] || usleep 100000
  done
fi

# A shell on the serial port for console tests (AttachConsole, compute-agent-cli console): a
# read-eval loop in sh -c, which is never interactive (busybox sh reading a tty would print a
# prompt in front of the lines below, and a job-control warning), so it writes nothing until
# someone types a line (the tty echoes what is typed). One line, one command. Respawned.
# Started before READY, and init keeps the port open (fd 3) from here on: a line typed as soon as
# READY shows is held by the tty until the shell reads it (a port nobody holds open drops input,
# and its first open resets the UART's receive FIFO).
exec 3<"\$SERIAL"
(
  while :; do
    sh -c 'while IFS= read -r line; do eval "\$line"; done' <"\$SERIAL" >"\$SERIAL" 2>&1
    sleep 1
  done
) &

# Our marker lines end in a bare \n (kernel console output keeps its \r\n).
stty -F "\$SERIAL" -onlcr 2>/dev/null
say "$KERNEL_LINE_PREFIX \$(uname -r)"
say "$READY_LINE"

# A config drive (label config-2): mounted read-only, and its files printed base64-encoded between
# "CONFIG-DRIVE BEGIN <file>" / "CONFIG-DRIVE END <file>" lines, so that bytes survive the console;
# "CONFIG-DRIVE DONE" ends it. In the background: guests without a drive are ready at once.
(
  i=0
  while [ \$i -lt 100 ]; do
    dev=\$(findfs LABEL=config-2 2>/dev/null) && break
    usleep 100000; i=\$((i + 1))
  done
  [ -n "\$dev" ] || exit 0
  mkdir -p /mnt/config
  if ! mount -o ro "\$dev" /mnt/config; then say "$CONFIG_DRIVE_PREFIX MOUNT-FAILED \$dev"; exit 0; fi
  say "$CONFIG_DRIVE_PREFIX FOUND \$dev"
  for f in meta_data.json user_data network_data.json; do
    [ -f "/mnt/config/openstack/latest/\$f" ] || continue
    say "$CONFIG_DRIVE_PREFIX BEGIN \$f"
    base64 "/mnt/config/openstack/latest/\$f" >"\$SERIAL"
    say "$CONFIG_DRIVE_PREFIX END \$f"
  done
  say "$CONFIG_DRIVE_PREFIX DONE"
) &

# A test can ask the guest to power itself off from inside (as a user running poweroff would):
# boot it with compute_agent.poweroff_after=SECONDS on the kernel command line.
for arg in \$(cat /proc/cmdline); do
  case "\$arg" in
    compute_agent.poweroff_after=*) (sleep "\${arg#*=}"; say "$SELF_POWEROFF_LINE"; sync; poweroff -f) & ;;
  esac
done

while :; do sleep 3600; done
EOF
  chmod 755 "$ROOT/init"

  mkdir -p "$ROOT/etc/acpi/PWRF"
  cat >"$ROOT/etc/acpi/PWRF/00000080" <<EOF
#!/bin/sh
# ACPI power button (busybox acpid event PWRF/00000080).
SERIAL=/dev/ttyS0
[ -c \$SERIAL ] || SERIAL=/dev/console
echo "$POWEROFF_LINE" >"\$SERIAL"
sync
poweroff -f
EOF
  chmod 755 "$ROOT/etc/acpi/PWRF/00000080"

  # What qemu-ga's guest-set-user-password runs: "chpasswd [-e]" with "user:password" lines on stdin.
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
  printf 'root:*:19000:0:99999:7:::\n' >"$ROOT/etc/shadow"
  printf 'root:x:0:\n' >"$ROOT/etc/group"
  chmod 600 "$ROOT/etc/shadow"
  cat >"$ROOT/usr/sbin/chpasswd" <<EOF
#!/bin/sh
# chpasswd for the test guest (busybox has none): updates /etc/shadow, then tells the serial console.
SERIAL=/dev/ttyS0
[ -c \$SERIAL ] || SERIAL=/dev/console
crypted=0
[ "\$1" = "-e" ] && crypted=1
while IFS= read -r line; do
  user=\${line%%:*}
  pass=\${line#*:}
  grep -q "^\$user:" /etc/shadow || { echo "chpasswd: no user \$user" >&2; exit 1; }
  if [ \$crypted = 1 ]; then hash=\$pass; else hash=\$(mkpasswd -m sha512 "\$pass") || exit 1; fi
  sed -i "s|^\$user:[^:]*:|\$user:\$hash:|" /etc/shadow
  echo "$PASSWORD_LINE_PREFIX \$user \$(printf '%s' "\$pass" | sha256sum | cut -d' ' -f1)" >"\$SERIAL"
done
EOF
  chmod 755 "$ROOT/usr/sbin/chpasswd"

  # qemu-ga runs this with "freeze" before guest-fsfreeze-freeze and "thaw" after guest-fsfreeze-thaw
  # (its stdout is /dev/null): the console shows that a snapshot quiesced the guest.
  mkdir -p "$ROOT/etc/qemu"
  cat >"$ROOT/etc/qemu/fsfreeze-hook" <<EOF
#!/bin/sh
SERIAL=/dev/ttyS0
[ -c \$SERIAL ] || SERIAL=/dev/console
echo "$FSFREEZE_LINE_PREFIX \$1" >"\$SERIAL"
EOF
  chmod 755 "$ROOT/etc/qemu/fsfreeze-hook"
}

add_guest_agent() { # WORK: Debian's qemu-ga and the shared libraries it links, as on this Debian host
  local work=$1 bin lib
  bin=$work/qga/usr/sbin/qemu-ga
  [[ -x $bin ]] || die "no usr/sbin/qemu-ga in $QGA_PKG"
  cp "$bin" "$ROOT/usr/sbin/qemu-ga"
  mkdir -p "$ROOT/lib/x86_64-linux-gnu" "$ROOT/lib64"
  if ldd "$bin" | grep -q 'not found'; then
    die "qemu-ga needs libraries this host lacks: $(ldd "$bin" | grep 'not found' | tr -s ' \t\n' ' ') (install qemu-guest-agent's dependencies)"
  fi
  while read -r lib; do
    case $lib in
      */ld-linux-x86-64.so.2) cp -L "$lib" "$ROOT/lib64/ld-linux-x86-64.so.2" ;;
      /*) cp -L "$lib" "$ROOT/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
    esac
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

build_initramfs() { # WORK OUT
  local work=$1 out=$2 bb applet
  ROOT=$work/root
  MODSRC=$work/kernel/lib/modules/$KERNEL_VERSION
  MODDST=$ROOT/lib/modules/$KERNEL_VERSION
  mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,var/log,var/run,root} "$MODDST"

  bb=$work/busybox/bin/busybox
  [[ -x $bb ]] || die "no bin/busybox in $BUSYBOX_PKG"
  cp "$bb" "$ROOT/bin/busybox"
  while IFS= read -r applet; do
    [[ $applet == */* && ! -L $ROOT/$applet && ! -e $ROOT/$applet ]] || continue
    ln -s /bin/busybox "$ROOT/$applet"
  done < <("$bb" --list-full)
  [[ -L $ROOT/bin/sh ]] || ln -s /bin/busybox "$ROOT/bin/sh"

  index_modules
  local m
  for m in "${GUEST_MODULES[@]}"; do add_module "$m"; done
  printf '%s\n' "${MOD_ORDER[@]}" >"$ROOT/etc/guest-modules"
  log "module load order: ${MOD_ORDER[*]}"

  write_init
  add_guest_agent "$work"
  (cd "$ROOT" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) | gzip -n -9 >"$out/initrd.gz"
}

# ---------------------------------------------------------------------------- disk image
build_disk() { # WORK OUT NAME CMDLINE
  local work=$1 out=$2 name=$3 cmdline=$4 raw=$1/disk.raw part_kib
  part_kib=$(((DISK_SIZE_MIB - 1) * 1024))
  cat >"$work/syslinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND $cmdline
EOF
  rm -f "$raw"
  truncate -s "${DISK_SIZE_MIB}M" "$raw"
  printf 'label: dos\nstart=2048, type=e, bootable\n' | sfdisk --quiet "$raw" >&2
  mkfs.vfat -n CAGUEST --offset 2048 "$raw" "$part_kib" >/dev/null
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
  MTOOLS_SKIP_CHECK=1 mcopy -i "$raw@@1M" "$out/vmlinuz" "$out/initrd.gz" "$work/syslinux.cfg" ::
  syslinux --offset 1048576 --install "$raw"
  qemu-img convert -f raw -O qcow2 "$raw" "$out/$name.qcow2"
}

# ---------------------------------------------------------------------------- guest.env
env_line() { # KEY VALUE, single-quoted only when needed
  if [[ $2 =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then
    printf '%s=%s\n' "$1" "$2"
  else
    printf "%s='%s'\n" "$1" "${2//\'/\'\\\'\'}"
  fi
}

write_env() { # OUT
  {
    echo "# Generated by tests/guest/build-guest.sh; paths are absolute."
    env_line GUEST_KERNEL "$OUTDIR/vmlinuz"
    env_line GUEST_INITRD "$OUTDIR/initrd.gz"
    env_line GUEST_DISK "$OUTDIR/disk.qcow2"
    env_line GUEST_DISK_NO_GUEST_AGENT "$OUTDIR/disk-no-guest-agent.qcow2"
    env_line GUEST_PASSWORD_LINE_PREFIX "$PASSWORD_LINE_PREFIX"
    env_line GUEST_FSFREEZE_LINE_PREFIX "$FSFREEZE_LINE_PREFIX"
    env_line GUEST_CMDLINE "$KERNEL_CMDLINE"
    env_line GUEST_READY_LINE "$READY_LINE"
    env_line GUEST_POWEROFF_LINE "$POWEROFF_LINE"
    env_line GUEST_SELF_POWEROFF_LINE "$SELF_POWEROFF_LINE"
    env_line GUEST_CONFIG_DRIVE_PREFIX "$CONFIG_DRIVE_PREFIX"
    env_line GUEST_KERNEL_VERSION "$KERNEL_VERSION"
    env_line GUEST_KERNEL_PACKAGE "$KERNEL_PKG=$KERNEL_PKG_VERSION"
    env_line GUEST_BUSYBOX_PACKAGE "$BUSYBOX_PKG=$BUSYBOX_VERSION"
    env_line GUEST_AGENT_PACKAGE "$QGA_PKG=$QGA_VERSION"
  } >"$1/guest.env"
}

# ---------------------------------------------------------------------------- main
TMP=''
cleanup() { if [[ -n $TMP ]]; then rm -rf -- "$TMP"; fi; }
trap cleanup EXIT

if ! resolve_inputs; then
  apt_update_once || true
  resolve_inputs || die "cannot resolve $KERNEL_META_PKG / $BUSYBOX_PKG from apt (is the mirror configured?)"
fi
if is_cached; then cache_hit; fi

mkdir -p "$PARENT"
exec 9>"$PARENT/.$NAME.lock"
if ! flock -n 9; then
  log "waiting for another build of $OUTDIR"
  flock 9
fi
if is_cached; then cache_hit; fi # someone else built it meanwhile

START=$SECONDS
log "building $OUTDIR: kernel $KERNEL_VERSION ($KERNEL_PKG $KERNEL_PKG_VERSION), $BUSYBOX_PKG $BUSYBOX_VERSION"
ensure_tools
if ! { fetch_deb "$KERNEL_PKG" "$KERNEL_PKG_VERSION" && fetch_deb "$BUSYBOX_PKG" "$BUSYBOX_VERSION" && fetch_deb "$QGA_PKG" "$QGA_VERSION"; }; then
  # Stale package lists (the mirror dropped that version): refresh once and re-resolve.
  apt_update_once || die "apt-get download failed"
  resolve_inputs || die "cannot resolve packages after apt-get update"
  if is_cached; then cache_hit; fi
  fetch_deb "$KERNEL_PKG" "$KERNEL_PKG_VERSION" || die "cannot download $KERNEL_PKG=$KERNEL_PKG_VERSION"
  fetch_deb "$BUSYBOX_PKG" "$BUSYBOX_VERSION" || die "cannot download $BUSYBOX_PKG=$BUSYBOX_VERSION"
  fetch_deb "$QGA_PKG" "$QGA_VERSION" || die "cannot download $QGA_PKG=$QGA_VERSION"
fi

# Everything is built in a temp dir next to OUTDIR and renamed into place at the end, so a
# half-built guest is never visible under OUTDIR.
TMP=$(mktemp -d "$PARENT/.$NAME.build.XXXXXX")
WORK=$TMP/work
OUT=$TMP/out
mkdir -p "$WORK" "$OUT"

log "unpacking $KERNEL_PKG and $BUSYBOX_PKG"
unpack_deb() { # DEB DIR; a corrupt cached .deb is dropped so the next run downloads it again
  dpkg-deb -x "$1" "$2" || { rm -f -- "$1"; die "cannot unpack $1 (removed it; rerun to download again)"; }
}
unpack_deb "$(deb_path "$KERNEL_PKG" "$KERNEL_PKG_VERSION")" "$WORK/kernel"
unpack_deb "$(deb_path "$BUSYBOX_PKG" "$BUSYBOX_VERSION")" "$WORK/busybox"
unpack_deb "$(deb_path "$QGA_PKG" "$QGA_VERSION")" "$WORK/qga"
[[ -f $WORK/kernel/boot/vmlinuz-$KERNEL_VERSION ]] || die "no boot/vmlinuz-$KERNEL_VERSION in $KERNEL_PKG"
[[ -d $WORK/kernel/lib/modules/$KERNEL_VERSION ]] || die "no lib/modules/$KERNEL_VERSION in $KERNEL_PKG"
cp "$WORK/kernel/boot/vmlinuz-$KERNEL_VERSION" "$OUT/vmlinuz"

log "building initrd.gz"
build_initramfs "$WORK" "$OUT"
log "building disk.qcow2 and disk-no-guest-agent.qcow2 (${DISK_SIZE_MIB}M, MBR + FAT + syslinux)"
build_disk "$WORK" "$OUT" disk "$KERNEL_CMDLINE"
build_disk "$WORK" "$OUT" disk-no-guest-agent "$KERNEL_CMDLINE compute_agent.guest_agent=off"
write_env "$OUT"
rm -rf "$WORK"
printf '%s\n' "$STAMP" >"$OUT/stamp"
chmod 755 "$OUT"
chmod 644 "$OUT"/*

if [[ -e $OUTDIR || -L $OUTDIR ]]; then
  mv -T -- "$OUTDIR" "$TMP/old"
fi
if ! mv -T -- "$OUT" "$OUTDIR"; then
  [[ ! -e $TMP/old ]] || mv -T -- "$TMP/old" "$OUTDIR"
  die "cannot move the new guest into $OUTDIR"
fi
log "built $OUTDIR in $((SECONDS - START)) s ($(du -sh "$OUTDIR/disk.qcow2" | cut -f1) qcow2, $(du -sh "$OUTDIR/initrd.gz" | cut -f1) initrd)"
printf '%s\n' "$OUTDIR"
