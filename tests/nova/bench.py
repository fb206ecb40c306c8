"""Side by side: the same flavor and image through the same Nova on two nova-compute services of
this host, one with Nova's own libvirt driver and one with compute-agent's driver.

    python3 bench.py [--rounds 5] [--hosts compute-libvirt,compute-agent]

Per round and host: one server, forced onto the host, walked through every operation; each is
timed from the API request until Nova shows the end state with no task (delete: until the server
is gone; external destroy: from `virsh destroy` until Nova shows SHUTOFF). The guest's ready line
is awaited, untimed, before every operation that needs the guest's ACPI. Prints a markdown table:
per operation the median of the rounds per host and the ratio ours / Nova's libvirt driver.

Uses the REST API in-process (keystoneauth1) rather than the CLI, so a timing is Nova's and the
driver's, not the CLI's start-up.
"""
import argparse
import statistics
import subprocess
import sys
import time
import uuid as uuidlib

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from stack_cli import CLI_ENV, STACK, VIRSH

READY = STACK["GUEST_READY_LINE"]
NOVA = "http://127.0.0.1:8774/v2.1"
OPS = ["create → ACTIVE", "pause", "unpause", "suspend", "resume", "stop", "start", "reboot", "rescue",
       "unrescue", "resize + confirm", "snapshot", "external destroy → SHUTOFF", "delete"]
POLL = 0.1
TIMEOUT = 600


class Nova:
    def __init__(self):
        auth = v3.Password(auth_url=CLI_ENV["OS_AUTH_URL"], username=CLI_ENV["OS_USERNAME"],
                           password=CLI_ENV["OS_PASSWORD"], project_name=CLI_ENV["OS_PROJECT_NAME"],
                           user_domain_name="Default", project_domain_name="Default")
        self.s = ks_session.Session(auth=auth)
        self.headers = {"X-OpenStack-Nova-API-Version": "2.90"}

    def call(self, method, path, body=None, ok=(200, 201, 202, 204)):
        r = self.s.request(NOVA + path, method, json=body, headers=self.headers, raise_exc=False)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
        return r

    def action(self, uuid, body):
        return self.call("POST", f"/servers/{uuid}/action", body)

    def show(self, uuid):
        r = self.call("GET", f"/servers/{uuid}", ok=(200, 404))
        return None if r.status_code == 404 else r.json()["server"]

    def wait(self, uuid, status, start, power=None):
        """Seconds from START until STATUS with no task (and POWER, when given)."""
        while True:
            s = self.show(uuid)
            now = time.monotonic()
            if status is None and s is None:
                return now - start
            if s is not None:
                if s["status"] == status and not s["OS-EXT-STS:task_state"] and power in (None, s["OS-EXT-STS:power_state"]):
                    return now - start
                if s["status"] == "ERROR":
                    raise RuntimeError(f"server {uuid} went to ERROR waiting for {status}: {s.get('fault')}")
            if now - start > TIMEOUT:
                raise RuntimeError(f"server {uuid} not {status} within {TIMEOUT} s: {s and (s['status'], s['OS-EXT-STS:task_state'])}")
            time.sleep(POLL)

    def console(self, uuid):
        # Nova's libvirt driver logs the serial console through virtlogd on a pty, and a shut-off
        # domain's XML has no pty path: it answers 404 "Guest does not have a console available".
        r = self.call("POST", f"/servers/{uuid}/action", {"os-getConsoleOutput": {"length": -1}}, ok=(200, 404))
        return "" if r.status_code == 404 else r.json()["output"] or ""

    def wait_ready(self, uuid, before):
        """Untimed: until the console shows one more ready line than BEFORE (the guest booted)."""
        n = before.count(READY)
        end = time.monotonic() + 180
        while time.monotonic() < end:
            text = self.console(uuid)
            if text.count(READY) > n or (len(text) < len(before) and READY in text):
                return text
            time.sleep(0.5)
        print(f"warning: {uuid}: no new ready line within 180 s", file=sys.stderr)
        return self.console(uuid)


def flavor_id(nova, name):
    return next(f["id"] for f in nova.call("GET", "/flavors").json()["flavors"] if f["name"] == name)


