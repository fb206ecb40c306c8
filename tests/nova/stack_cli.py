"""The stack as its users see it: the `openstack` CLI and `virsh`, for the e2e test and the benchmark.

Reads /var/tmp/nova-stack/stack.env (written by tests/nova/stack.sh start) and its admin-openrc.
"""
import json
import os
import re
import shlex
import subprocess
import time

STACK_DIR = os.environ.get("NOVA_STACK_DIR", "/var/tmp/nova-stack")
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
CLI_TIMEOUT = 180


def _read_env(path):
    values = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^(?:export\s+)?([A-Z_0-9]+)=(.*)$", line.strip())
            if m:
                parts = shlex.split(m.group(2))
                values[m.group(1)] = parts[0] if parts else ""
    return values


STACK = _read_env(os.path.join(STACK_DIR, "stack.env"))
CLI_ENV = dict(os.environ, **_read_env(STACK["STACK_OPENRC"]))


class CliError(Exception):
    def __init__(self, argv, proc):
        self.argv, self.returncode, self.stdout, self.stderr = argv, proc.returncode, proc.stdout, proc.stderr
        super().__init__(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")


def run(argv, timeout=CLI_TIMEOUT, check=True):
    proc = subprocess.run(argv, capture_output=True, text=True, env=CLI_ENV, timeout=timeout)
    if check and proc.returncode != 0:
        raise CliError(argv, proc)
    return proc


def osc(*args, timeout=CLI_TIMEOUT, check=True):
    """openstack ARGS; with -f json its parsed output, else its stdout."""
    argv = ["openstack", *args]
    proc = run(argv, timeout=timeout, check=check)
    if "-f" in args and args[args.index("-f") + 1] == "json":
        return json.loads(proc.stdout)
    return proc


def server(uuid):
    """The four fields Nova reports for a server's state, plus its flavor, host and fault."""
    s = osc("server", "show", uuid, "-f", "json")
    flavor = s.get("flavor")
    if isinstance(flavor, dict):
        flavor = flavor.get("original_name") or flavor.get("name")
    elif isinstance(flavor, str):
        flavor = flavor.split(" ")[0]
    return {
        "status": s["status"],
        "vm_state": s["OS-EXT-STS:vm_state"],
        "task_state": s["OS-EXT-STS:task_state"],
        "power_state": str(s["OS-EXT-STS:power_state"]),
        "flavor": flavor,
        "host": s.get("OS-EXT-SRV-ATTR:host"),
        "fault": s.get("fault"),
    }


def wait_server(uuid, status, timeout=300, interval=0.5):
    """Polls until Nova shows STATUS with no task; raises naming the last state (ERROR at once)."""
    end = time.monotonic() + timeout
    while True:
        s = server(uuid)
        if s["status"] == status and s["task_state"] in (None, "", "None"):
            return s
        if s["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {uuid} went to ERROR waiting for {status}: {s}; see {STACK['STACK_LOGS']}/nova-compute-*.log")
        if time.monotonic() > end:
            raise AssertionError(f"server {uuid} not {status} within {timeout} s: {s}")
        time.sleep(interval)


def domain_state(uuid):
    """libvirt's state of the domain whose UUID is the instance's: 'running', 'paused', 'shut off', ...; None when there is none."""
    proc = subprocess.run([*VIRSH, "domstate", uuid], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        if "failed to get domain" in proc.stderr or "Domain not found" in proc.stderr:
            return None
        raise AssertionError(f"virsh domstate {uuid}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def domain_info(uuid):
    proc = subprocess.run([*VIRSH, "dominfo", uuid], capture_output=True, text=True, timeout=60, check=True)
    return dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in proc.stdout.splitlines()) if k)


def virsh(*args):
    return subprocess.run([*VIRSH, *args], capture_output=True, text=True, timeout=60, check=True).stdout


def console_log(uuid):
    return osc("console", "log", "show", uuid).stdout
