namespace ComputeAgent.Instances.Model;

/// <summary>How a port is plugged into the host (Neutron's binding:vif_type).</summary>
public enum VifType
{
    /// <summary>A Linux bridge; libvirt creates the tap and enslaves it.</summary>
    Bridge,

    /// <summary>A tap libvirt creates with the given name and leaves unplugged (the network agent wires it).</summary>
    Ethernet,

    /// <summary>An Open vSwitch bridge; libvirt adds the tap as a port with the Neutron port id as iface-id.</summary>
    Ovs,

    /// <summary>A vhost-user socket (DPDK switches).</summary>
    VhostUser,
}

/// <summary>Who creates a vhost-user socket: QEMU as client connects to the switch's socket, as server it listens.</summary>
public enum VhostUserMode
{
    Client,
    Server,
}

/// <summary>A network port (Neutron port after binding) as the controller sends it.</summary>
public sealed record Port(string Id, string MacAddress, VifType VifType)
{
    /// <summary>The host tap name (bridge, ethernet, ovs); Nova's convention is "tap" + the first 11 characters of the port id.</summary>
    public string? DeviceName { get; init; }

    /// <summary>The Linux or OVS bridge (bridge, ovs).</summary>
    public string? BridgeName { get; init; }

    public int? Mtu { get; init; }

    /// <summary>Overrides the image's hw_vif_model for this port.</summary>
    public VifModel? Model { get; init; }

    /// <summary>Overrides the flavor's quota:vif_* for this port.</summary>
    public Bandwidth? Bandwidth { get; init; }

    public string? VhostUserSocketPath { get; init; }

    public VhostUserMode VhostUserMode { get; init; } = VhostUserMode.Client;

    /// <summary>The tap name Nova would give this port when none is sent.</summary>
    public string EffectiveDeviceName => DeviceName ?? "tap" + Id[..Math.Min(11, Id.Length)];

    public void Validate(int index)
    {
        var field = $"ports[{index}]";
        SpecValues.CheckToken(field + ".id", Id, 64);
        if (!IsUnicastMac(MacAddress))
        {
            throw new InvalidInstanceSpecException(field + ".mac", MacAddress, "a unicast MAC address such as fa:16:3e:12:34:56");
        }

        if (VifType != VifType.VhostUser)
        {
            SpecValues.CheckDeviceName(field + ".devname", EffectiveDeviceName);
        }

        if (VifType is VifType.Bridge or VifType.Ovs)
        {
            SpecValues.CheckDeviceName(field + ".bridge", BridgeName);
        }

        if (VifType == VifType.Ovs && !Guid.TryParse(Id, out _))
        {
            // Open vSwitch's iface-id (libvirt's interfaceid) is the Neutron port UUID.
            throw new InvalidInstanceSpecException(field + ".id", Id, "a UUID for an ovs port");
        }

        if (VifType == VifType.VhostUser)
        {
            SpecValues.CheckPath(field + ".vhostuser_socket", VhostUserSocketPath);
            if (Model is not null and not VifModel.Virtio)
            {
                throw new InvalidInstanceSpecException(field + ".model", Model.ToString(), "virtio (vhost-user is virtio only)");
            }
        }

        if (Mtu is < 68 or > 65535)
        {
            throw new InvalidInstanceSpecException(field + ".mtu", Mtu.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), "68 to 65535");
        }
    }

    private static bool IsUnicastMac(string? mac)
    {
        if (mac is null || mac.Length != 17)
        {
            return false;
        }

        for (var i = 0; i < mac.Length; i++)
        {
            var ok = i % 3 == 2 ? mac[i] == ':' : char.IsAsciiHexDigit(mac[i]);
            if (!ok)
            {
                return false;
            }
        }

        // The least significant bit of the first octet marks multicast, which no NIC may own.
        return (Convert.ToByte(mac[..2], 16) & 1) == 0;
    }
}