def one_round(nova, host, times):
    small, big = flavor_id(nova, STACK["STACK_FLAVOR"]), flavor_id(nova, STACK["STACK_FLAVOR_BIG"])

    def timed(op, body, status, power=None, uuid=None):
        start = time.monotonic()
        nova.action(uuid, body)
        times[op].append(nova.wait(uuid, status, start, power))

    start = time.monotonic()
    uuid = nova.call("POST", "/servers", {"server": {
        "name": f"bench-{host}-{uuidlib.uuid4().hex[:6]}", "imageRef": STACK["STACK_IMAGE_ID"], "flavorRef": small,
        "networks": "none", "availability_zone": f"nova:{host}"}}).json()["server"]["id"]
    try:
        times["create → ACTIVE"].append(nova.wait(uuid, "ACTIVE", start))
        log = nova.wait_ready(uuid, "")
        timed("pause", {"pause": None}, "PAUSED", uuid=uuid)
        timed("unpause", {"unpause": None}, "ACTIVE", uuid=uuid)
        timed("suspend", {"suspend": None}, "SUSPENDED", uuid=uuid)
        timed("resume", {"resume": None}, "ACTIVE", uuid=uuid)
        timed("stop", {"os-stop": None}, "SHUTOFF", uuid=uuid)
        log = nova.console(uuid)
        timed("start", {"os-start": None}, "ACTIVE", uuid=uuid)
        log = nova.wait_ready(uuid, log)
        timed("reboot", {"reboot": {"type": "SOFT"}}, "ACTIVE", uuid=uuid)
        log = nova.wait_ready(uuid, log)
        timed("rescue", {"rescue": {}}, "RESCUE", uuid=uuid)
        log = nova.console(uuid)
        timed("unrescue", {"unrescue": None}, "ACTIVE", uuid=uuid)
        log = nova.wait_ready(uuid, log)
        start = time.monotonic()
        nova.action(uuid, {"resize": {"flavorRef": big}})
        nova.wait(uuid, "VERIFY_RESIZE", start)
        nova.action(uuid, {"confirmResize": None})
        times["resize + confirm"].append(nova.wait(uuid, "ACTIVE", start))
        start = time.monotonic()
        image = nova.action(uuid, {"createImage": {"name": f"bench-snap-{uuid[:8]}"}}).json()["image_id"]
        try:
            while True:
                r = nova.s.get(f"http://127.0.0.1:9292/v2/images/{image}").json()
                if r["status"] == "active":
                    break
                if r["status"] in ("killed", "deleted") or time.monotonic() - start > TIMEOUT:
                    raise RuntimeError(f"snapshot image {image} is {r['status']}")
                time.sleep(POLL)
            times["snapshot"].append(nova.wait(uuid, "ACTIVE", start))
        finally:
            nova.s.delete(f"http://127.0.0.1:9292/v2/images/{image}", raise_exc=False)
        start = time.monotonic()
        subprocess.run([*VIRSH, "destroy", uuid], check=True, capture_output=True, timeout=60)
        times["external destroy → SHUTOFF"].append(nova.wait(uuid, "SHUTOFF", start, power=4))
    finally:
        start = time.monotonic()
        nova.action(uuid, {"forceDelete": None})
        times["delete"].append(nova.wait(uuid, None, start))


def set_service(nova, host, enabled):
    services = nova.call("GET", f"/os-services?binary=nova-compute&host={host}").json()["services"]
    for s in services:
        nova.call("PUT", f"/os-services/{s['id']}", {"status": "enabled" if enabled else "disabled"})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--hosts", default=f"{STACK['STACK_LIBVIRT_HOST']},{STACK['STACK_AGENT_HOST']}")
    a = p.parse_args()
    hosts = a.hosts.split(",")
    nova = Nova()
    results = {}
    for host in hosts:
        # One driver at a time: the other compute is disabled so resize stays on this host.
        for other in hosts:
            set_service(nova, other, other == host)
        times = {op: [] for op in OPS}
        for r in range(a.rounds):
            print(f"{host}: round {r + 1}/{a.rounds}", file=sys.stderr, flush=True)
            one_round(nova, host, times)
        results[host] = times
    for host in hosts:
        set_service(nova, host, True)

    libvirt, agent = STACK["STACK_LIBVIRT_HOST"], STACK["STACK_AGENT_HOST"]
    print(f"| operation | Nova libvirt driver (s) | compute-agent (s) | ours / libvirt |")
    print("|---|---:|---:|---:|")
    for op in OPS:
        cells = []
        for host in (libvirt, agent):
            t = results.get(host, {}).get(op)
            cells.append(statistics.median(t) if t else None)
        ratio = f"{cells[1] / cells[0]:.2f}" if None not in cells and cells[0] > 0 else "–"
        fmt = lambda v: "–" if v is None else f"{v:.2f}"
        print(f"| {op} | {fmt(cells[0])} | {fmt(cells[1])} | {ratio} |")
    print(f"\nmedian of {a.rounds} per operation; one server per round, forced onto its host; TCG guests.")


if __name__ == "__main__":
    main()
