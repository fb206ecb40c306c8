"""ComputeAgentDriver: Nova's compute driver interface on top of the local compute-agent.

Every mutating method calls the agent's RPC and then WaitInstance until the
task ends (Nova's driver calls are synchronous); an agent refusal or a failed
task becomes the Nova exception the compute manager expects, carrying the
agent's message.
"""

import json

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import versionutils

from nova.compute import task_states
from nova.compute import utils as compute_utils
from nova.console import type as console_type
import nova.conf
from nova import exception
from nova.objects import fields as obj_fields
from nova.virt import driver
from nova.virt import hardware

from . import client
from . import conf
from . import console as serial_console
from . import errors
from . import events
from . import mapping
from .client import grpc, pb2

CONF = nova.conf.CONF
conf.register_opts(CONF)
LOG = logging.getLogger(__name__)

VM = pb2.VmState
ACTIVE = pb2.VM_STATE_ACTIVE
STOPPED = pb2.VM_STATE_STOPPED
RESIZED = pb2.VM_STATE_RESIZED
DELETED = pb2.VM_STATE_DELETED


def _nova_error(cls):
    """A failure(message) factory for exception classes that take reason=."""
    return lambda message: cls(reason=message)


# The agent's bound for a Stop's graceful timeout (Nova's shutdown_timeout has none).
MAX_GRACEFUL_SECONDS = 3600


def _image_not_found(image_id):
    # Spawn and Rebuild answer NOT_FOUND before accepting when Glance has no such image.
    return lambda message: exception.ImageNotFound(image_id=image_id, message=message)


def _plain(message):
    return exception.NovaException(message=message)


