#!/usr/bin/env bash
# A real single-host OpenStack (Debian 12's Zed packages) whose nova-compute drives compute-agent.
#
#   tests/nova/stack.sh start [agent|libvirt|both]   (default: agent)
#   tests/nova/stack.sh stop
#
# As root, without systemd: installs what is missing, then starts MariaDB, RabbitMQ, Keystone,
# Glance (file store), Placement, nova-api, nova-conductor, nova-scheduler, a networking stand-in
# on port 9696 (Nova Zed has no "no network" mode) and one or two nova-compute services on this
# host: host=compute-agent (compute_driver=compute_agent.ComputeAgentDriver, talking to a
# compute-agent this script builds and starts) and/or host=compute-libvirt (Nova's own libvirt
# driver, virt_type=qemu). Creates flavors ca.small / ca.big and uploads the test guest
# (tests/guest/build-guest.sh) as image ca-guest.
#
# start is idempotent: what already runs (by this script's pidfiles) is left alone, and the
# databases and Keystone records are made once (STACK_FRESH=1 makes them again). stop stops exactly
# the processes start started, never libvirtd and never a domain. Everything waits with a timeout
# and names the log to read when it gives up.
#
# After start: `. /var/tmp/nova-stack/admin-openrc` for the openstack CLI, and
# /var/tmp/nova-stack/stack.env holds the image id, flavor names, compute hosts and paths.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUN=/run/nova-stack                 # pidfiles
WORK=${NOVA_STACK_DIR:-/var/tmp/nova-stack}
LOGS=$WORK/logs
PW=stack-secret
AGENT_HOST=compute-agent
LIBVIRT_HOST=compute-libvirt
AGENT_SOCKET=$RUN/agent.sock
AGENT_INSTANCES=$WORK/agent/instances
# Stopped in this order; started in reverse.
SERVICES=(nova-serialproxy nova-compute-$AGENT_HOST nova-compute-$LIBVIRT_HOST compute-agent nova-scheduler
  nova-conductor nova-api placement-api glance-api keystone neutron-stub rabbitmq mariadb)
SERIALPROXY_PORT=6083

t0=$(date +%s)
log() { printf '[nova-stack %4ss] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
die() { printf '[nova-stack] ERROR: %s\n' "$*" >&2; exit 1; }

# A zombie (our daemons are reparented to PID 1, which may reap late) counts as stopped.
alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
running() { [[ -f $RUN/$1.pid ]] && alive "$(cat "$RUN/$1.pid")"; }

stop_one() {
  local name=$1 pid
  [[ -f $RUN/$name.pid ]] || return 0
  pid=$(cat "$RUN/$name.pid")
  if alive "$pid"; then
    log "stopping $name (pid $pid)"
    if [[ $name == rabbitmq ]]; then
      timeout 60 rabbitmqctl stop >/dev/null 2>&1 || true
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then
      log "$name (pid $pid) ignored TERM for 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$RUN/$name.pid"
}

stop_all() {
  for s in "${SERVICES[@]}"; do stop_one "$s"; done
  # epmd is started by RabbitMQ (as user rabbitmq); start recorded its pid when it was ours.
  stop_one epmd
}

# start_daemon NAME USER[:GROUP] CMD ARGS...: runs in the background, stdout/stderr to
# $LOGS/NAME.out, pid in $RUN/NAME.pid. Does nothing when NAME already runs.
start_daemon() {
  local name=$1 user=$2
  shift 2
  if running "$name"; then return 0; fi
  log "starting $name"
  start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/$name.pid" \
    --chuid "$user" --output "$LOGS/$name.out" --startas "$1" -- "${@:2}"
}

# wait_until SECONDS WHAT LOGFILE [NAME] -- CMD...: polls CMD every 0.5 s; gives up naming the log,
# and at once when the daemon NAME has died.
wait_until() {
  local seconds=$1 what=$2 logfile=$3 name=$4
  shift 5
  local end=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $name ]] && ! running "$name"; then
      die "$name exited while waiting for $what; see $logfile"
    fi
    (($(date +%s) < end)) || die "$what did not happen within $seconds s; see $logfile"
    sleep 0.5
  done
}
answers() { curl -s -o /dev/null --max-time 5 "$1"; }

