"""ComputeAgentDriver's methods on a real agent, with Nova's own objects.

Each command is asserted by what Nova reads back (get_info's power_state,
instance_exists, list_instance_uuids), by the agent's record (vm_state), by the
lifecycle events the driver emitted, and refusals by the Nova exception raised.
"""

import base64
import json
import os
import subprocess
import time
import uuid

import eventlet
import pytest

from nova.compute import power_state
from nova.compute import task_states
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.virt import event as virtevent

from nova.virt.compute_agent import client as agent_client
from nova.virt.compute_agent.client import pb2

STARTED = virtevent.EVENT_LIFECYCLE_STARTED
STOPPED = virtevent.EVENT_LIFECYCLE_STOPPED
PAUSED = virtevent.EVENT_LIFECYCLE_PAUSED
RESUMED = virtevent.EVENT_LIFECYCLE_RESUMED
SUSPENDED = virtevent.EVENT_LIFECYCLE_SUSPENDED


def make_flavor(name='m1.tiny', vcpus=1, memory_mb=256, root_gb=1):
    return objects.Flavor(name=name, flavorid=name, vcpus=vcpus, memory_mb=memory_mb,
                          root_gb=root_gb, ephemeral_gb=0, swap=0,
                          extra_specs={'hw:cpu_policy': 'shared'})


def make_instance(image_id, flavor=None):
    instance_uuid = str(uuid.uuid4())
    return objects.Instance(
        uuid=instance_uuid, display_name='vm-' + instance_uuid[:8],
        hostname='vm-' + instance_uuid[:8], project_id='project-a', user_id='user-a',
        flavor=flavor or make_flavor(), image_ref=image_id,
        key_name='mykey', key_data='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC6 test@example',
        user_data=base64.b64encode(b'#!/bin/sh\necho hello\n').decode(),
        metadata={'role': 'test'}, config_drive='', launched_at=None,
        availability_zone=None, task_state=None, vm_state='building',
        system_metadata={'image_disk_format': 'qcow2', 'image_container_format': 'bare'})


def image_meta(image_id):
    return objects.ImageMeta.from_dict({
        'id': image_id, 'name': 'tiny', 'disk_format': 'qcow2',
        'container_format': 'bare', 'properties': {}})


def agent_record(driver, instance):
    return driver._client.call('GetInstance', pb2.GetInstanceRequest(instance_uuid=instance.uuid))


def vm_state(driver, instance):
    return pb2.VmState.Name(agent_record(driver, instance).vm_state)


