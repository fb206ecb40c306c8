"""One server through every seed command, driven by the `openstack` CLI against a real Nova whose
nova-compute uses compute-agent (tests/nova/stack.sh start agent), on a real QEMU guest.

Each step is asserted by Nova (status, OS-EXT-STS:vm_state, task_state, power_state) and by
libvirt (virsh on the domain whose UUID is the server's). The tests run in file order on one
server (module fixture); a step that fails leaves the later ones to fail on their own asserts.
"""
import hashlib
import os
import re
import subprocess
import time
import uuid as uuidlib

import pytest
import websocket

from stack_cli import STACK, CliError, console_log, domain_info, domain_state, osc, server, virsh, wait_server

READY = STACK["GUEST_READY_LINE"]
HOST = os.environ.get("NOVA_E2E_HOST", STACK["STACK_AGENT_HOST"])
INSTANCES = STACK["STACK_AGENT_INSTANCES"] if HOST == STACK["STACK_AGENT_HOST"] else STACK["STACK_LIBVIRT_INSTANCES"]
# Nova's power_state codes (nova.compute.power_state), as the CLI's JSON shows them
RUNNING, PAUSED, SHUTDOWN, SUSPENDED = "1", "3", "4", "7"
# A suspended (managed-saved) guest: compute-agent reports Nova's SUSPENDED; Nova's libvirt driver
# reports SHUTDOWN, since libvirt shows the domain shut off.
SUSPENDED_POWER = SUSPENDED if HOST == STACK["STACK_AGENT_HOST"] else SHUTDOWN


def expect(uuid, status, vm_state, power_state, domain, timeout=300):
    """Waits for Nova's STATUS (no task), then asserts all four Nova fields and libvirt's state."""
    s = wait_server(uuid, status, timeout=timeout)
    assert (s["status"], s["vm_state"], s["task_state"], s["power_state"]) == (status, vm_state, None, power_state), s
    assert domain_state(uuid) == domain, f"libvirt shows {domain_state(uuid)!r}, Nova {s}"
    return s


def wait_console(uuid, predicate, what, timeout=180):
    end = time.monotonic() + timeout
    text = ""
    while True:
        try:
            text = console_log(uuid)
        except CliError as e:
            # Nova answers 500 when nova-compute's reply is late (a loaded host): ask again.
            text = f"(openstack console log show failed: {e})"
        if predicate(text):
            return text
        if time.monotonic() > end:
            raise AssertionError(f"console of {uuid} did not show {what} within {timeout} s; its end:\n{text[-2000:]}")
        time.sleep(1)


def current_console(uuid):
    return wait_console(uuid, lambda t: not t.startswith("(openstack console log show failed"), "its console log")


def booted_again(uuid, before):
    """Waits until the console shows one more ready line than BEFORE (a fresh boot of the guest)."""
    n = before.count(READY)
    return wait_console(uuid, lambda t: t.count(READY) > n or (len(t) < len(before) and READY in t), "a new ready line")


@pytest.fixture(scope="module")
def only_this_compute():
    """With the benchmark's second compute up, resize could be scheduled onto it: disable it meanwhile."""
    others = [h for h in STACK["STACK_COMPUTE_HOSTS"].split() if h != HOST]
    for h in others:
        osc("compute", "service", "set", "--disable", h, "nova-compute")
    yield
    for h in others:
        osc("compute", "service", "set", "--enable", h, "nova-compute", check=False)


@pytest.fixture(scope="module")
def uuid(only_this_compute):
    name = f"e2e-{uuidlib.uuid4().hex[:8]}"
    args = ["server", "create", "--flavor", STACK["STACK_FLAVOR"], "--image", STACK["STACK_IMAGE_ID"],
            "--nic", "none", "--wait", name]
    if HOST:
        args[2:2] = ["--availability-zone", f"nova:{HOST}"]
    # On ERROR the CLI prints "Error creating server" and exits 0: wait_server names Nova's fault.
    osc(*args, timeout=600)
    created = osc("server", "show", name, "-f", "json")
    wait_server(created["id"], "ACTIVE", timeout=60)
    yield created["id"]
    # Whatever happened, leave no server behind.
    osc("server", "delete", "--force", created["id"], check=False)


