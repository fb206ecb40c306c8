using System.Globalization;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.DomainXml;

/// <summary>
/// Nova's guest CPU topology rules (hardware.py): the image may narrow the flavor's maximums and
/// replace its preferences, never widen them; among the topologies whose product is the vCPU count,
/// the one matching the most preferred values wins, ties broken towards more sockets × cores and
/// fewer threads.
/// </summary>
internal static class CpuTopologySelection
{
    // Nova's "no limit".
    private const int Unlimited = 65536;

    public static CpuTopology Select(int vcpus, CpuTopologyRequest flavor, CpuTopologyRequest image)
    {
        var maxSockets = Max("sockets", flavor.MaxSockets, image.MaxSockets);
        var maxCores = Max("cores", flavor.MaxCores, image.MaxCores);
        var maxThreads = Max("threads", flavor.MaxThreads, image.MaxThreads);

        CpuTopologyRequest preferred;
        string source;
        if (image.HasPreference)
        {
            preferred = image;
            source = "image.properties[hw_cpu_{0}]";
        }
        else
        {
            preferred = flavor;
            source = "flavor.extra_specs[hw:cpu_{0}]";
        }

        CheckPreferred(source, "sockets", preferred.Sockets, maxSockets);
        CheckPreferred(source, "cores", preferred.Cores, maxCores);
        CheckPreferred(source, "threads", preferred.Threads, maxThreads);

        CpuTopology? best = null;
        var bestKey = (Matches: -1, SocketsTimesCores: 0, Sockets: 0, Threads: 0);
        for (var s = 1; s <= Math.Min(maxSockets, vcpus); s++)
        {
            if (vcpus % s != 0)
            {
                continue;
            }

            for (var c = 1; c <= Math.Min(maxCores, vcpus / s); c++)
            {
                if (vcpus / s % c != 0)
                {
                    continue;
                }

                var t = vcpus / s / c;
                if (t > maxThreads)
                {
                    continue;
                }

                var matches = (preferred.Sockets == s ? 1 : 0) + (preferred.Cores == c ? 1 : 0) + (preferred.Threads == t ? 1 : 0);

                // Fewer threads is better (Nova sorts by sockets*cores, sockets, then threads, descending).
                var key = (matches, s * c, s, -t);
                if (best is null || key.CompareTo(bestKey) > 0)
                {
                    best = new CpuTopology(s, c, t);
                    bestKey = key;
                }
            }
        }

        return best ?? throw new InvalidInstanceSpecException(
            "flavor.vcpus",
            vcpus.ToString(CultureInfo.InvariantCulture),
            $"a count that is sockets × cores × threads within the maximums (sockets ≤ {maxSockets}, cores ≤ {maxCores}, threads ≤ {maxThreads})");

        int Max(string what, int? flavorMax, int? imageMax)
        {
            var f = flavorMax ?? Unlimited;
            if (imageMax is { } i && i > f)
            {
                throw new InvalidInstanceSpecException($"image.properties[hw_cpu_max_{what}]", i.ToString(CultureInfo.InvariantCulture), $"at most the flavor's hw:cpu_max_{what} ({f})");
            }

            return imageMax ?? f;
        }
    }

    private static void CheckPreferred(string source, string what, int? value, int max)
    {
        if (value > max)
        {
            throw new InvalidInstanceSpecException(string.Format(CultureInfo.InvariantCulture, source, what), value.Value.ToString(CultureInfo.InvariantCulture), $"at most hw_cpu_max_{what} ({max})");
        }
    }
}