install_packages() {
  local packages=(mariadb-server python3-pymysql rabbitmq-server keystone glance-api placement-api
    nova-api nova-conductor nova-scheduler nova-compute nova-compute-qemu python3-openstackclient
    python3-pytest python3-libvirt curl uwsgi-plugin-python3 dmidecode nova-consoleproxy python3-websocket)
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]} (log: $LOGS/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' maintainer scripts would start their daemons through invoke-rc.d; forbid that
  # for this install only (an existing policy-rc.d is left as it is).
  local own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  {
    apt-cache show nova-compute >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=600 update -q
    # Without recommends: they add hundreds of packages (other QEMU targets, scipy, gdal) and minutes.
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef \
      -o Dpkg::Options::=--force-confold "${missing[@]}"
  } >"$LOGS/apt.log" 2>&1 || rc=$?
  ((own_policy)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || { tail -n 20 "$LOGS/apt.log" >&2; die "apt-get install failed; see $LOGS/apt.log"; }
}

# Without udev, /dev/kvm is root:root 0600: libvirt then probes QEMU again at every call and each
# define takes about a minute. Apply udev's rule.
fix_kvm_node() {
  if [[ -c /dev/kvm ]] && [[ $(stat -c %G:%a /dev/kvm) != kvm:660 ]] && getent group kvm >/dev/null; then
    log "/dev/kvm: root:kvm 0660 (udev's rule; udev does not run here)"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
}

write_configs() {
  local db="mysql+pymysql://os:$PW@127.0.0.1"
  local auth="auth_url = http://127.0.0.1:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service"
  install -d -m 755 "$WORK/etc"
  # uWSGI with http-socket keeps connections alive badly (clients see resets): Connection: close.
  # nova-api runs one thread per process as Debian's own ini does: it is eventlet-patched, and with
  # more uWSGI threads the replies of its RPC calls (console log) wait in RabbitMQ until timeout.
  local name port user wsgi threads
  while read -r name port user wsgi threads; do
    cat >"$WORK/etc/$name-uwsgi.ini" <<EOF
[uwsgi]
plugins = python3
master = true
processes = 2
threads = $threads
enable-threads = true
lazy-apps = true
die-on-term = true
no-orphans = true
buffer-size = 65535
http-socket = 127.0.0.1:$port
uid = $user
gid = $user
chdir = /var/lib/$user
wsgi-file = $wsgi
add-header = Connection: close
EOF
  done <<EOF
keystone 5000 keystone /usr/bin/keystone-wsgi-public 2
placement-api 8778 placement /usr/bin/placement-api 2
nova-api 8774 nova /usr/bin/nova-api-wsgi 1
EOF
  put() { # put FILE GROUP: stdin to FILE, readable by GROUP only (it holds the passwords)
    cat >"$1"
    chmod 640 "$1"
    chgrp "$2" "$1"
  }
  put /etc/keystone/keystone.conf keystone <<EOF
[DEFAULT]
log_dir = /var/log/keystone
[database]
connection = $db/keystone
[token]
provider = fernet
EOF
  put /etc/glance/glance-api.conf glance <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9292
workers = 1
log_file = /var/log/glance/glance-api.log
[database]
connection = $db/glance
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
$auth
username = glance
password = $PW
[paste_deploy]
flavor = keystone
[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = /var/lib/glance/images/
EOF
  put /etc/placement/placement.conf placement <<EOF
[DEFAULT]
log_dir = /var/log/placement
[api]
auth_strategy = keystone
[placement_database]
connection = $db/placement
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
$auth
username = placement
password = $PW
EOF
  # Shared by nova-api, conductor, scheduler and both computes; each compute adds its own file.
  put /etc/nova/nova.conf nova <<EOF
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/
my_ip = 127.0.0.1
state_path = /var/lib/nova
log_dir = /var/log/nova
enabled_apis = osapi_compute
allow_resize_to_same_host = True
# soft delete / restore (Nova's reclaim runs after an hour)
reclaim_instance_interval = 3600
# the test guest answers ACPI at once; a stop that hangs should not hold a test for a minute
shutdown_timeout = 20
# no networking: nothing to heal
heal_instance_info_cache_interval = -1
[api]
auth_strategy = keystone
[api_database]
connection = $db/nova_api
[database]
connection = $db/nova
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
$auth
username = nova
password = $PW
[service_user]
send_service_user_token = true
$auth
username = nova
password = $PW
[placement]
region_name = RegionOne
$auth
username = placement
password = $PW
[glance]
region_name = RegionOne
[neutron]
region_name = RegionOne
endpoint_override = http://127.0.0.1:9696
$auth
username = nova
password = $PW
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
[vnc]
enabled = false
[scheduler]
discover_hosts_in_cells_interval = -1
workers = 1
[conductor]
workers = 1
EOF
  cat >"$WORK/etc/nova-compute-$LIBVIRT_HOST.conf" <<EOF
[DEFAULT]
host = $LIBVIRT_HOST
compute_driver = libvirt.LibvirtDriver
instances_path = /var/lib/nova/instances
[libvirt]
virt_type = qemu
cpu_mode = none
connection_uri = qemu:///system
EOF
  cat >"$WORK/etc/nova-compute-$AGENT_HOST.conf" <<EOF
[DEFAULT]
host = $AGENT_HOST
compute_driver = compute_agent.ComputeAgentDriver
instances_path = $WORK/agent/nova-instances
[compute_agent]
socket_path = $AGENT_SOCKET
# The serial console through nova-serialproxy: the driver listens on proxyclient_address.
[serial_console]
enabled = true
base_url = ws://127.0.0.1:$SERIALPROXY_PORT/
proxyclient_address = 127.0.0.1
EOF
  cat >"$WORK/etc/nova-serialproxy.conf" <<EOF
[serial_console]
serialproxy_host = 127.0.0.1
serialproxy_port = $SERIALPROXY_PORT
EOF
  # The agent reads only this file (not /etc/compute-agent/agent.json of an installed .deb).
  cat >"$WORK/etc/agent.json" <<EOF
{
  "Agent": {
    "LibvirtUri": "qemu:///system",
    "VirtType": "${VIRT_TYPE:-qemu}",
    "StateDirectory": "$WORK/agent/state",
    "InstancesDirectory": "$AGENT_INSTANCES",
    "UnixSocketPath": "$AGENT_SOCKET",
    "ImageServiceUrl": "http://127.0.0.1:9292",
    "GracefulStopTimeoutSeconds": 20,
    "ReclaimInstanceIntervalSeconds": 3600,
    "LogTarget": "console"
  }
}
EOF
}

start_mariadb_rabbitmq() {
  if ! running mariadb; then
    if mysqladmin ping >/dev/null 2>&1; then die "a MariaDB not started by this script answers; stop it first"; fi
    install -d -o mysql -g mysql /run/mysqld
    start_daemon mariadb mysql:mysql /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
      --max-connections=500 --skip-log-bin
  fi
  wait_until 60 "MariaDB answering" "$LOGS/mariadb.out" mariadb -- mysqladmin ping
  if ! running rabbitmq; then
    # Debian's wrapper su's to rabbitmq; run the real script as rabbitmq ourselves.
    start_daemon rabbitmq rabbitmq:rabbitmq /usr/bin/env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
    wait_until 120 "RabbitMQ starting" "$LOGS/rabbitmq.out and /var/log/rabbitmq/" rabbitmq -- \
      timeout 10 rabbitmqctl await_startup --timeout 5
    # epmd was started by our RabbitMQ: record it so stop stops it too.
    pgrep -u rabbitmq -x epmd | head -n 1 >"$RUN/epmd.pid" || rm -f "$RUN/epmd.pid"
  fi
}

keystone_rest() { # keystone_rest METHOD PATH: with the admin token
  curl -sf --max-time 30 -X "$1" -H "X-Auth-Token: $(openstack token issue -f value -c id)" "http://127.0.0.1:5000/v3$2"
}

# Databases, Keystone's records, cells: once per machine (marker), or again with STACK_FRESH=1.
bootstrap() {
  local marker=$WORK/bootstrapped
  if [[ -f $marker && ${STACK_FRESH:-0} != 1 ]]; then return 0; fi
  rm -f "$marker"
  log "creating databases"
  local d
  for d in keystone glance placement nova_api nova nova_cell0; do
    mysql -e "DROP DATABASE IF EXISTS $d; CREATE DATABASE $d;"
  done
  mysql -e "CREATE USER IF NOT EXISTS 'os'@'127.0.0.1' IDENTIFIED BY '$PW';
    ALTER USER 'os'@'127.0.0.1' IDENTIFIED BY '$PW'; GRANT ALL ON *.* TO 'os'@'127.0.0.1'; FLUSH PRIVILEGES;"
  rm -rf /etc/keystone/fernet-keys /etc/keystone/credential-keys
  find /var/lib/glance/images -mindepth 1 -delete 2>/dev/null || true
  rm -rf "$WORK/agent/state" "$WORK/agent/nova-instances"

  log "keystone db_sync + bootstrap (log: /var/log/keystone/)"
  su -s /bin/sh keystone -c "keystone-manage db_sync" >"$LOGS/keystone-manage.log" 2>&1 ||
    die "keystone-manage db_sync failed; see $LOGS/keystone-manage.log"
  {
    keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
    su -s /bin/sh keystone -c "keystone-manage bootstrap --bootstrap-password '$PW' \
      --bootstrap-admin-url http://127.0.0.1:5000/v3/ --bootstrap-internal-url http://127.0.0.1:5000/v3/ \
      --bootstrap-public-url http://127.0.0.1:5000/v3/ --bootstrap-region-id RegionOne"
  } >>"$LOGS/keystone-manage.log" 2>&1 || die "keystone-manage bootstrap failed; see $LOGS/keystone-manage.log"
  chown -R keystone:keystone /var/log/keystone
  start_keystone
  log "keystone: users, roles, services, endpoints"
  local project role u id
  project=$(openstack project create -f value -c id --domain default service)
  role=$(openstack role show admin -f value -c id)
  for u in glance placement nova; do
    id=$(openstack user create -f value -c id --domain default --password "$PW" "$u")
    # Debian 12's `openstack role add --project` fails in osc-lib's lookup: use the REST API.
    keystone_rest PUT "/projects/$project/users/$id/roles/$role" || die "assigning role admin to $u failed; see /var/log/keystone/"
  done
  openstack service create --name glance image >/dev/null
  openstack service create --name placement placement >/dev/null
  openstack service create --name nova compute >/dev/null
  local i
  for i in public internal admin; do
    openstack endpoint create --region RegionOne image $i http://127.0.0.1:9292 >/dev/null
    openstack endpoint create --region RegionOne placement $i http://127.0.0.1:8778 >/dev/null
    openstack endpoint create --region RegionOne compute $i http://127.0.0.1:8774/v2.1 >/dev/null
  done

  log "glance / placement / nova db sync (log: $LOGS/db-sync.log)"
  {
    su -s /bin/sh glance -c "glance-manage db_sync"
    su -s /bin/sh placement -c "placement-manage db sync"
    su -s /bin/sh nova -c "nova-manage api_db sync"
    su -s /bin/sh nova -c "nova-manage cell_v2 map_cell0"
    su -s /bin/sh nova -c "nova-manage cell_v2 create_cell --name=cell1 --verbose"
    su -s /bin/sh nova -c "nova-manage db sync"
  } >"$LOGS/db-sync.log" 2>&1 || die "a db sync failed; see $LOGS/db-sync.log"
  touch "$marker"
}

start_keystone() {
  start_daemon keystone root /usr/bin/uwsgi_python3 --ini "$WORK/etc/keystone-uwsgi.ini" \
    --logto /var/log/keystone/keystone-uwsgi.log
  wait_until 90 "Keystone answering on :5000" /var/log/keystone/ keystone -- answers http://127.0.0.1:5000/v3
}

write_openrc() {
  cat >"$WORK/admin-openrc" <<EOF
export OS_AUTH_URL=http://127.0.0.1:5000/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$PW
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
export OS_COMPUTE_API_VERSION=2.latest
EOF
  # shellcheck source=/dev/null
  . "$WORK/admin-openrc"
}

start_agent() {
  local dll=$repo/src/ComputeAgent.Host/bin/Release/net10.0/compute-agent.dll
  if ! running compute-agent; then
    # Build only when a source is newer than the build (another build may run in this tree).
    if [[ ! -f $dll ]] || [[ -n $(find "$repo/src" -path '*/ComputeAgent.*' -newer "$dll" \( -name '*.cs' -o -name '*.csproj' \) -print -quit) ]]; then
      log "building compute-agent (log: $LOGS/agent-build.log)"
      (cd "$repo" && timeout 900 dotnet build src/ComputeAgent.Host -c Release -nologo -v quiet) \
        >"$LOGS/agent-build.log" 2>&1 || die "dotnet build src/ComputeAgent.Host failed; see $LOGS/agent-build.log"
    fi
    # QEMU (libvirt-qemu) must traverse every directory down to the instances folder.
    install -d -m 755 "$WORK/agent" "$WORK/agent/state" "$AGENT_INSTANCES"
    start_daemon compute-agent root /usr/bin/env COMPUTE_AGENT_CONFIG="$WORK/etc/agent.json" \
      "$(command -v dotnet)" "$dll"
  fi
  wait_until 120 "compute-agent listening on $AGENT_SOCKET" "$LOGS/compute-agent.out" compute-agent -- \
    test -S "$AGENT_SOCKET"
}

start_compute() { # start_compute HOST
  local host=$1 name=nova-compute-$1
  # nova-compute runs as root: libvirtd authorizes non-root clients of qemu:///system through
  # polkit, which needs the D-Bus system bus (absent here).
  start_daemon "$name" root /usr/bin/nova-compute --config-file /etc/nova/nova.conf \
    --config-file "$WORK/etc/$name.conf" --log-file "$LOGS/$name.log"
}

wait_compute() { # wait_compute HOST: up, its node registered, and its VCPU / MEMORY_MB / DISK_GB in Placement
  local host=$1 name=nova-compute-$1
  wait_until 240 "nova-compute $host reporting up" "$LOGS/$name.log" "$name" -- \
    bash -c "openstack compute service list --service nova-compute --host $host -f value -c State | grep -qx up"
  wait_until 300 "nova-compute $host registering its node" "$LOGS/$name.log" "$name" -- \
    bash -c "[ \"\$(mysql -N nova -e \"select count(*) from compute_nodes where deleted=0 and host='$host'\")\" -gt 0 ]"
  # The scheduler asks Placement, not Nova's table: a server created before the node's resource
  # provider has its inventory ends in NoValidHost.
  local node
  node=$(mysql -N nova -e "select hypervisor_hostname from compute_nodes where deleted=0 and host='$host' limit 1")
  wait_until 300 "Placement holding the inventory of $node" "$LOGS/$name.log" "$name" -- \
    bash -c "[ \"\$(mysql -N placement -e \"select count(*) from inventories i join resource_providers r on r.id = i.resource_provider_id where r.name = '$node' and i.resource_class_id in (0, 1, 2)\")\" -eq 3 ]"
}

image_and_flavors() {
  local guest_dir
  guest_dir=$(bash "$repo/tests/guest/build-guest.sh" 2>"$LOGS/build-guest.log" | tail -n 1) ||
    die "tests/guest/build-guest.sh failed; see $LOGS/build-guest.log"
  # shellcheck source=/dev/null
  . "$guest_dir/guest.env"
  local image checksum
  image=$(openstack image list --name ca-guest -f value -c ID | head -n 1)
  checksum=$(md5sum <"$GUEST_DISK" | cut -d ' ' -f 1)
  # An image of an earlier guest build (a stack bootstrapped before the guest changed) is replaced.
  if [[ -n $image ]] && [[ $(openstack image show "$image" -f value -c checksum) != "$checksum" ]]; then
    log "image ca-guest ($image) is an older build of the test guest: replacing it"
    openstack image delete "$image"
    image=
  fi
  if [[ -z $image ]]; then
    log "uploading the test guest ($GUEST_DISK) as image ca-guest"
    # The test guest runs qemu-ga: say so, as an image would, so set-password reaches it.
    image=$(openstack image create --disk-format qcow2 --container-format bare --public \
      --property hw_qemu_guest_agent=yes --file "$GUEST_DISK" ca-guest -f value -c id)
  fi
  openstack flavor show ca.small >/dev/null 2>&1 || openstack flavor create --vcpus 1 --ram 256 --disk 1 ca.small >/dev/null
  openstack flavor show ca.big >/dev/null 2>&1 || openstack flavor create --vcpus 1 --ram 384 --disk 2 ca.big >/dev/null
  cat >"$WORK/stack.env" <<EOF
STACK_OPENRC=$WORK/admin-openrc
STACK_IMAGE_ID=$image
STACK_FLAVOR=ca.small
STACK_FLAVOR_BIG=ca.big
STACK_AGENT_HOST=$AGENT_HOST
STACK_LIBVIRT_HOST=$LIBVIRT_HOST
STACK_AGENT_SOCKET=$AGENT_SOCKET
STACK_AGENT_INSTANCES=$AGENT_INSTANCES
STACK_AGENT_STATE=$WORK/agent/state
STACK_LIBVIRT_INSTANCES=/var/lib/nova/instances
STACK_LOGS=$LOGS
GUEST_READY_LINE='$GUEST_READY_LINE'
EOF
}

start() {
  local computes=${1:-agent}
  case $computes in agent | libvirt | both) ;; *) die "usage: $0 start [agent|libvirt|both]" ;; esac
  [[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts system daemons)"
  install -d -m 755 "$RUN" "$WORK" "$LOGS"
  install_packages
  fix_kvm_node
  bash "$repo/tests/host/ensure-host.sh" >"$LOGS/ensure-host.log" 2>&1 ||
    die "tests/host/ensure-host.sh failed; see $LOGS/ensure-host.log"
  if [[ $computes != libvirt ]] && ! running "nova-compute-$AGENT_HOST"; then
    # This checkout's driver, into Nova's nova.virt package (what the .deb installs).
    local installer=$repo/src/nova-compute-agent/install.sh
    [[ -f $installer ]] || die "$installer does not exist: the Nova driver cannot be installed"
    log "installing the Nova driver (log: $LOGS/driver-install.log)"
    PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH timeout 600 bash "$installer" >"$LOGS/driver-install.log" 2>&1 || die "$installer failed; see $LOGS/driver-install.log"
    /usr/bin/python3 -c 'import nova.virt.compute_agent' >"$LOGS/driver-import.log" 2>&1 ||
      die "nova.virt.compute_agent does not import after $installer; see $LOGS/driver-import.log"
  fi
  write_configs
  install -d -o nova -g nova /var/lib/nova/tmp
  install -d -o glance -g glance /var/lib/glance/images
  start_mariadb_rabbitmq
  write_openrc
  bootstrap
  start_keystone
  # Run from the stack's folder: user nobody may not reach a clone under a private home (/root is 0700).
  install -m 0755 -d "$WORK" && install -m 0644 "$here/neutron-stub.py" "$WORK/neutron-stub.py"
  start_daemon neutron-stub nobody:nogroup /usr/bin/python3 "$WORK/neutron-stub.py" 9696
  start_daemon glance-api glance:glance /usr/bin/glance-api --config-file /etc/glance/glance-api.conf
  start_daemon placement-api root /usr/bin/uwsgi_python3 --ini "$WORK/etc/placement-api-uwsgi.ini" \
    --logto /var/log/placement/placement-uwsgi.log
  start_daemon nova-api root /usr/bin/uwsgi_python3 --ini "$WORK/etc/nova-api-uwsgi.ini" \
    --logto /var/log/nova/nova-api-uwsgi.log
  local s
  for s in conductor scheduler; do
    start_daemon nova-$s nova:nova /usr/bin/nova-$s --config-file /etc/nova/nova.conf \
      --log-file /var/log/nova/nova-$s.log
  done
  wait_until 60 "the networking stand-in answering on :9696" "$LOGS/neutron-stub.out" neutron-stub -- answers http://127.0.0.1:9696
  wait_until 120 "Glance answering on :9292" "/var/log/glance/glance-api.log" glance-api -- answers http://127.0.0.1:9292
  wait_until 120 "Placement answering on :8778" "/var/log/placement/" placement-api -- answers http://127.0.0.1:8778
  wait_until 180 "nova-api answering on :8774" "/var/log/nova/nova-api-uwsgi.log" nova-api -- answers http://127.0.0.1:8774
  if [[ $computes != libvirt ]]; then
    start_daemon nova-serialproxy nova:nova /usr/bin/nova-serialproxy --config-file /etc/nova/nova.conf \
      --config-file "$WORK/etc/nova-serialproxy.conf" --log-file /var/log/nova/nova-serialproxy.log
    wait_until 60 "nova-serialproxy listening on :$SERIALPROXY_PORT" /var/log/nova/nova-serialproxy.log \
      nova-serialproxy -- bash -c "exec 3<>/dev/tcp/127.0.0.1/$SERIALPROXY_PORT"
  fi

  local hosts=()
  [[ $computes == libvirt ]] || hosts+=("$AGENT_HOST")
  [[ $computes == agent ]] || hosts+=("$LIBVIRT_HOST")
  [[ $computes == libvirt ]] || start_agent
  for s in "${hosts[@]}"; do start_compute "$s"; done
  image_and_flavors
  for s in "${hosts[@]}"; do wait_compute "$s"; done
  su -s /bin/sh nova -c "nova-manage cell_v2 discover_hosts" >"$LOGS/discover-hosts.log" 2>&1 ||
    die "nova-manage cell_v2 discover_hosts failed; see $LOGS/discover-hosts.log"
  echo "STACK_COMPUTE_HOSTS='${hosts[*]}'" >>"$WORK/stack.env"
  log "stack up (computes: ${hosts[*]}); . $WORK/admin-openrc; settings in $WORK/stack.env"
}

case ${1:-} in
  start) start "${2:-agent}" ;;
  stop)
    [[ -d $RUN ]] || exit 0
    stop_all
    log "stopped"
    ;;
  *) die "usage: $0 start [agent|libvirt|both] | stop" ;;
esac