def test_create_reaches_active_with_a_booted_guest(uuid):
    s = expect(uuid, "ACTIVE", "active", RUNNING, "running")
    assert s["host"] == HOST
    wait_console(uuid, lambda t: READY in t, repr(READY))


def serial_console(uuid):
    """The server's serial console as a browser opens it: a websocket through nova-serialproxy."""
    url = osc("console", "url", "show", "--serial", "-f", "json", uuid)["url"]
    assert url.startswith("ws://127.0.0.1:6083/?token="), url
    # nova-serialproxy speaks the "binary" subprotocol (as Horizon's serial console does).
    return websocket.create_connection(url, subprotocols=["binary"], timeout=5)


def console_reads(ws, until, what, send=None, seconds=60):
    """Reads ws until the bytes match UNTIL (sending SEND every 10 s); what it read."""
    said = b""
    end = time.monotonic() + seconds
    sent = 0.0
    while not re.search(until, said):
        assert time.monotonic() < end, f"the serial console did not show {what} within {seconds} s; it said {said[-2000:]!r}"
        if send is not None and time.monotonic() - sent > 10:
            ws.send_binary(send)
            sent = time.monotonic()
        try:
            data = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except websocket.WebSocketConnectionClosedException:
            data = ""
        if data == "":  # websocket-client's word for the proxy's close
            assert re.search(until, said), f"the serial console closed before {what}; it said {said[-2000:]!r}"
        said += data.encode() if isinstance(data, str) else data
    return said


# The guest's shell is silent (no prompt); a command lost to its respawn is sent again.
SIX_TIMES_SEVEN = dict(until=rb"(^|\n)42\r?\n", what="the shell's 42", send=b"echo $((6*7))\r")


def test_serial_console_is_the_guests_shell_and_a_second_session_takes_it_over(uuid):
    if HOST != STACK["STACK_AGENT_HOST"]:
        pytest.skip("[serial_console] is enabled on the agent's nova-compute only (stack.sh)")
    first = serial_console(uuid)
    try:
        console_reads(first, **SIX_TIMES_SEVEN)
        # A second session (a second URL, the same port Nova's proxy checks) takes the console
        # over: the first one reads why, then its websocket closes.
        second = serial_console(uuid)
        try:
            console_reads(first, rb"\[compute-agent\] another console session took the console", "the takeover")
            console_reads(second, **SIX_TIMES_SEVEN)
        finally:
            second.close()
    finally:
        first.close()
    expect(uuid, "ACTIVE", "active", RUNNING, "running")


def test_pause(uuid):
    osc("server", "pause", uuid)
    expect(uuid, "PAUSED", "paused", PAUSED, "paused")


def test_pause_of_a_paused_server_is_refused_with_409_and_changes_nothing(uuid):
    with pytest.raises(CliError) as refused:
        osc("server", "pause", uuid)
    # The CLI (openstacksdk) says "ConflictException: 409: Client Error ... Cannot 'pause' instance ..."
    assert re.search(r"\b409\b", refused.value.stderr) and "Cannot 'pause'" in refused.value.stderr, refused.value.stderr
    assert server(uuid)["task_state"] is None
    expect(uuid, "PAUSED", "paused", PAUSED, "paused", timeout=5)


