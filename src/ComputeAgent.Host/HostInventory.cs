using System.Globalization;
using System.Xml.Linq;
using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using Google.Protobuf.WellKnownTypes;
using States = ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Host;

/// <summary>What the host has and what its instances claim: GetHost's answer and the controller's HostReport.</summary>
public sealed class HostInventory(AgentRuntime runtime)
{
    public async Task<Api.V1.Host> ReadHostAsync(CancellationToken cancellationToken) =>
        (await ReadAsync(withCells: false, cancellationToken).ConfigureAwait(false)).Host;

    public Task<HostReport> ReadReportAsync(CancellationToken cancellationToken) => ReadAsync(withCells: true, cancellationToken);

    private async Task<HostReport> ReadAsync(bool withCells, CancellationToken cancellationToken)
    {
        var engine = runtime.Engine ?? throw new AgentNotReadyException();
        var session = runtime.Session ?? throw new AgentNotReadyException();
        var connection = await session.GetConnectionAsync(cancellationToken).ConfigureAwait(false);
        var report = await Task.Run(
            () =>
            {
                var node = connection.GetNodeInfo();
                var disk = new DriveInfo(runtime.Options.InstancesDirectory);
                var report = new HostReport
                {
                    Host = new Api.V1.Host
                    {
                        Hostname = connection.GetHostname(),
                        HypervisorType = engine.Driver.Host.VirtType.ToString().ToUpperInvariant(),
                        HypervisorVersion = LibvirtConnection.FormatVersion(connection.GetHypervisorVersion()),
                        LibvirtVersion = LibvirtConnection.FormatVersion(connection.GetLibVersion()),
                        CpuModel = node.CpuModel,
                        Cpus = node.Cpus,
                        Sockets = node.Sockets,
                        CoresPerSocket = node.Cores,
                        ThreadsPerCore = node.Threads,
                        NumaNodes = node.NumaNodes,
                        MemoryMib = (long)(node.MemoryKiB / 1024),
                        FreeMemoryMib = (long)(connection.GetFreeMemory() / 1024 / 1024),
                        InstancesDiskFreeGib = disk.AvailableFreeSpace / 1024 / 1024 / 1024,
                        InstancesDiskTotalGib = disk.TotalSize / 1024 / 1024 / 1024,
                    },
                    DiskTotalGib = disk.TotalSize / 1024 / 1024 / 1024,
                    DiskFreeGib = disk.AvailableFreeSpace / 1024 / 1024 / 1024,
                };
                report.DiskUsedGib = report.DiskTotalGib - report.DiskFreeGib;
                if (withCells)
                {
                    report.NumaCells.AddRange(NumaCells(connection.GetCapabilities()));
                }

                return report;
            },
            cancellationToken).ConfigureAwait(false);

        var host = report.Host;
        var instances = engine.List();
        host.InstanceCount = instances.Count;
        foreach (var group in instances.GroupBy(r => r.VmState.ToApi().ToString()))
        {
            host.InstancesByVmState[group.Key] = group.Count();
        }

        var claiming = instances.Where(r => r.VmState != States.VmState.Deleted).ToList();
        report.InstanceCount = host.InstanceCount;
        report.VcpusTotal = host.Cpus;
        report.VcpusUsed = claiming.Sum(r => r.Spec.Flavor.Vcpus);
        report.VcpusFree = Math.Max(0, report.VcpusTotal - report.VcpusUsed);
        report.MemoryTotalMib = host.MemoryMib;
        report.MemoryUsedMib = claiming.Sum(r => (long)r.Spec.Flavor.RamMiB);
        report.MemoryFreeMib = host.FreeMemoryMib;
        report.Time = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow);
        return report;
    }

    /// <summary>The cells of libvirt's capabilities XML (host/topology/cells/cell).</summary>
    internal static IEnumerable<NumaCell> NumaCells(string capabilitiesXml) =>
        XDocument.Parse(capabilitiesXml).Descendants("topology").Elements("cells").Elements("cell").Select(cell => new NumaCell
        {
            Id = int.Parse(cell.Attribute("id")?.Value ?? "0", CultureInfo.InvariantCulture),
            Cpus = int.Parse(cell.Element("cpus")?.Attribute("num")?.Value ?? "0", CultureInfo.InvariantCulture),
            MemoryMib = MiB(cell.Element("memory")),
        });

    private static long MiB(XElement? memory)
    {
        if (memory is null)
        {
            return 0;
        }

        var value = long.Parse(memory.Value, CultureInfo.InvariantCulture);
        return (memory.Attribute("unit")?.Value ?? "KiB") switch
        {
            "bytes" or "b" => value / 1024 / 1024,
            "MiB" => value,
            "GiB" => value * 1024,
            _ => value / 1024,
        };
    }
}
