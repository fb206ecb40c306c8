using System.Globalization;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>
/// The raw side of the agent's memory per instance on test:///default: libvirt's test driver runs
/// inside whichever process opens it, so the agent's RSS there includes the domains' definitions.
/// This process defines the same number of domains from the agent's own XML (the builder's, for a
/// typical instance; half started, as the agent's benchmark leaves them) and reports its RSS growth.
/// </summary>
internal static class RawHold
{
    public static int Run(int domains)
    {
        using var connection = LibvirtConnection.Open(EngineScale.Uri);
        var builder = new DomainXmlBuilder(Samples.Host);
        var uuids = Enumerable.Range(0, domains).Select(_ => Guid.NewGuid()).ToList();

        // One define and undefine first: libvirt's and the wrapper's one-off allocations are not per domain.
        using (var warm = connection.DefineXml(builder.Build(Samples.Typical(Guid.NewGuid()))))
        {
            warm.Undefine();
        }

        GC.Collect();
        var before = Rss();
        for (var i = 0; i < domains; i++)
        {
            using var domain = connection.DefineXml(builder.Build(Samples.Typical(uuids[i])));
            if (i % 2 == 0)
            {
                domain.Create();
            }
        }

        GC.Collect();
        var after = Rss();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"raw libvirt holding {domains} domains (the agent's typical domain XML, test:///default in-process): RSS +{(after - before) / 1024.0:F1} MiB ({(after - before) / (double)domains:F1} KiB per domain)"));
        foreach (var uuid in uuids)
        {
            using var domain = connection.LookupByUuid(uuid);
            if (domain.IsActive)
            {
                domain.Destroy();
            }

            domain.Undefine();
        }

        return 0;
    }

    private static long Rss() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
}
