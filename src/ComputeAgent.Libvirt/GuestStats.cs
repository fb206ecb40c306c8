using System.Globalization;

namespace ComputeAgent.Libvirt;

/// <summary>
/// One running guest's counters from virConnectGetAllDomainStats, parsed from libvirt's typed
/// parameters (cpu.time, balloon.*, vcpu.N.time, block.N.*, net.N.*). A counter libvirt did not
/// report (the driver or the guest has none) stays null.
/// </summary>
public sealed class GuestStats(Guid uuid, string name)
{
    private readonly SortedDictionary<int, GuestVcpuStats> vcpus = new();
    private readonly SortedDictionary<int, GuestDiskStats> disks = new();
    private readonly SortedDictionary<int, GuestInterfaceStats> interfaces = new();

    public Guid Uuid { get; } = uuid;

    public string Name { get; } = name;

    /// <summary>cpu.time: CPU time of the whole guest (QEMU's threads included), in nanoseconds.</summary>
    public ulong? CpuTimeNs { get; private set; }

    /// <summary>balloon.current: the memory the guest has now, in KiB.</summary>
    public ulong? BalloonCurrentKiB { get; private set; }

    /// <summary>balloon.available: the memory the guest's OS sees, in KiB (needs the balloon driver's stats).</summary>
    public ulong? BalloonAvailableKiB { get; private set; }

    /// <summary>balloon.unused: the memory the guest's OS leaves unused, in KiB (needs the balloon driver's stats).</summary>
    public ulong? BalloonUnusedKiB { get; private set; }

    public IReadOnlyCollection<GuestVcpuStats> Vcpus => vcpus.Values;

    public IReadOnlyCollection<GuestDiskStats> Disks => disks.Values;

    public IReadOnlyCollection<GuestInterfaceStats> Interfaces => interfaces.Values;

    internal void Read(string field, string value)
    {
        if (Indexed(field, "block.", out var index, out var rest) && rest == "name")
        {
            Disk(index).Name = value;
        }
        else if (Indexed(field, "net.", out index, out rest) && rest == "name")
        {
            Interface(index).Name = value;
        }
    }

    internal void Read(string field, ulong value)
    {
        switch (field)
        {
            case "cpu.time":
                CpuTimeNs = value;
                return;
            case "balloon.current":
                BalloonCurrentKiB = value;
                return;
            case "balloon.available":
                BalloonAvailableKiB = value;
                return;
            case "balloon.unused":
                BalloonUnusedKiB = value;
                return;
        }

        if (Indexed(field, "vcpu.", out var index, out var rest))
        {
            if (rest == "time")
            {
                Vcpu(index).TimeNs = value;
            }
        }
        else if (Indexed(field, "block.", out index, out rest))
        {
            var disk = Disk(index);
            switch (rest)
            {
                case "rd.reqs": disk.ReadRequests = value; break;
                case "rd.bytes": disk.ReadBytes = value; break;
                case "wr.reqs": disk.WriteRequests = value; break;
                case "wr.bytes": disk.WriteBytes = value; break;
                case "errors": disk.Errors = value; break;
            }
        }
        else if (Indexed(field, "net.", out index, out rest))
        {
            var nic = Interface(index);
            switch (rest)
            {
                case "rx.bytes": nic.RxBytes = value; break;
                case "rx.pkts": nic.RxPackets = value; break;
                case "rx.drop": nic.RxDrops = value; break;
                case "tx.bytes": nic.TxBytes = value; break;
                case "tx.pkts": nic.TxPackets = value; break;
                case "tx.drop": nic.TxDrops = value; break;
            }
        }
    }

    /// <summary>"block.3.rd.bytes" with prefix "block." → 3 and "rd.bytes"; false for "block.count".</summary>
    private static bool Indexed(string field, string prefix, out int index, out string rest)
    {
        index = 0;
        rest = string.Empty;
        if (!field.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var dot = field.IndexOf('.', prefix.Length);
        if (dot < 0 || !int.TryParse(field.AsSpan(prefix.Length, dot - prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out index))
        {
            return false;
        }

        rest = field[(dot + 1)..];
        return true;
    }

    private GuestVcpuStats Vcpu(int index) => vcpus.TryGetValue(index, out var v) ? v : vcpus[index] = new GuestVcpuStats(index);

    private GuestDiskStats Disk(int index) => disks.TryGetValue(index, out var d) ? d : disks[index] = new GuestDiskStats();

    private GuestInterfaceStats Interface(int index) => interfaces.TryGetValue(index, out var n) ? n : interfaces[index] = new GuestInterfaceStats();
}

/// <summary>vcpu.N: one virtual CPU's time in nanoseconds.</summary>
public sealed class GuestVcpuStats(int index)
{
    public int Index { get; } = index;

    public ulong? TimeNs { get; internal set; }
}

/// <summary>block.N: one disk by its target name (vda, sda); errors only where the driver counts them.</summary>
public sealed class GuestDiskStats
{
    public string Name { get; internal set; } = string.Empty;

    public ulong? ReadRequests { get; internal set; }

    public ulong? ReadBytes { get; internal set; }

    public ulong? WriteRequests { get; internal set; }

    public ulong? WriteBytes { get; internal set; }

    public ulong? Errors { get; internal set; }
}

/// <summary>net.N: one interface by its host-side device name (vnet0, tap…).</summary>
public sealed class GuestInterfaceStats
{
    public string Name { get; internal set; } = string.Empty;

    public ulong? RxBytes { get; internal set; }

    public ulong? RxPackets { get; internal set; }

    public ulong? RxDrops { get; internal set; }

    public ulong? TxBytes { get; internal set; }

    public ulong? TxPackets { get; internal set; }

    public ulong? TxDrops { get; internal set; }
}