def wait_event(driver, instance, transition, seconds=5):
    """The emitted events include transition for instance (the driver emits them at once)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(e.get_instance_uuid() == instance.uuid and e.get_transition() == transition
               for e in driver.events):
            return
        time.sleep(0.02)
    raise AssertionError('no %s event for %s within %d s; got %s' % (
        virtevent.EVENT_LIFECYCLE_NAMES[transition] if hasattr(virtevent, 'EVENT_LIFECYCLE_NAMES')
        else transition, instance.uuid, seconds,
        [(e.get_instance_uuid()[:8], e.get_transition()) for e in driver.events]))


def power(driver, instance):
    return driver.get_info(instance).state


@pytest.fixture
def spawned(driver, agent):
    instance = make_instance(agent.image_id)
    ctx = nova_context.get_admin_context()
    driver.spawn(ctx, instance, image_meta(agent.image_id), injected_files=[],
                 admin_password='s3cret', allocations={}, network_info=[],
                 block_device_info=None)
    instance.vm_state = 'active'
    try:
        yield instance
    finally:
        driver.destroy(ctx, instance, [], None)


def test_spawn_runs_the_instance_and_nova_reads_it_back(driver, spawned):
    assert power(driver, spawned) == power_state.RUNNING
    assert driver.instance_exists(spawned)
    assert spawned.uuid in driver.list_instance_uuids()
    record = agent_record(driver, spawned)
    assert pb2.VmState.Name(record.vm_state) == 'VM_STATE_ACTIVE'
    assert (record.flavor.vcpus, record.flavor.ram_mib, record.flavor.root_gib) == (1, 256, 1)
    assert record.flavor.extra_specs['hw:cpu_policy'] == 'shared'
    assert (record.project_id, record.user_id) == ('project-a', 'user-a')
    wait_event(driver, spawned, STARTED)


def test_every_power_command_changes_state_and_emits_its_event_at_once(driver, spawned):
    ctx = nova_context.get_admin_context()
    driver.pause(spawned)
    assert power(driver, spawned) == power_state.PAUSED
    wait_event(driver, spawned, PAUSED)

    driver.unpause(spawned)
    assert power(driver, spawned) == power_state.RUNNING
    wait_event(driver, spawned, RESUMED)

    driver.suspend(ctx, spawned)
    assert power(driver, spawned) == power_state.SUSPENDED
    wait_event(driver, spawned, SUSPENDED)

    driver.resume(ctx, spawned, [])
    assert power(driver, spawned) == power_state.RUNNING
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'

    del driver.events[:]
    driver.power_off(spawned, timeout=5, retry_interval=1)
    assert power(driver, spawned) == power_state.SHUTDOWN
    assert vm_state(driver, spawned) == 'VM_STATE_STOPPED'
    wait_event(driver, spawned, STOPPED, seconds=1)

    driver.power_on(ctx, spawned, [])
    assert power(driver, spawned) == power_state.RUNNING
    wait_event(driver, spawned, STARTED, seconds=1)

    for reboot_type in ('SOFT', 'HARD'):
        driver.reboot(ctx, spawned, [], reboot_type)
        assert power(driver, spawned) == power_state.RUNNING
        assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'

    driver.rescue(ctx, spawned, [], image_meta(spawned.image_ref), 'pw', None)
    assert vm_state(driver, spawned) == 'VM_STATE_RESCUED'
    driver.unrescue(ctx, spawned)
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'
    assert power(driver, spawned) == power_state.RUNNING


def rescue_disk_base(agent, instance):
    """The image id the agent's rescue disk of INSTANCE is an overlay of (its base in the cache)."""
    disk = os.path.join(agent.scratch, 'instances', instance.uuid, 'disk.rescue')
    info = json.loads(subprocess.run(['qemu-img', 'info', '-U', '--output=json', disk],
                                     check=True, capture_output=True, text=True).stdout)
    return os.path.basename(info['backing-filename'])


def test_rescue_boots_the_rescue_image_nova_names(agent, driver, spawned):
    # rescue_image_ref: Nova hands the driver that image's meta; the rescue disk is made from it.
    ctx = nova_context.get_admin_context()
    driver.rescue(ctx, spawned, [], image_meta(agent.rescue_image_id), 'pw', None)
    assert vm_state(driver, spawned) == 'VM_STATE_RESCUED'
    assert rescue_disk_base(agent, spawned) == agent.rescue_image_id
    driver.unrescue(ctx, spawned)
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'
    assert not os.path.exists(os.path.join(agent.scratch, 'instances', spawned.uuid, 'disk.rescue'))

    # Without rescue_image_ref Nova passes the instance's own image.
    driver.rescue(ctx, spawned, [], image_meta(spawned.image_ref), 'pw', None)
    assert rescue_disk_base(agent, spawned) == spawned.image_ref
    driver.unrescue(ctx, spawned)


def test_rescue_from_an_image_glance_does_not_have_is_image_not_found_and_changes_nothing(driver, spawned):
    ctx = nova_context.get_admin_context()
    missing = str(uuid.uuid4())
    with pytest.raises(exception.ImageNotFound):
        driver.rescue(ctx, spawned, [], image_meta(missing), 'pw', None)
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'


def test_a_refused_command_is_instance_invalid_state_with_the_agents_message(driver, spawned):
    driver.pause(spawned)
    with pytest.raises(exception.InstanceInvalidState) as refused:
        driver.pause(spawned)
    assert 'PAUSED' in str(refused.value)
    assert power(driver, spawned) == power_state.PAUSED
    assert vm_state(driver, spawned) == 'VM_STATE_PAUSED'


def test_an_unknown_instance_is_instance_not_found(driver, agent):
    stranger = make_instance(agent.image_id)
    with pytest.raises(exception.InstanceNotFound):
        driver.get_info(stranger)
    with pytest.raises(exception.InstanceNotFound):
        driver.pause(stranger)
    assert not driver.instance_exists(stranger)
    # Nova's contract: destroying what is not there succeeds.
    driver.destroy(nova_context.get_admin_context(), stranger, [], None)


