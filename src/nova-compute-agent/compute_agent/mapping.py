"""Nova's objects (flavor, image meta, network_info, instance) as the agent's messages, and back."""

import base64
import math

from nova.compute import power_state
from nova import exception
from nova.network import model as network_model
from nova.objects import fields

from .client import pb2

# The agent's PowerState -> Nova's power_state (same names: the agent models Nova's states).
POWER_STATES = {
    pb2.POWER_STATE_UNSPECIFIED: power_state.NOSTATE,
    pb2.POWER_STATE_NOSTATE: power_state.NOSTATE,
    pb2.POWER_STATE_RUNNING: power_state.RUNNING,
    pb2.POWER_STATE_PAUSED: power_state.PAUSED,
    pb2.POWER_STATE_SHUTDOWN: power_state.SHUTDOWN,
    pb2.POWER_STATE_CRASHED: power_state.CRASHED,
    pb2.POWER_STATE_SUSPENDED: power_state.SUSPENDED,
}

# Nova's vif types -> the agent's Port.vif_type.
VIF_TYPES = {
    network_model.VIF_TYPE_BRIDGE: 'bridge',
    network_model.VIF_TYPE_TAP: 'ethernet',
    'ethernet': 'ethernet',
    network_model.VIF_TYPE_OVS: 'ovs',
    network_model.VIF_TYPE_VHOSTUSER: 'vhostuser',
}


def flavor(nova_flavor):
    """A Nova flavor as the agent's Flavor; swap (MiB in Nova) rounds up to whole GiB."""
    return pb2.Flavor(
        name=nova_flavor.name or '',
        vcpus=nova_flavor.vcpus,
        ram_mib=nova_flavor.memory_mb,
        root_gib=nova_flavor.root_gb,
        ephemeral_gib=nova_flavor.ephemeral_gb or 0,
        swap_gib=int(math.ceil((nova_flavor.swap or 0) / 1024.0)),
        extra_specs={k: str(v) for k, v in (nova_flavor.extra_specs or {}).items()})


def ports(network_info, instance_uuid):
    """network_info's VIFs as the agent's ports (none with --nic none)."""
    result = []
    for vif in network_info or []:
        vif_type = VIF_TYPES.get(vif.get('type'))
        if vif_type is None:
            raise exception.InstanceDeployFailure(
                reason='port %s has vif_type %r; compute-agent plugs %s' % (
                    vif.get('id'), vif.get('type'), ', '.join(sorted(VIF_TYPES))))
        network = vif.get('network') or {}
        port = pb2.Port(
            id=vif.get('id') or '',
            mac=vif.get('address') or '',
            vif_type=vif_type,
            device_name=vif.get('devname') or '',
            bridge=network.get('bridge') or '',
            mtu=int((network.get('meta') or {}).get('mtu') or 0))
        for subnet in network.get('subnets') or []:
            prefix = (subnet.get('cidr') or '').partition('/')[2]
            gateway = (subnet.get('gateway') or {}).get('address') or ''
            for ip in subnet.get('ips') or []:
                if prefix:
                    port.fixed_ips.add(cidr='%s/%s' % (ip['address'], prefix),
                                       gateway=gateway)
            port.dns_nameservers.extend(
                d['address'] for d in subnet.get('dns') or [] if d.get('address'))
        result.append(port)
    return result


def key_pair(instance):
    if not instance.key_data:
        return None
    key_type = ''
    keypairs = instance.keypairs if instance.obj_attr_is_set('keypairs') else None
    if keypairs:
        key_type = keypairs[0].type or ''
    return pb2.KeyPair(name=instance.key_name or 'key', type=key_type,
                       public_key=instance.key_data.strip())


def user_data(instance):
    """Nova keeps user_data base64-encoded; the agent wants its bytes."""
    if not instance.user_data:
        return b''
    return base64.b64decode(instance.user_data)


def config_drive(instance, image_meta, force):
    policy = image_meta.properties.get(
        'img_config_drive', fields.ConfigDrivePolicy.OPTIONAL)
    return bool(instance.config_drive or (force and not instance.launched_at) or
                policy == fields.ConfigDrivePolicy.MANDATORY)


def spawn_request(context, instance, image_meta, admin_password, network_info,
                  request_id, force_config_drive):
    request = pb2.SpawnRequest(
        request_id=request_id,
        instance_uuid=instance.uuid,
        name=instance.display_name or instance.uuid,
        flavor=flavor(instance.flavor),
        image_id=image_meta.id,
        project_id=instance.project_id or context.project_id or '',
        user_id=instance.user_id or context.user_id or '',
        auth_token=getattr(context, 'auth_token', None) or '',
        user_data=user_data(instance),
        metadata={k: str(v) for k, v in (instance.metadata or {}).items()},
        admin_password=admin_password or '',
        hostname=instance.hostname or '',
        config_drive=config_drive(instance, image_meta, force_config_drive),
        availability_zone=instance.availability_zone or '')
    request.ports.extend(ports(network_info, instance.uuid))
    keys = key_pair(instance)
    if keys is not None:
        request.key_pair.CopyFrom(keys)
    return request
