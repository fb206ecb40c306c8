#!/usr/bin/env bash
# The .deb install test, as root on a machine without systemd (CI): install the package, start
# the installed agent the way its unit would, remove and purge it. One phase per call, so that
# tests/ComputeAgent.Install.Tests (which runs them in this order and calls the agent over gRPC
# between "start" and "stop") reports each step in the test totals:
#   install [DEB]  build the .deb (packaging/build-deb.sh) unless DEB or $COMPUTE_AGENT_DEB names
#                  one; dpkg -i; check files, user, group, directories, unit; rerun the postinst
#   libvirt        can user compute-agent open qemu:///system? exit 3 (skip) when polkit is not
#                  reachable (no system D-Bus without systemd); the reason is kept for "start"
#   start          start /usr/bin/compute-agent as the unit does (its User=, capabilities,
#                  environment, RuntimeDirectory=) in the background; wait for the socket
#   cli            compute-agent-cli (installed) against the started agent on the unit's socket
#   stop           SIGTERM, as systemctl stop does
#   upgrade        edit the conffile, plant a guest disk, install the same .deb again
#   purge          dpkg -r and dpkg -P; guest disks and the user stay
#   cleanup        undo whatever is left (always safe to run)
# Each check prints PASS, FAIL or SKIP; a phase exits 1 when one of its checks failed. A SKIP line
# is a check that did not run: the test reports its step as skipped, with those lines as reason.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
state=${COMPUTE_AGENT_INSTALL_STATE:-/var/tmp/compute-agent-install-test}
package=compute-agent
unit=/lib/systemd/system/compute-agent.service
planted=/var/lib/compute-agent/instances/00000000-0000-4000-8000-1a57a11e5700/disk.qcow2

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() {
  printf 'FAIL  %s\n' "$*"
  failures=$((failures + 1))
}
skip() { printf 'SKIP  %s\n' "$*"; }
# The libvirt phase's skip, which the start phase repeats as the reason it falls back to test:///default.
libvirt_skip() {
  printf '%s\n' "$*" >"$state/libvirt-skip"
  skip "$*"
  exit 3
}
# check DESCRIPTION COMMAND...: PASS when the command succeeds.
check() {
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
done_phase() {
  if ((failures)); then
    printf '%s: %d check(s) failed\n' "$phase" "$failures"
    exit 1
  fi
  printf '%s: every check passed\n' "$phase"
}
die() {
  printf 'FAIL  %s\n' "$*"
  exit 1
}

installed() { [[ $(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) == "install ok installed" ]]; }
known() { dpkg-query -W -f='${Status}' "$package" >/dev/null 2>&1 && [[ $(dpkg-query -W -f='${Status}' "$package") != *not-installed* ]]; }
# The value of KEY= in the installed unit (the last one wins, as in systemd).
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
mode_owner() { stat -c '%a %U:%G' "$1"; }
agent_pid() { cat "$state/agent.pid" 2>/dev/null || true; }
alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

phase=${1:-}
[[ -n $phase ]] || die "usage: $0 install [DEB] | libvirt | start | cli | stop | upgrade | purge | cleanup"
[[ $(id -u) -eq 0 ]] || die "the install test installs a package: run it as root"
mkdir -p "$state"
chmod 0755 "$state"

case $phase in
install)
  if known && [[ ! -e $state/installed-by-test ]]; then
    die "$package is already on this machine and was not installed by this test; it would be purged: dpkg -P $package first"
  fi
  if [[ ! -e $state/before ]]; then
    {
      if getent passwd "$package" >/dev/null; then echo user-existed; fi
      if [[ -e /var/lib/compute-agent ]]; then echo state-existed; fi
    } >"$state/before"
  fi
  deb=${2:-${COMPUTE_AGENT_DEB:-}}
  if [[ -z $deb ]]; then
    # What packaging/build-deb.sh needs beyond the .NET SDK, installed only when missing.
    missing=()
    command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
    command -v strip >/dev/null || missing+=(binutils)
    if ((${#missing[@]})); then
      echo "installing ${missing[*]} for packaging/build-deb.sh"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    echo "building the .deb (packaging/build-deb.sh)"
    deb=$(bash "$repo/packaging/build-deb.sh" | tail -n 1)
  fi
  [[ -f $deb ]] || die "no .deb at '$deb'"
  echo "$deb" >"$state/deb"
  touch "$state/installed-by-test"
  if dpkg -i "$deb"; then pass "dpkg -i $(basename "$deb")"; else die "dpkg -i $deb failed"; fi

  check "dpkg says: install ok installed" installed
  check "/usr/lib/compute-agent/compute-agent is executable" test -x /usr/lib/compute-agent/compute-agent
  check "/usr/bin/compute-agent leads to it" test "$(readlink -f /usr/bin/compute-agent)" = /usr/lib/compute-agent/compute-agent
  check "/usr/bin/compute-agent-cli leads to the CLI beside it" \
    test "$(readlink -f /usr/bin/compute-agent-cli)" = /usr/lib/compute-agent/compute-agent-cli -a -x /usr/lib/compute-agent/compute-agent-cli
  check "compute-agent-cli(1) and its bash completion are installed" \
    test -f /usr/share/man/man1/compute-agent-cli.1.gz -a -f /usr/share/bash-completion/completions/compute-agent-cli
  # The completion as bash loads it: "compute-agent-cli li<TAB>" and "... list --vm-state pa<TAB>".
  completed=$(bash -c 'source /usr/share/bash-completion/completions/compute-agent-cli
    COMP_WORDS=(compute-agent-cli li); COMP_CWORD=1; _compute_agent_cli; echo "${COMPREPLY[*]}"
    COMP_WORDS=(compute-agent-cli list --vm-state PA); COMP_CWORD=3; _compute_agent_cli; echo "${COMPREPLY[*]}"' 2>&1)
  if [[ $completed == $'list\nPAUSED' ]]; then
    pass "the installed bash completion completes commands and vm_states"
  else
    fail "the installed bash completion answered: ${completed//$'\n'/; }"
  fi
  check "the unit is at $unit" test -f "$unit"
  check "agent.json is a conffile" grep -q '/etc/compute-agent/agent.json' <(dpkg-query -W -f='${Conffiles}' "$package")
  check "copyright, changelog, operations guide and man pages are installed" \
    test -f /usr/share/doc/compute-agent/copyright -a -f /usr/share/doc/compute-agent/changelog.gz \
    -a -f /usr/share/doc/compute-agent/operations.md.gz -a -f /usr/share/man/man8/compute-agent.8.gz \
    -a -f /usr/share/man/man5/compute-agent.json.5.gz
  if command -v systemd-analyze >/dev/null; then
    # Only what it says of our unit counts: it also loads every installed unit, and other
    # packages' units (Debian's keystone.service names itself in After=) have their own warnings.
    verify=$(systemd-analyze verify "$unit" 2>&1 | grep -F "$package.service" || true)
    if [[ -z $verify ]]; then
      pass "systemd-analyze verify: clean for $package.service"
    else
      fail "systemd-analyze verify: $verify"
    fi
  else
    skip "systemd-analyze is not installed: unit not verified"
  fi
  check "the unit is enabled (multi-user.target.wants)" \
    test "$(readlink /etc/systemd/system/multi-user.target.wants/compute-agent.service)" = "$unit"

  passwd=$(getent passwd "$package" || true)
  IFS=: read -r _ _ uid _ _ home shell <<<"$passwd"
  check "user compute-agent exists" test -n "$passwd"
  check "it is a system user (uid ${uid:-?} < 1000)" test "${uid:-1000}" -lt 1000
  check "its home is /var/lib/compute-agent and its shell nologin ($home, $shell)" \
    test "$home" = /var/lib/compute-agent -a "$shell" = /usr/sbin/nologin
  check "group compute-agent exists" getent group "$package"
  if getent group libvirt >/dev/null; then
    check "compute-agent is in group libvirt" grep -qx libvirt <(id -nG "$package" | tr ' ' '\n')
  else
    skip "no group libvirt here (libvirt-daemon-system missing): membership not checked"
  fi
  check "/var/lib/compute-agent is 711 compute-agent:compute-agent" \
    test "$(mode_owner /var/lib/compute-agent)" = "711 compute-agent:compute-agent"
  check "/var/lib/compute-agent/instances is 755 compute-agent:compute-agent" \
    test "$(mode_owner /var/lib/compute-agent/instances)" = "755 compute-agent:compute-agent"
  check "/var/log/compute-agent is 750 compute-agent:compute-agent" \
    test "$(mode_owner /var/log/compute-agent)" = "750 compute-agent:compute-agent"

  if getent group libvirt >/dev/null; then
    # libvirt-daemon-system installed after compute-agent: its rules file activates our trigger.
    deluser --quiet "$package" libvirt
    dpkg-trigger --no-await /usr/share/polkit-1/rules.d/60-libvirt.rules
    dpkg --triggers-only "$package" >/dev/null
    check "the libvirt-daemon-system trigger puts compute-agent (back) in group libvirt" \
      grep -qx libvirt <(id -nG "$package" | tr ' ' '\n')
  fi

  uid_before=$uid
  check "the postinst runs a second time without error" \
    /var/lib/dpkg/info/compute-agent.postinst configure "$(dpkg-query -W -f='${Version}' "$package")"
  check "and changes nothing (same uid, same directories)" \
    test "$(id -u "$package") $(mode_owner /var/lib/compute-agent)" = "$uid_before 711 compute-agent:compute-agent"

  # The binary through the symlink, as the unit's user: a bad setting is refused with status 2.
  set +e
  refused=$(setpriv --reuid="$package" --regid="$package" --init-groups -- /usr/bin/compute-agent --Agent:VirtType=xen 2>&1)
  code=$?
  set -e
  if [[ $code -eq 2 && $refused == *"Agent:VirtType 'xen'"* ]]; then
    pass "/usr/bin/compute-agent runs as compute-agent and refuses a bad setting with status 2"
  else
    fail "/usr/bin/compute-agent --Agent:VirtType=xen: status $code: $refused"
  fi
  done_phase
  ;;

libvirt)
  rm -f "$state/libvirt-ok" "$state/libvirt-skip"
  command -v virsh >/dev/null || libvirt_skip "virsh (libvirt-clients) is not installed: qemu:///system not tried"
  set +e
  answer=$(setpriv --reuid="$package" --regid="$package" --init-groups -- virsh -c qemu:///system version 2>&1)
  code=$?
  set -e
  if ((code == 0)); then
    pass "user compute-agent opens qemu:///system (group libvirt, polkit): ${answer//$'\n'/; }"
    touch "$state/libvirt-ok"
  elif [[ $answer == *"system bus"* || $answer == *"polkit"* || $answer == *"authentication unavailable"* ]]; then
    libvirt_skip "user compute-agent cannot reach polkit here (no system D-Bus / polkitd without systemd), so libvirtd cannot admit group libvirt: ${answer//$'\n'/; }"
  else
    fail "user compute-agent cannot open qemu:///system: ${answer//$'\n'/; }"
  fi
  done_phase
  ;;

start)
  installed || die "$package is not installed (run the install phase)"
  pid=$(agent_pid)
  ! alive "$pid" || die "an agent started by this test is still running (pid $pid)"
  user=$(unit_value User)
  group=$(unit_value Group)
  exec_start=$(unit_value ExecStart)
  runtime=/run/$(unit_value RuntimeDirectory)
  # CAP_DAC_READ_SEARCH -> dac_read_search, as setpriv spells it.
  caps=$(unit_value AmbientCapabilities | tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_//p' | paste -sd, -)
  socket=$runtime/agent.sock
  # systemd creates RuntimeDirectory= owned by User= before ExecStart and removes it on stop.
  install -d -o "$user" -g "$group" -m "$(unit_value RuntimeDirectoryMode)" "$runtime"
  pass "RuntimeDirectory $runtime created as systemd would ($(mode_owner "$runtime"))"

  overrides=()
  if [[ -e $state/libvirt-ok ]]; then
    echo "libvirt: qemu:///system as in the shipped agent.json"
  else
    # Without polkit (see the libvirt phase) the agent could not connect and would stay NOT_SERVING.
    overrides=(COMPUTE_AGENT_Agent__LibvirtUri=test:///default)
    skip "the agent runs with Agent:LibvirtUri=test:///default, not qemu:///system, because $(cat "$state/libvirt-skip" 2>/dev/null || echo "the libvirt phase did not pass")"
  fi
  # The environment systemd gives a service (plus NOTIFY_SOCKET when the caller listens on one),
  # the unit's user, supplementary groups, capabilities, NoNewPrivileges and UMask. The parent is
  # a root process named "systemd" that waits for the agent, as PID 1 does: .NET's UseSystemd()
  # sends READY=1 only when /proc/<parent>/comm says systemd.
  install -d -m 0755 "$state/bin"
  ln -sfn "$(command -v bash)" "$state/bin/systemd"
  rm -f "$state/agent.pid"
  # shellcheck disable=SC2086,SC2016 # ExecStart= is split as systemd splits it; $@ is for the inner bash
  (
    cd /
    umask "$(unit_value UMask)"
    exec "$state/bin/systemd" -c '"$@" & echo $! >"$0"; wait $!' "$state/agent.pid" \
      env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      USER="$user" LOGNAME="$user" HOME=/var/lib/compute-agent SHELL=/usr/sbin/nologin \
      RUNTIME_DIRECTORY="$runtime" STATE_DIRECTORY=/var/lib/compute-agent LOGS_DIRECTORY=/var/log/compute-agent \
      ${NOTIFY_SOCKET:+NOTIFY_SOCKET="$NOTIFY_SOCKET"} "${overrides[@]}" \
      setpriv --reuid="$user" --regid="$group" --init-groups \
      --inh-caps="-all${caps:+,+$caps}" --ambient-caps="-all${caps:+,+$caps}" --bounding-set="-all${caps:+,+$caps}" \
      --no-new-privs -- $exec_start
  ) </dev/null >"$state/agent.log" 2>&1 &
  for _ in $(seq 1 50); do
    [[ -s $state/agent.pid ]] && break
    sleep 0.1
  done
  pid=$(agent_pid)
  [[ -n $pid ]] || die "the launcher did not start the agent"
  echo "agent pid $pid, log $state/agent.log"
  for _ in $(seq 1 600); do
    [[ -S $socket ]] && break
    alive "$pid" || break
    sleep 0.1
  done
  if ! alive "$pid"; then
    cat "$state/agent.log"
    die "the agent exited before its socket appeared"
  fi
  check "socket $socket is there" test -S "$socket"
  check "the socket belongs to $user" test "$(stat -c %U "$socket")" = "$user"
  check "the agent runs as $user" test "$(stat -c %U "/proc/$pid")" = "$user"
  check "its parent is named systemd" test "$(cat "/proc/$(ps -o ppid= -p "$pid" | tr -d ' ')/comm")" = systemd
  check "with NoNewPrivs" grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status"
  check "and only the unit's capabilities (bounding set $caps)" \
    test "$(sed -n 's/^CapBnd:[[:space:]]*//p' "/proc/$pid/status")" = "$(sed -n 's/^CapAmb:[[:space:]]*//p' "/proc/$pid/status")"
  done_phase
  ;;

cli)
  installed || die "$package is not installed (run the install phase)"
  alive "$(agent_pid)" || die "no agent started by this test is running (run the start phase)"
  # No --socket: the CLI reads Agent:UnixSocketPath from the installed agent.json, as an operator's would.
  set +e
  host=$(compute-agent-cli host 2>&1)
  code=$?
  set -e
  if [[ $code -eq 0 && $host == *hostname* && $host == *libvirt* ]]; then
    pass "compute-agent-cli host answers from the unit's socket: ${host//$'\n'/; }"
  else
    fail "compute-agent-cli host: status $code: $host"
  fi
  check "compute-agent-cli health says SERVING" test "$(compute-agent-cli health 2>&1)" = SERVING
  check "compute-agent-cli list --json is an empty list" test "$(compute-agent-cli list --json 2>&1 | tr -d ' \n')" = "[]"
  # A user outside the socket's group is refused by the socket's mode: exit 3 and what to do.
  set +e
  refused=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- /usr/bin/compute-agent-cli host 2>&1)
  code=$?
  set -e
  if [[ $code -eq 3 && $refused == *"permission denied"*"SocketGroup"* ]]; then
    pass "for user nobody it exits 3 and says why: $refused"
  else
    fail "compute-agent-cli host as nobody: status $code: $refused"
  fi
  done_phase
  ;;

stop)
  pid=$(agent_pid)
  alive "$pid" || die "no agent started by this test is running"
  runtime=/run/$(unit_value RuntimeDirectory)
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    kill -KILL "$pid"
    fail "the agent did not stop within 30 s of SIGTERM (killed)"
  else
    pass "the agent stopped on SIGTERM"
  fi
  rm -f "$state/agent.pid"
  check "it removed its socket" test ! -e "$runtime/agent.sock"
  check "its database is in the StateDirectory, owned by compute-agent" \
    test "$(stat -c %U /var/lib/compute-agent/agent.db 2>/dev/null)" = compute-agent
  check "and readable by compute-agent alone (600), whatever the umask" \
    test "$(stat -c %a /var/lib/compute-agent/agent.db 2>/dev/null)" = 600
  rm -rf "$runtime" # systemd removes RuntimeDirectory= when the service stops
  done_phase
  ;;

upgrade)
  installed || die "$package is not installed (run the install phase)"
  deb=$(cat "$state/deb")
  sed -i 's/"MaxConcurrentBuilds": 10,/"MaxConcurrentBuilds": 7,/' /etc/compute-agent/agent.json
  check "agent.json edited (MaxConcurrentBuilds 7)" grep -q '"MaxConcurrentBuilds": 7,' /etc/compute-agent/agent.json
  install -d -o compute-agent -g compute-agent -m 0755 "$(dirname "$planted")"
  echo "a guest disk planted by tests/install/install-test.sh" >"$planted"
  chown compute-agent:compute-agent "$planted"
  uid_before=$(id -u "$package")
  if dpkg -i "$deb"; then pass "dpkg -i over the installed package (the upgrade path: prerm upgrade, postinst configure OLD)"; else fail "dpkg -i again failed"; fi
  check "the edited agent.json is kept" grep -q '"MaxConcurrentBuilds": 7,' /etc/compute-agent/agent.json
  check "agent.db is kept" test -f /var/lib/compute-agent/agent.db
  check "the guest disk is kept" test -f "$planted"
  check "user compute-agent keeps uid $uid_before" test "$(id -u "$package")" = "$uid_before"
  done_phase
  ;;

purge)
  known || die "$package is not on this machine"
  if dpkg -r "$package"; then pass "dpkg -r $package"; else fail "dpkg -r failed"; fi
  check "the binary is gone" test ! -e /usr/bin/compute-agent -a ! -e /usr/bin/compute-agent-cli -a ! -e /usr/lib/compute-agent
  check "the unit is gone" test ! -e "$unit"
  check "the settings stay until purge" test -f /etc/compute-agent/agent.json
  check "user compute-agent stays" getent passwd "$package"
  if dpkg -P "$package"; then pass "dpkg -P $package"; else fail "dpkg -P failed"; fi
  check "dpkg no longer knows the package" bash -c "! dpkg-query -W -f='\${Status}' $package 2>/dev/null | grep -q installed"
  check "/etc/compute-agent is gone" test ! -e /etc/compute-agent
  check "/var/log/compute-agent is gone" test ! -e /var/log/compute-agent
  check "no unit symlinks or masks are left in /etc/systemd/system" \
    test ! -e /etc/systemd/system/multi-user.target.wants/compute-agent.service -a ! -L /etc/systemd/system/compute-agent.service
  check "the guest disk under instances/ is still there" test -f "$planted"
  check "and so is agent.db, which knows that instance" test -f /var/lib/compute-agent/agent.db
  check "user compute-agent is still there" getent passwd "$package"
  check "group compute-agent is still there" getent group "$package"
  rm -f "$state/installed-by-test"
  done_phase
  ;;

cleanup)
  pid=$(agent_pid)
  if alive "$pid"; then
    kill -TERM "$pid"
    sleep 3
    ! alive "$pid" || kill -KILL "$pid"
  fi
  rm -f "$state/agent.pid"
  if [[ -e $state/installed-by-test ]] && known; then
    dpkg -P "$package" >/dev/null 2>&1 || true
  fi
  rm -f "$state/installed-by-test"
  rm -rf /run/compute-agent "$(dirname "$planted")" "${state:?}/bin"
  if ! grep -qx state-existed "$state/before" 2>/dev/null; then
    rm -rf /var/lib/compute-agent
  fi
  if ! grep -qx user-existed "$state/before" 2>/dev/null && getent passwd "$package" >/dev/null; then
    deluser --quiet "$package" >/dev/null 2>&1 || true
    ! getent group "$package" >/dev/null || delgroup --quiet "$package" >/dev/null 2>&1 || true
  fi
  rm -f "$state/before" "$state/deb" "$state/libvirt-ok" "$state/libvirt-skip"
  echo "cleanup: done"
  ;;

*)
  die "unknown phase '$phase'"
  ;;
esac
