#!/usr/bin/env bash
# Builds the compute-agent .deb from this repository and prints its path as the last line.
#   packaging/build-deb.sh               -> packaging/build/compute-agent_<Version>_amd64.deb
#   packaging/build-deb.sh --no-publish  repackages the last publish (packaging/build/artifacts)
# <Version> is Directory.Build.props' <Version>; packaging/debian/changelog must start with it.
# The agent and compute-agent-cli are published self-contained (the .NET runtime inside): Debian
# 12 has no .NET runtime package. Both go into one folder and share that runtime. Needs the .NET SDK, dpkg-dev (dpkg-shlibdeps) and network access to NuGet only for a
# restore that is not cached yet. Everything is written under packaging/build/ (git-ignored).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$here/build
artifacts=$build/artifacts
publish=$artifacts/publish/ComputeAgent.Host/release_linux-x64
cli_publish=$artifacts/publish/ComputeAgent.Cli/release_linux-x64
stage=$build/root
package=compute-agent
libdir=usr/lib/$package
docdir=usr/share/doc/$package

log() { printf '[deb] %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

publish_it=1
case ${1:-} in
  --no-publish) publish_it=0 ;;
  "") ;;
  *) die "usage: $0 [--no-publish]" ;;
esac

for tool in dotnet dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || die "$tool is missing (dpkg-shlibdeps: apt-get install dpkg-dev; strip: binutils)"
done

# shellcheck source=packaging/package-version.sh
source "$here/package-version.sh"

if ((publish_it)); then
  log "dotnet publish (self-contained, linux-x64) -> $publish"
  rm -rf "$publish" "$cli_publish"
  for project in ComputeAgent.Host ComputeAgent.Cli; do
    dotnet publish "$repo/src/$project" -c Release -r linux-x64 --self-contained \
      --artifacts-path "$artifacts" -nologo -v quiet -warnaserror >&2
  done
fi
[[ -x $publish/compute-agent ]] || die "no published agent in $publish (run without --no-publish)"
[[ -x $cli_publish/compute-agent-cli ]] || die "no published compute-agent-cli in $cli_publish (run without --no-publish)"

log "staging tree $stage"
rm -rf "$stage"
install -d -m 0755 "$stage/DEBIAN" "$stage/$libdir" "$stage/usr/bin" "$stage/lib/systemd/system" \
  "$stage/etc/$package" "$stage/$docdir" "$stage/usr/share/man/man8" "$stage/usr/share/man/man5" \
  "$stage/usr/share/man/man1" "$stage/usr/share/bash-completion/completions"

cp -R "$publish/." "$stage/$libdir/"
# The CLI's publish has the same runtime (same SDK, same RID) and the same library versions
# (central package versions): only its own files are new. A file both have must be the same
# file, or one program would run with the other's copy.
while IFS= read -r -d '' file; do
  if [[ -e $stage/$libdir/$file ]]; then
    cmp -s "$cli_publish/$file" "$stage/$libdir/$file" || die "the agent and compute-agent-cli publish different $file"
  else
    install -D -m 0644 "$cli_publish/$file" "$stage/$libdir/$file"
  fi
done < <(cd "$cli_publish" && find . -type f -printf '%P\0')
# LTTng tracing provider: links liblttng-ust.so.0, which Debian 12 does not ship (it has .so.1);
# the runtime only loads it when present, so leaving it out only leaves out LTTng tracing.
rm -f "$stage/$libdir/libcoreclrtraceptprovider.so"
# Debian modes: data and shared libraries 0644, directories and programs 0755.
find "$stage/$libdir" -type d -exec chmod 0755 {} +
find "$stage/$libdir" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/$libdir/compute-agent" "$stage/$libdir/compute-agent-cli" "$stage/$libdir/createdump"
# SQLitePCLRaw ships e_sqlite3 with its symbol table; Microsoft's libraries come stripped.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/$libdir/libe_sqlite3.so"
# The apphost finds the runtime next to its real path, so a symlink is enough.
ln -s "../lib/$package/compute-agent" "$stage/usr/bin/compute-agent"
ln -s "../lib/$package/compute-agent-cli" "$stage/usr/bin/compute-agent-cli"
# Tab completion, written by the CLI from its own command tree.
"$stage/$libdir/compute-agent-cli" completion bash >"$stage/usr/share/bash-completion/completions/compute-agent-cli"
chmod 0644 "$stage/usr/share/bash-completion/completions/compute-agent-cli"