def test_unpause(uuid):
    osc("server", "unpause", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")


def test_suspend(uuid):
    osc("server", "suspend", uuid)
    expect(uuid, "SUSPENDED", "suspended", SUSPENDED_POWER, "shut off")
    assert domain_info(uuid).get("Managed save") == "yes", "a suspended guest's memory is kept in a managed save"


def test_resume(uuid):
    osc("server", "resume", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")


def test_stop(uuid):
    osc("server", "stop", uuid)
    expect(uuid, "SHUTOFF", "stopped", SHUTDOWN, "shut off")


def test_start_boots_the_guest_again(uuid):
    before = current_console(uuid)
    osc("server", "start", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")
    booted_again(uuid, before)


def test_soft_reboot(uuid):
    before = current_console(uuid)
    osc("server", "reboot", "--soft", "--wait", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")
    booted_again(uuid, before)


def test_hard_reboot(uuid):
    before = current_console(uuid)
    osc("server", "reboot", "--hard", "--wait", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")
    booted_again(uuid, before)


def test_rescue(uuid):
    osc("server", "rescue", uuid)
    expect(uuid, "RESCUE", "rescued", RUNNING, "running")
    # The rescue guest boots from the rescue image with the server's disk attached second.
    disks = virsh("domblklist", uuid)
    assert len([l for l in disks.splitlines() if l.split() and l.split()[1] != "-"]) >= 2, disks


def test_unrescue(uuid):
    osc("server", "unrescue", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")
    wait_console(uuid, lambda t: READY in t, repr(READY))


def memory_mib(uuid):
    return int(domain_info(uuid)["Max memory"].split()[0]) // 1024


def test_resize_and_revert(uuid):
    osc("server", "resize", "--flavor", STACK["STACK_FLAVOR_BIG"], "--wait", uuid, timeout=600)
    s = expect(uuid, "VERIFY_RESIZE", "resized", RUNNING, "running")
    assert s["flavor"] == STACK["STACK_FLAVOR_BIG"], s
    assert memory_mib(uuid) == 384
    osc("server", "resize", "revert", uuid)
    s = expect(uuid, "ACTIVE", "active", RUNNING, "running")
    assert s["flavor"] == STACK["STACK_FLAVOR"], s
    assert memory_mib(uuid) == 256


def test_resize_and_confirm(uuid):
    # After the revert the server is small again: a resize that only grows (a disk never shrinks).
    osc("server", "resize", "--flavor", STACK["STACK_FLAVOR_BIG"], "--wait", uuid, timeout=600)
    s = expect(uuid, "VERIFY_RESIZE", "resized", RUNNING, "running")
    assert s["flavor"] == STACK["STACK_FLAVOR_BIG"], s
    assert memory_mib(uuid) == 384
    osc("server", "resize", "confirm", uuid)
    s = expect(uuid, "ACTIVE", "active", RUNNING, "running")
    assert s["flavor"] == STACK["STACK_FLAVOR_BIG"], s
    assert memory_mib(uuid) == 384


def test_rebuild(uuid):
    before = current_console(uuid)
    osc("server", "rebuild", "--image", STACK["STACK_IMAGE_ID"], "--wait", uuid, timeout=600)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")
    booted_again(uuid, before)


def test_set_password_reaches_the_guest(uuid):
    password = "e2e-" + uuidlib.uuid4().hex[:12]
    wait_console(uuid, lambda t: READY in t, repr(READY))
    osc("server", "set", "--password", password, uuid)
    digest = hashlib.sha256(password.encode()).hexdigest()
    wait_console(uuid, lambda t: digest in t, f"the password line with {digest}", timeout=60)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")


def test_snapshot(uuid):
    name = f"e2e-snap-{uuidlib.uuid4().hex[:8]}"
    image = osc("server", "image", "create", "--name", name, "--wait", "-f", "json", uuid, timeout=600)
    try:
        shown = osc("image", "show", image["id"], "-f", "json")
        assert shown["status"] == "active", shown
        assert int(shown["size"]) > 0, shown
        expect(uuid, "ACTIVE", "active", RUNNING, "running")
    finally:
        osc("image", "delete", image["id"], check=False)


def test_destroy_behind_novas_back_shows_shutoff_within_2_s(uuid):
    expect(uuid, "ACTIVE", "active", RUNNING, "running")
    virsh("destroy", uuid)
    end = time.monotonic() + 2
    seen = []
    while True:
        s = server(uuid)
        seen.append(s)
        if s["status"] == "SHUTOFF" and s["power_state"] == SHUTDOWN:
            break
        assert time.monotonic() < end, f"Nova did not show SHUTOFF within 2 s of virsh destroy: {seen[-1]}"
    expect(uuid, "SHUTOFF", "stopped", SHUTDOWN, "shut off")
    osc("server", "start", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")


def test_soft_delete(uuid):
    osc("server", "delete", uuid)
    expect(uuid, "SOFT_DELETED", "soft-delete", SHUTDOWN, "shut off")


def test_restore(uuid):
    osc("server", "restore", uuid)
    expect(uuid, "ACTIVE", "active", RUNNING, "running")


def test_delete_leaves_no_domain_and_no_file(uuid):
    osc("server", "delete", "--force", "--wait", uuid, timeout=300)
    with pytest.raises(CliError):
        osc("server", "show", uuid)
    assert domain_state(uuid) is None
    leftovers = subprocess.run(["find", INSTANCES, "-name", f"*{uuid}*"], capture_output=True, text=True).stdout
    assert leftovers == "", leftovers