def test_destroy_deletes_and_a_second_destroy_is_harmless(driver, agent):
    ctx = nova_context.get_admin_context()
    instance = make_instance(agent.image_id)
    driver.spawn(ctx, instance, image_meta(agent.image_id), [], None, {}, [], None)
    driver.destroy(ctx, instance, [], None)
    assert not driver.instance_exists(instance)
    assert instance.uuid not in driver.list_instance_uuids()
    with pytest.raises(exception.InstanceNotFound):
        driver.get_info(instance)
    driver.destroy(ctx, instance, [], None)
    driver.cleanup(ctx, instance, [], None)


def test_spawn_with_power_on_false_leaves_it_stopped(driver, agent):
    ctx = nova_context.get_admin_context()
    instance = make_instance(agent.image_id)
    driver.spawn(ctx, instance, image_meta(agent.image_id), [], None, {}, [], None,
                 power_on=False)
    try:
        assert power(driver, instance) == power_state.SHUTDOWN
    finally:
        driver.destroy(ctx, instance, [], None)


def test_a_spawn_of_an_unknown_image_is_image_not_found_with_the_agents_message(driver, agent):
    ctx = nova_context.get_admin_context()
    instance = make_instance('0f0f0f0f-0000-4000-8000-000000000000')
    with pytest.raises(exception.ImageNotFound) as failed:
        driver.spawn(ctx, instance, image_meta('0f0f0f0f-0000-4000-8000-000000000000'),
                     [], None, {}, [], None)
    assert '0f0f0f0f-0000-4000-8000-000000000000' in str(failed.value)
    assert 'Glance' in str(failed.value)
    # Nova then destroys the failed instance: nothing is left.
    driver.destroy(ctx, instance, [], None)
    assert not driver.instance_exists(instance)


def test_volumes_are_refused_before_anything_is_created(driver, agent):
    instance = make_instance(agent.image_id)
    with pytest.raises(exception.InstanceDeployFailure):
        driver.spawn(nova_context.get_admin_context(), instance, image_meta(agent.image_id),
                     [], None, {}, [], {'block_device_mapping': [{'mount_device': '/dev/vdb'}]})
    assert not driver.instance_exists(instance)


def test_snapshot_uploads_into_the_image_nova_created_with_task_state_steps(driver, agent, spawned):
    # test:///default has no live block copy: the stopped guest is snapshotted from its disk.
    driver.power_off(spawned)
    image_id = agent.create_image('nova-snapshot')
    before = set(agent.list_images())
    steps = []

    def update_task_state(task_state, expected_state=None):
        steps.append((task_state, expected_state))

    driver.snapshot(nova_context.get_admin_context(), spawned, image_id, update_task_state)
    assert steps == [(task_states.IMAGE_PENDING_UPLOAD, None),
                     (task_states.IMAGE_UPLOADING, task_states.IMAGE_PENDING_UPLOAD)]
    assert agent.get_image(image_id)['status'] == 'active'
    assert set(agent.list_images()) == before, 'no second image was created'
    assert power(driver, spawned) == power_state.SHUTDOWN
    assert vm_state(driver, spawned) == 'VM_STATE_STOPPED'


def test_a_failed_snapshot_is_an_error_with_the_agents_message_and_the_guest_runs_on(
        driver, agent, spawned):
    image_id = agent.create_image('nova-snapshot-live')
    with pytest.raises(exception.NovaException) as failed:
        driver.snapshot(nova_context.get_admin_context(), spawned, image_id,
                        lambda task_state, expected_state=None: None)
    # test:///default cannot copy a running guest's disk: the agent says so.
    assert 'virDomainBlockCopy' in str(failed.value)
    assert power(driver, spawned) == power_state.RUNNING
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'
    # The image is Nova's to delete (it does on failure); the agent left it alone.
    assert agent.get_image(image_id)['status'] == 'queued'


