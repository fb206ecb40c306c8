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

/// <summary>A fixed IP of a port (Neutron's fixed_ips with its subnet): "10.0.0.5/24", optionally the subnet's gateway.</summary>
public sealed record PortAddress(string Cidr, string? Gateway = null)
{
    /// <summary>The address without its prefix length.</summary>
    public string Address => Cidr.Split('/')[0];

    public bool IsIPv6 => Address.Contains(':', StringComparison.Ordinal);

    /// <summary>The netmask as network_data.json writes it (255.255.255.0, ffff:ffff:…::).</summary>
    public string Netmask
    {
        get
        {
            var prefix = int.Parse(Cidr.Split('/')[1], System.Globalization.CultureInfo.InvariantCulture);
            var bytes = new byte[IsIPv6 ? 16 : 4];
            for (var i = 0; i < prefix; i++)
            {
                bytes[i / 8] |= (byte)(0x80 >> (i % 8));
            }

            return new System.Net.IPAddress(bytes).ToString();
        }
    }

    internal bool IsValid
    {
        get
        {
            var parts = Cidr?.Split('/') ?? [];
            return parts.Length == 2
                && System.Net.IPAddress.TryParse(parts[0], out var ip)
                && int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var prefix)
                && prefix <= (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 128 : 32);
        }
    }
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

    /// <summary>Static addresses the guest configures from the config drive's network_data.json; none: the guest uses DHCP.</summary>
    public IReadOnlyList<PortAddress> FixedIps { get; init; } = [];

    public IReadOnlyList<string> DnsNameservers { get; init; } = [];

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

        for (var i = 0; i < FixedIps.Count; i++)
        {
            var address = FixedIps[i];
            if (!address.IsValid)
            {
                throw new InvalidInstanceSpecException($"{field}.fixed_ips[{i}].cidr", address.Cidr, "an address with its prefix length, e.g. 10.0.0.5/24 or 2001:db8::5/64");
            }

            if (address.Gateway is not null && !System.Net.IPAddress.TryParse(address.Gateway, out _))
            {
                throw new InvalidInstanceSpecException($"{field}.fixed_ips[{i}].gateway", address.Gateway, "an IP address");
            }
        }

        for (var i = 0; i < DnsNameservers.Count; i++)
        {
            if (!System.Net.IPAddress.TryParse(DnsNameservers[i], out _))
            {
                throw new InvalidInstanceSpecException($"{field}.dns_nameservers[{i}]", DnsNameservers[i], "an IP address");
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
