"""get_serial_console on a real agent (test:///default): the port Nova is given and its lifetime.

The bytes of a real guest's console through Nova's serial proxy are the Nova end to end's
(tests/nova/test_e2e.py): libvirt's test driver has no console to open.
"""

import socket

import pytest

from nova import context as nova_context
from nova import exception
from nova.console import serial as nova_serial

from conftest import CONF, started_driver
from test_driver import image_meta, make_instance, spawned  # noqa: F401 (a fixture)

# A range of the tests' own, far from Nova's default (10000:20000).
PORT_RANGE = (47100, 47120)


@pytest.fixture
def serial_console():
    CONF.set_override('enabled', True, group='serial_console')
    CONF.set_override('port_range', '%d:%d' % PORT_RANGE, group='serial_console')
    CONF.set_override('proxyclient_address', '127.0.0.1', group='serial_console')
    try:
        yield
    finally:
        for name in ('enabled', 'port_range', 'proxyclient_address'):
            CONF.clear_override(name, group='serial_console')


def spawn(driver, agent):
    instance = make_instance(agent.image_id)
    driver.spawn(nova_context.get_admin_context(), instance, image_meta(agent.image_id),
                 injected_files=[], admin_password='s3cret', allocations={}, network_info=[],
                 block_device_info=None)
    return instance


def destroy(driver, instance):
    driver.destroy(nova_context.get_admin_context(), instance, [], None)


def listening(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=5).close()
        return True
    except ConnectionRefusedError:
        return False


def read_until_closed(connection, seconds=30):
    """Everything the driver sends until it closes the connection."""
    connection.settimeout(seconds)
    received = b''
    while True:
        data = connection.recv(4096)
        if not data:
            return received.decode('utf-8', 'replace')
        received += data


def allocated():
    return {port for host, port in nova_serial.ALLOCATED_PORTS if host == '127.0.0.1'}


def test_disabled_serial_console_is_console_type_unavailable(driver, spawned):  # noqa: F811
    before = allocated()
    with pytest.raises(exception.ConsoleTypeUnavailable):
        driver.get_serial_console(nova_context.get_admin_context(), spawned)
    assert allocated() == before


def test_an_instance_keeps_one_listening_port_from_the_range(driver, agent, spawned,  # noqa: F811
                                                             serial_console):
    ctx = nova_context.get_admin_context()
    first = driver.get_serial_console(ctx, spawned)
    assert first.host == '127.0.0.1'
    assert PORT_RANGE[0] <= first.port < PORT_RANGE[1]
    assert listening(first.port)
    # nova-serialproxy's validate_console_port asks again and compares the port.
    assert driver.get_serial_console(ctx, spawned).port == first.port
    other = spawn(driver, agent)
    try:
        assert driver.get_serial_console(ctx, other).port != first.port
    finally:
        destroy(driver, other)


def test_destroy_closes_the_port_and_gives_it_back(driver, agent, serial_console):
    ctx = nova_context.get_admin_context()
    instance = spawn(driver, agent)
    port = driver.get_serial_console(ctx, instance).port
    destroy(driver, instance)
    assert not listening(port)
    assert port not in allocated()
    with socket.socket() as s:  # nothing holds it any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', port))


def test_a_guest_that_is_not_running_is_console_type_unavailable_saying_so(driver, spawned,  # noqa: F811
                                                                           serial_console):
    before = allocated()
    driver.power_off(spawned)
    with pytest.raises(exception.ConsoleTypeUnavailable) as refused:
        driver.get_serial_console(nova_context.get_admin_context(), spawned)
    assert 'SHUTDOWN' in refused.value.format_message()
    assert 'start' in refused.value.format_message()
    assert allocated() == before


def test_an_unknown_instance_is_instance_not_found(driver, agent, serial_console):
    before = allocated()
    with pytest.raises(exception.InstanceNotFound):
        driver.get_serial_console(nova_context.get_admin_context(), make_instance(agent.image_id))
    assert allocated() == before


def test_a_connection_the_agent_refuses_is_closed_with_the_agents_reason(driver, spawned,  # noqa: F811
                                                                         serial_console):
    ctx = nova_context.get_admin_context()
    port = driver.get_serial_console(ctx, spawned).port
    driver.power_off(spawned)
    with socket.create_connection(('127.0.0.1', port), timeout=5) as connection:
        said = read_until_closed(connection)
    # The agent's FAILED_PRECONDITION, told to the client (who sees nothing else) before the close.
    assert said.startswith('\r\n[compute-agent] '), said
    assert spawned.uuid in said and 'not running' in said, said
    # The port outlives the session: the guest runs again and the same port serves it.
    driver.power_on(ctx, spawned, [])
    assert driver.get_serial_console(ctx, spawned).port == port
    assert listening(port)


def test_cleanup_host_closes_every_port(agent, serial_console):
    ctx = nova_context.get_admin_context()
    with started_driver(agent.socket_path) as compute_driver:
        instance = spawn(compute_driver, agent)
        try:
            port = compute_driver.get_serial_console(ctx, instance).port
            assert listening(port)
            compute_driver.cleanup_host('nova-driver-test')
            assert not listening(port)
            assert port not in allocated()
        finally:
            destroy(compute_driver, instance)