def test_same_host_resize_confirm_and_revert(driver, agent, spawned):
    ctx = nova_context.get_admin_context()
    bigger = make_flavor('m1.bigger', vcpus=2, memory_mb=384, root_gb=2)
    original = spawned.flavor
    assert driver.migrate_disk_and_power_off(ctx, spawned, driver.get_host_ip_addr(),
                                             bigger, []) == ''
    spawned.flavor = bigger
    driver.finish_migration(ctx, None, spawned, '', [], image_meta(agent.image_id), True, {})
    record = agent_record(driver, spawned)
    assert pb2.VmState.Name(record.vm_state) == 'VM_STATE_RESIZED'
    assert (record.flavor.vcpus, record.flavor.ram_mib) == (2, 384)
    driver.confirm_migration(ctx, None, spawned, [])
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'
    assert power(driver, spawned) == power_state.RUNNING

    # Resize back down in memory only, then revert: Nova's revert destroys
    # (skipped: task_state RESIZE_REVERTING) and finishes the revert.
    smaller = make_flavor('m1.smaller', vcpus=1, memory_mb=256, root_gb=2)
    driver.migrate_disk_and_power_off(ctx, spawned, driver.get_host_ip_addr(), smaller, [])
    spawned.flavor = smaller
    driver.finish_migration(ctx, None, spawned, '', [], image_meta(agent.image_id), True, {})
    spawned.task_state = task_states.RESIZE_REVERTING
    driver.destroy(ctx, spawned, [], None, destroy_disks=True)
    assert vm_state(driver, spawned) == 'VM_STATE_RESIZED'
    driver.finish_revert_migration(ctx, spawned, [], None)
    spawned.task_state = None
    record = agent_record(driver, spawned)
    assert pb2.VmState.Name(record.vm_state) == 'VM_STATE_ACTIVE'
    assert (record.flavor.vcpus, record.flavor.ram_mib) == (2, 384)

    # A shrinking disk is refused before anything changes, as Nova expects.
    with pytest.raises(exception.InstanceFaultRollback):
        driver.migrate_disk_and_power_off(ctx, spawned, driver.get_host_ip_addr(),
                                          original, [])
    with pytest.raises(exception.InstanceFaultRollback):
        driver.migrate_disk_and_power_off(ctx, spawned, '192.0.2.99', bigger, [])


def test_soft_delete_and_restore(driver, spawned):
    driver.soft_delete(spawned)
    assert vm_state(driver, spawned) == 'VM_STATE_SOFT_DELETED'
    assert power(driver, spawned) == power_state.SHUTDOWN
    driver.restore(spawned)
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'
    assert power(driver, spawned) == power_state.RUNNING


def test_rebuild_uses_the_agents_rebuild(driver, agent, spawned):
    saved = []
    spawned.task_state = task_states.REBUILDING
    spawned.save = lambda expected_task_state=None: saved.append(
        (spawned.task_state, expected_task_state))
    driver.rebuild(context=nova_context.get_admin_context(), instance=spawned,
                   image_meta=image_meta(agent.image_id), injected_files=[],
                   admin_password=None, allocations={}, bdms=[],
                   detach_block_devices=None, attach_block_devices=None)
    assert saved == [(task_states.REBUILD_SPAWNING, [task_states.REBUILDING])]
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'
    assert power(driver, spawned) == power_state.RUNNING


def test_set_admin_password_without_a_guest_agent_is_agent_not_enabled(driver, spawned):
    with pytest.raises(exception.InstanceAgentNotEnabled):
        driver.set_admin_password(spawned, 'new-password')
    assert vm_state(driver, spawned) == 'VM_STATE_ACTIVE'


def test_console_output_is_bytes(driver, spawned):
    assert isinstance(driver.get_console_output(nova_context.get_admin_context(), spawned), bytes)


def test_resources_come_from_get_host(driver):
    host = driver._client.call('GetHost', pb2.GetHostRequest())
    resources = driver.get_available_resource('nova-driver-test')
    assert resources['vcpus'] == host.cpus > 0
    assert resources['memory_mb'] == host.memory_mib > 0
    assert resources['local_gb'] == host.instances_disk_total_gib > 0
    assert resources['hypervisor_hostname'] == 'nova-driver-test'
    assert driver.get_available_nodes() == ['nova-driver-test']
    assert 'load average' in driver.get_host_uptime()

    from nova.compute import provider_tree
    tree = provider_tree.ProviderTree()
    tree.new_root('nova-driver-test', str(uuid.uuid4()))
    driver.update_provider_tree(tree, 'nova-driver-test')
    inventory = tree.data('nova-driver-test').inventory
    assert (inventory['VCPU']['total'], inventory['MEMORY_MB']['total'],
            inventory['DISK_GB']['total']) == (host.cpus, host.memory_mib,
                                               host.instances_disk_total_gib)


def test_a_blocking_agent_call_leaves_eventlets_hub_running(driver, spawned):
    """WaitInstance for a state never reached blocks 1 s in grpc; greenthreads keep running."""
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            eventlet.sleep(0.01)

    thread = eventlet.spawn(ticker)
    try:
        with pytest.raises(agent_client.grpc.RpcError) as timed_out:
            driver._client.call('WaitInstance', pb2.WaitInstanceRequest(
                instance_uuid=spawned.uuid, vm_state=pb2.VM_STATE_PAUSED), timeout=1)
        assert timed_out.value.code() == agent_client.grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        thread.kill()
    assert len(ticks) >= 20, 'the hub ran %d ticks during a 1 s call' % len(ticks)