install -m 0644 "$repo/systemd/compute-agent.service" "$stage/lib/systemd/system/"
install -m 0644 "$here/agent.json" "$stage/etc/$package/agent.json"
install -m 0644 "$here/debian/copyright" "$stage/$docdir/copyright"
install -d -m 0755 "$stage/usr/share/lintian/overrides"
install -m 0644 "$here/debian/lintian-overrides" "$stage/usr/share/lintian/overrides/$package"
# A native package (the packaging lives with the code, one version): changelog.gz.
gzip -9n <"$here/debian/changelog" >"$stage/$docdir/changelog.gz"
gzip -9n <"$here/operations.md" >"$stage/$docdir/operations.md.gz"
gzip -9n <"$here/compute-agent.8" >"$stage/usr/share/man/man8/compute-agent.8.gz"
gzip -9n <"$here/compute-agent.json.5" >"$stage/usr/share/man/man5/compute-agent.json.5.gz"
gzip -9n <"$here/compute-agent-cli.1" >"$stage/usr/share/man/man1/compute-agent-cli.1.gz"
chmod 0644 "$stage/$docdir/changelog.gz" "$stage/$docdir/operations.md.gz" \
  "$stage/usr/share/man/man8/compute-agent.8.gz" "$stage/usr/share/man/man5/compute-agent.json.5.gz" \
  "$stage/usr/share/man/man1/compute-agent-cli.1.gz"

for script in postinst prerm postrm; do
  install -m 0755 "$here/debian/$script" "$stage/DEBIAN/$script"
done
install -m 0644 "$here/debian/triggers" "$stage/DEBIAN/triggers"
echo "/etc/$package/agent.json" >"$stage/DEBIAN/conffiles"
chmod 0644 "$stage/DEBIAN/conffiles"

# Shared-library dependencies of the runtime's native parts, as dpkg-shlibdeps computes them
# (libc6, libgcc-s1, libstdc++6). It wants a debian/control to read, so give it a stub.
shlibs=$build/shlibs
rm -rf "$shlibs" && mkdir -p "$shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: amd64\n' "$package" "$package" >"$shlibs/debian/control"
mapfile -t elves < <(find "$stage/$libdir" -type f \( -name '*.so' -o -name compute-agent -o -name compute-agent-cli -o -name createdump \) | sort)
shlib_depends=$(cd "$shlibs" && dpkg-shlibdeps -O -l"$stage/$libdir" --ignore-missing-info "${elves[@]}" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[[ -n $shlib_depends ]] || die "dpkg-shlibdeps found no dependencies"

# libssl3: loaded with dlopen by System.Security.Cryptography.Native.OpenSsl for an https image
# service. libvirt0 (>= 1.2.16): the newest symbol version among the functions the agent
# P/Invokes is LIBVIRT_1.2.16 (virDomainSetUserPassword). No ICU: InvariantGlobalization.
depends="adduser, $shlib_depends, libssl3 | libssl3t64, libvirt0 (>= 1.2.16), qemu-utils"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)

cat >"$stage/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: amd64
Maintainer: Seed 1867e839 maintainers <maintainers@users.noreply.b-seed-1867e839.example>
Installed-Size: $installed_size
Depends: $depends
Recommends: libvirt-daemon-system, qemu-system-x86
Section: admin
Priority: optional
Description: per-host agent that runs libvirt/QEMU guests for a Nova-style cloud
 compute-agent is the per-host half of an OpenStack-Nova-style cloud: a daemon
 on every KVM host that turns "boot this instance of this flavor from this
 image" into a libvirt/QEMU guest, keeps each instance's vm_state, task_state
 and power_state exact, and reports every change over a gRPC API on a Unix
 socket.
 .
 It drives libvirt through its C API and runs as the unprivileged user
 compute-agent (a member of group libvirt) under a hardened systemd unit. The
 package carries its own .NET runtime (a self-contained publish), and
 compute-agent-cli, the operator's command line: list, show and follow
 instances, drive their lifecycle, read the host and a console log.
EOF

# md5sums of everything but the conffile (dpkg tracks conffiles itself), as dh_md5sums writes it.
(cd "$stage" && find . -path ./DEBIAN -prune -o -path "./etc/$package/agent.json" -prune -o -type f -printf '%P\0' |
  sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"

deb=$build/${package}_${version}_amd64.deb
dpkg-deb --root-owner-group --build "$stage" "$deb" >&2
log "$(du -h "$deb" | cut -f1) $deb"
echo "$deb"