class ComputeAgentDriver(driver.ComputeDriver):
    """A Nova compute driver whose hypervisor is compute-agent."""

    capabilities = dict(
        driver.ComputeDriver.capabilities,
        has_imagecache=False,
        supports_evacuate=False,
        supports_migrate_to_same_host=True,
        supports_image_type_qcow2=True,
        supports_image_type_raw=True)

    def __init__(self, virtapi, read_only=False):
        super(ComputeAgentDriver, self).__init__(virtapi)
        options = CONF.compute_agent
        self._client = client.AgentClient(
            options.socket_path, options.call_timeout, options.task_timeout)
        self._events = None
        self._host = None
        self._consoles = serial_console.SerialConsoles(self._client)

    # -- host ----------------------------------------------------------------

    def init_host(self, host):
        """Refuses to start unless the agent answers computeagent.v1 on its socket."""
        self._host = host
        try:
            agent_host = self._client.call('GetHost', pb2.GetHostRequest())
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                message = ('compute-agent at %s does not serve the API this driver speaks '
                           '(computeagent.v1.ComputeAgent): %s; install a matching '
                           'compute-agent' % (self._client.socket_path, e.details()))
            else:
                message = ('compute-agent is unreachable at %s (%s: %s); start it '
                           '(systemctl start compute-agent) or set [compute_agent] '
                           'socket_path' % (self._client.socket_path, e.code().name,
                                            e.details()))
            LOG.error('nova-compute cannot start: %s', message)
            raise exception.HypervisorUnavailable(message=message)
        LOG.info('compute-agent at %s: %s %s on %s, %d instances',
                 self._client.socket_path, agent_host.hypervisor_type,
                 agent_host.hypervisor_version, agent_host.hostname,
                 agent_host.instance_count)
        self._events = events.InstanceEventWatch(
            self._client, self.emit_event, CONF.compute_agent.reconnect_interval)
        self._events.start()

    def cleanup_host(self, host):
        self._consoles.close_all()
        if self._events is not None:
            self._events.stop()
            self._events = None

    def get_available_nodes(self, refresh=False):
        return [CONF.host]

    def _get_host(self):
        try:
            return self._client.call('GetHost', pb2.GetHostRequest())
        except grpc.RpcError as e:
            raise errors.from_rpc(e, None, _plain, self._client.socket_path)

    def get_available_resource(self, nodename):
        host = self._get_host()
        hv_type = (obj_fields.HVType.KVM if host.hypervisor_type.upper() == 'KVM'
                   else obj_fields.HVType.QEMU)
        try:
            hv_version = versionutils.convert_version_to_int(host.hypervisor_version)
        except Exception:
            hv_version = 0
        cpu_info = {
            'arch': obj_fields.Architecture.X86_64,
            'model': host.cpu_model,
            'vendor': '',
            'topology': {'sockets': host.sockets, 'cores': host.cores_per_socket,
                         'threads': host.threads_per_core},
            'features': [],
        }
        return {
            'vcpus': host.cpus,
            'memory_mb': host.memory_mib,
            'local_gb': host.instances_disk_total_gib,
            'vcpus_used': 0,
            'memory_mb_used': max(0, host.memory_mib - host.free_memory_mib),
            'local_gb_used': max(0, host.instances_disk_total_gib -
                                 host.instances_disk_free_gib),
            'hypervisor_type': hv_type,
            'hypervisor_version': hv_version,
            'hypervisor_hostname': nodename,
            'cpu_info': json.dumps(cpu_info),
            'disk_available_least': host.instances_disk_free_gib,
            'supported_instances': [(obj_fields.Architecture.X86_64, hv_type,
                                     obj_fields.VMMode.HVM)],
            'numa_topology': None,
        }

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        host = self._get_host()
        ratios = self._get_allocation_ratios(provider_tree.data(nodename).inventory)
        inventory = {}
        for rc, total, reserved in (
                ('VCPU', host.cpus, CONF.reserved_host_cpus),
                ('MEMORY_MB', host.memory_mib, CONF.reserved_host_memory_mb),
                ('DISK_GB', host.instances_disk_total_gib,
                 self._get_reserved_host_disk_gb_from_config())):
            if total <= 0:
                continue
            inventory[rc] = {
                'total': total, 'min_unit': 1, 'max_unit': total, 'step_size': 1,
                'allocation_ratio': ratios[rc], 'reserved': reserved,
            }
        provider_tree.update_inventory(nodename, inventory)

    def get_host_ip_addr(self):
        return CONF.my_ip

    def get_host_uptime(self):
        out, _err = processutils.execute('env', 'LANG=C', 'uptime')
        return out

    # -- reading instances ---------------------------------------------------

    def _get_instance(self, instance_uuid):
        """The agent's record, or None when it has none (or only a DELETED one)."""
        try:
            record = self._client.call(
                'GetInstance', pb2.GetInstanceRequest(instance_uuid=instance_uuid))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise errors.from_rpc(e, instance_uuid, _plain, self._client.socket_path)
        return None if record.vm_state == DELETED else record

    def get_info(self, instance, use_cache=True):
        record = self._get_instance(instance.uuid)
        if record is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return hardware.InstanceInfo(state=mapping.POWER_STATES[record.power_state])

    def instance_exists(self, instance):
        return self._get_instance(instance.uuid) is not None

    def _list(self):
        token = ''
        while True:
            try:
                page = self._client.call('ListInstances',
                                         pb2.ListInstancesRequest(page_token=token))
            except grpc.RpcError as e:
                raise errors.from_rpc(e, None, _plain, self._client.socket_path)
            for record in page.instances:
                if record.vm_state != DELETED:
                    yield record
            token = page.next_page_token
            if not token:
                return

    def list_instance_uuids(self):
        return [record.uuid for record in self._list()]

    def list_instances(self):
        # The agent knows instances by UUID; Nova asks list_instance_uuids first.
        return self.list_instance_uuids()

    def get_console_output(self, context, instance):
        try:
            console = self._client.call('GetConsoleOutput', pb2.GetConsoleOutputRequest(
                instance_uuid=instance.uuid, lines=10000))
        except grpc.RpcError as e:
            raise errors.from_rpc(e, instance.uuid, _plain, self._client.socket_path)
        return console.output.encode('utf-8')

    def get_serial_console(self, context, instance):
        """A port whose every connection is the guest's serial console (AttachConsole)."""
        if not CONF.serial_console.enabled:
            raise exception.ConsoleTypeUnavailable(console_type='serial')
        record = self._get_instance(instance.uuid)
        if record is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        if record.power_state != pb2.POWER_STATE_RUNNING:
            # Refused here, not after the proxy connected: the API says why (400) at once.
            raise errors.console_unavailable(
                'the serial console of instance %s needs its guest running (power state %s); '
                'start, unpause or resume the server first' % (
                    instance.uuid, pb2.PowerState.Name(record.power_state)))
        return console_type.ConsoleSerial(host=CONF.serial_console.proxyclient_address,
                                          port=self._consoles.port(instance.uuid))

    # -- running tasks -------------------------------------------------------

    def _task(self, method, request, goals, failure, after_accept=None, not_found=None):
        uuid = request.instance_uuid
        try:
            return self._client.run_task(method, request, goals, after_accept)
        except client.TaskFailed as e:
            raise failure(str(e))
        except grpc.RpcError as e:
            raise errors.from_rpc(e, uuid, failure, self._client.socket_path, not_found)

    def _instance_task(self, method, instance, goals, failure):
        request = pb2.InstanceRequest(request_id=self._client.request_id(),
                                      instance_uuid=instance.uuid)
        return self._task(method, request, goals, failure)

    # -- spawn and delete ----------------------------------------------------

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        if driver.block_device_info_get_mapping(block_device_info):
            raise exception.InstanceDeployFailure(
                reason='compute-agent cannot attach volumes yet (its API has no block '
                       'devices); boot from an image without --block-device')
        if not image_meta.obj_attr_is_set('id') or not image_meta.id:
            raise exception.InstanceDeployFailure(
                reason='compute-agent boots from an image; this instance has none')
        if injected_files:
            LOG.warning('compute-agent does not write injected (personality) files; '
                        'ignoring %d of them', len(injected_files), instance=instance)
        request = mapping.spawn_request(
            context, instance, image_meta, admin_password, network_info,
            self._client.request_id(), CONF.force_config_drive)
        self._task('Spawn', request, (ACTIVE,), _nova_error(exception.InstanceDeployFailure),
                   not_found=_image_not_found(image_meta.id))
        LOG.info('compute-agent spawned the instance', instance=instance)
        if not power_on:
            self.power_off(instance)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if instance.task_state == task_states.RESIZE_REVERTING:
            # Nova's revert destroys the guest on the destination first; on the
            # agent (same host) the revert itself is finish_revert_migration.
            LOG.debug('destroy during a resize revert: left to finish_revert_migration',
                      instance=instance)
            return
        # Before the delete: the proxy's sessions end cleanly rather than on a vanished guest.
        self._consoles.close(instance.uuid)
        try:
            self._instance_task('Delete', instance, (DELETED,),
                                _nova_error(exception.InstanceTerminationFailure))
        except exception.InstanceNotFound:
            LOG.warning('compute-agent has no such instance; nothing to destroy',
                        instance=instance)
        except exception.InstanceInvalidState:
            if self._get_instance(instance.uuid) is not None:
                raise
            LOG.info('compute-agent already deleted the instance', instance=instance)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        # The agent's Delete leaves no domain, disk, tap or record: nothing is left here.
        pass

    # -- power ---------------------------------------------------------------

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None):
        request = pb2.RebootRequest(request_id=self._client.request_id(),
                                    instance_uuid=instance.uuid,
                                    hard=reboot_type == 'HARD')
        self._task('Reboot', request, (ACTIVE, pb2.VM_STATE_RESCUED),
                   _nova_error(exception.InstanceRebootFailure))

    def power_off(self, instance, timeout=0, retry_interval=0):
        # As Nova's libvirt driver: ACPI and up to TIMEOUT seconds for the guest, then destroy;
        # 0 (clean_shutdown=False) destroys at once. The agent repeats the ACPI request itself.
        request = pb2.StopRequest(request_id=self._client.request_id(), instance_uuid=instance.uuid)
        request.graceful_timeout.FromSeconds(min(max(0, int(timeout or 0)), MAX_GRACEFUL_SECONDS))
        self._task('Stop', request, (STOPPED,), _nova_error(exception.InstancePowerOffFailure))

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None):
        self._instance_task('Start', instance, (ACTIVE,),
                            _nova_error(exception.InstancePowerOnFailure))

    def pause(self, instance):
        self._instance_task('Pause', instance, (pb2.VM_STATE_PAUSED,), _plain)

    def unpause(self, instance):
        self._instance_task('Unpause', instance, (ACTIVE, pb2.VM_STATE_RESCUED), _plain)

    def suspend(self, context, instance):
        self._instance_task('Suspend', instance, (pb2.VM_STATE_SUSPENDED,),
                            _nova_error(exception.InstanceSuspendFailure))

    def resume(self, context, instance, network_info, block_device_info=None):
        self._instance_task('Resume', instance, (ACTIVE,),
                            _nova_error(exception.InstanceResumeFailure))

    def soft_delete(self, instance):
        self._instance_task('SoftDelete', instance, (pb2.VM_STATE_SOFT_DELETED,), _plain)

    def restore(self, instance):
        self._instance_task('Restore', instance, (ACTIVE,), _plain)

    # -- rescue --------------------------------------------------------------

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info):
        # image_meta is the rescue image (rescue_image_ref, else the instance's own image).
        rescue_image = image_meta.id if image_meta.obj_attr_is_set('id') else ''
        request = pb2.RescueRequest(
            request_id=self._client.request_id(), instance_uuid=instance.uuid,
            image_id=rescue_image or '', auth_token=getattr(context, 'auth_token', None) or '')
        self._task('Rescue', request, (pb2.VM_STATE_RESCUED,),
                   lambda m: exception.InstanceNotRescuable(instance_id=instance.uuid, reason=m),
                   not_found=_image_not_found(rescue_image) if rescue_image else None)

    def unrescue(self, context, instance):
        self._instance_task('Unrescue', instance, (ACTIVE,),
                            _nova_error(exception.InstanceUnRescueFailure))

    # -- guest ---------------------------------------------------------------

    def set_admin_password(self, instance, new_pass):
        user = instance.image_meta.properties.get('os_admin_user') or 'root'
        request = pb2.SetAdminPasswordRequest(
            request_id=self._client.request_id(), instance_uuid=instance.uuid,
            admin_password=new_pass, user=user)
        try:
            self._client.call('SetAdminPassword', request,
                              timeout=CONF.compute_agent.task_timeout)
        except grpc.RpcError as e:
            if (e.code() == grpc.StatusCode.FAILED_PRECONDITION and
                    'guest agent' in (e.details() or '')):
                raise exception.QemuGuestAgentNotEnabled(message=e.details())
            raise errors.from_rpc(
                e, instance.uuid,
                lambda m: exception.InstancePasswordSetFailed(instance=instance.uuid,
                                                              reason=m),
                self._client.socket_path)

    def rebuild(self, context, instance, image_meta, injected_files,
                admin_password, allocations, bdms, detach_block_devices,
                attach_block_devices, network_info=None,
                evacuate=False, block_device_info=None,
                preserve_ephemeral=False, accel_uuids=None,
                reimage_boot_volume=False):
        if evacuate or reimage_boot_volume:
            # Nova's default rebuild (destroy + spawn) serves these.
            raise NotImplementedError()
        instance.task_state = task_states.REBUILD_SPAWNING
        instance.save(expected_task_state=[task_states.REBUILDING])
        request = pb2.RebuildRequest(
            request_id=self._client.request_id(), instance_uuid=instance.uuid,
            image_id=image_meta.id, auth_token=getattr(context, 'auth_token', None) or '')
        self._task('Rebuild', request, (ACTIVE,),
                   _nova_error(exception.InstanceDeployFailure),
                   not_found=_image_not_found(image_meta.id))

    def snapshot(self, context, instance, image_id, update_task_state):
        """Uploads the root disk into the image Nova created (image_id)."""
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        self._declare_qcow2(context, instance, image_id)
        request = pb2.SnapshotRequest(
            request_id=self._client.request_id(), instance_uuid=instance.uuid,
            image_id=image_id, auth_token=getattr(context, 'auth_token', None) or '')
        accepted = {}

        def uploading(record):
            accepted['vm_state'] = record.vm_state
            update_task_state(task_state=task_states.IMAGE_UPLOADING,
                              expected_state=task_states.IMAGE_PENDING_UPLOAD)

        self._task('Snapshot', request, None, _plain, after_accept=uploading)
        LOG.info('snapshot uploaded to image %s', image_id, instance=instance)

    def _declare_qcow2(self, context, instance, image_id):
        """Nova's snapshot image inherits the base image's formats; the agent uploads qcow2."""
        sysmeta = instance.system_metadata or {}
        if (sysmeta.get('image_disk_format') == 'qcow2' and
                sysmeta.get('image_container_format') == 'bare'):
            return
        from nova.image import glance
        glance.API().update(context, image_id,
                            {'disk_format': 'qcow2', 'container_format': 'bare'},
                            purge_props=False)

    # -- resize on this host -------------------------------------------------

    def migrate_disk_and_power_off(self, context, instance, dest,
                                   flavor, network_info,
                                   block_device_info=None,
                                   timeout=0, retry_interval=0):
        if dest not in (self.get_host_ip_addr(), CONF.host):
            raise exception.InstanceFaultRollback(exception.ResizeError(
                reason='compute-agent resizes on the same host only (destination %s); '
                       'set allow_resize_to_same_host = True' % dest))
        old = instance.flavor
        if flavor.root_gb < old.root_gb or flavor.ephemeral_gb < old.ephemeral_gb:
            raise exception.InstanceFaultRollback(exception.ResizeError(
                reason='a disk cannot shrink (root %d -> %d GiB, ephemeral %d -> %d GiB)' % (
                    old.root_gb, flavor.root_gb, old.ephemeral_gb, flavor.ephemeral_gb)))
        # The agent resizes in one task (finish_migration): nothing moves here.
        return ''

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True):
        request = pb2.ResizeRequest(request_id=self._client.request_id(),
                                    instance_uuid=instance.uuid,
                                    flavor=mapping.flavor(instance.flavor))
        self._task('Resize', request, (RESIZED,), _nova_error(exception.ResizeError))

    def confirm_migration(self, context, migration, instance, network_info):
        record = self._get_instance(instance.uuid)
        if record is None or record.vm_state != RESIZED:
            LOG.info('compute-agent has no resize to confirm', instance=instance)
            return
        self._instance_task('ConfirmResize', instance, (ACTIVE, STOPPED),
                            _nova_error(exception.ResizeError))

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True):
        self._instance_task('RevertResize', instance, (ACTIVE, STOPPED),
                            _nova_error(exception.ResizeError))
        record = self._get_instance(instance.uuid)
        if power_on and record is not None and record.vm_state == STOPPED:
            self.power_on(context, instance, network_info)