class UnixProxy(object):
    """socat between the driver and the agent: stop() cuts every connection, as a lost agent."""

    def __init__(self, target, path):
        self.target = target
        self.path = path
        self.process = None
        self.start()

    def start(self):
        import subprocess
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.process = subprocess.Popen(
            ['socat', 'UNIX-LISTEN:%s,fork' % self.path, 'UNIX-CONNECT:%s' % self.target],
            start_new_session=True)
        # socat creates the file at bind(), before listen(): wait until a connection is taken.
        import socket
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                return
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        raise AssertionError('socat did not listen on ' + self.path)

    def stop(self):
        import signal
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # socat and its forked connections
            self.process.wait()
        self.process = None


def test_events_resume_after_a_lost_connection_without_missing_a_change(agent):
    """A change made while the driver's stream is down arrives once it reconnects."""
    from conftest import started_driver
    proxy = UnixProxy(agent.socket_path, os.path.join(agent.scratch, 'proxy.sock'))
    direct = agent_client.AgentClient(agent.socket_path, 30, 120)
    ctx = nova_context.get_admin_context()
    instance = make_instance(agent.image_id)
    try:
        with started_driver(proxy.path, reconnect_interval=0.2) as compute_driver:
            compute_driver.spawn(ctx, instance, image_meta(agent.image_id), [], None, {}, [],
                                 None)
            try:
                wait_event(compute_driver, instance, STARTED)
                seen = compute_driver._events.last_sequence
                assert seen > 0

                proxy.stop()
                time.sleep(0.5)
                # Behind the cut stream: paused through the agent directly.
                direct.run_task('Pause', pb2.InstanceRequest(instance_uuid=instance.uuid),
                                (pb2.VM_STATE_PAUSED,))
                time.sleep(0.5)
                assert not any(e.get_transition() == PAUSED for e in compute_driver.events)
                proxy.start()

                wait_event(compute_driver, instance, PAUSED, seconds=30)
                assert compute_driver._events.last_sequence > seen
            finally:
                if proxy.process is None:
                    proxy.start()
                compute_driver.destroy(ctx, instance, [], None)
    finally:
        proxy.stop()
        direct.close()


def _bare_driver(socket_path):
    from nova.conf import CONF
    from nova.virt import compute_agent
    CONF.set_override('socket_path', socket_path, group='compute_agent')
    CONF.set_override('call_timeout', 5, group='compute_agent')
    try:
        return compute_agent.ComputeAgentDriver(virtapi=None)
    finally:
        CONF.clear_override('socket_path', group='compute_agent')
        CONF.clear_override('call_timeout', group='compute_agent')


def test_init_host_refuses_to_start_without_an_agent(agent, caplog):
    missing = os.path.join(agent.scratch, 'no-agent.sock')
    with pytest.raises(exception.HypervisorUnavailable) as refused:
        _bare_driver(missing).init_host('nova-driver-test')
    assert missing in str(refused.value)
    assert 'nova-compute cannot start: compute-agent is unreachable at ' + missing in caplog.text


def test_init_host_refuses_an_agent_that_does_not_speak_computeagent_v1(agent, caplog):
    """A gRPC server without the service (another API version) answers UNIMPLEMENTED."""
    import subprocess
    import sys
    path = os.path.join(agent.scratch, 'other-api.sock')
    # Its own process, without eventlet: grpc's server blocks the threads it runs on.
    server = subprocess.Popen([sys.executable, '-c', (
        'import grpc, sys, time\n'
        'from concurrent import futures\n'
        'server = grpc.server(futures.ThreadPoolExecutor(2))\n'
        'server.add_insecure_port("unix:" + sys.argv[1])\n'
        'server.start()\n'
        'print("serving", flush=True)\n'
        'time.sleep(600)\n'), path], stdout=subprocess.PIPE)
    assert server.stdout.readline().strip() == b'serving'
    try:
        with pytest.raises(exception.HypervisorUnavailable) as refused:
            _bare_driver(path).init_host('nova-driver-test')
        assert 'does not serve the API this driver speaks' in str(refused.value)
        assert 'computeagent.v1.ComputeAgent' in caplog.text
    finally:
        server.kill()
        server.wait()
