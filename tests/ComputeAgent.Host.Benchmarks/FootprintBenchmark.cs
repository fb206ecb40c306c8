using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;

namespace ComputeAgent.Host.Benchmarks;

/// <summary>
/// The agent's memory per instance (issue 18 item 2): the real agent process on test:///default,
/// filled with spawned instances up to each count; at each, its RSS and its managed heap after a
/// full collection, as a heap snapshot (dotnet-gcdump) reports it, and the types that grew most.
/// </summary>
public static partial class FootprintBenchmark
{
    public static async Task<int> RunAsync(IReadOnlyList<int> counts, int topTypes)
    {
        var gcdump = GcDumpTool();
        var guest = await TestGuest.LoadOrBuildAsync();
        var scratch = RepositoryPaths.CreateScratch("footprint-bench");
        var dumps = Path.Combine(Path.GetTempPath(), "compute-agent-footprint");
        await using var images = await ImageService.StartAsync(guest, scratch);
        var ready = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            ready.Add(await StartToReadyAsync(images.Url));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"start to READY (process start to gRPC health SERVING, test:///default), 5 starts: median {ControllerLinkBenchmark.P(ready, 0.5):F0} ms, max {ready.Max():F0} ms"));
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
            ["MaxConcurrentBuilds"] = "20",
        }, scratch);

        await Task.Delay(TimeSpan.FromSeconds(5));
        var idle = await SnapshotAsync(agent, gcdump, dumps, 0);
        // Per instance against idle (what a host with that many costs) and against the previous count
        // (the marginal cost, without the one-off warm-up of the first spawns: code, caches, pools).
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"instances",9} {"RSS MiB",8} {"heap MiB",9} {"heap B/inst",12} {"RSS KiB/inst",13} {"marginal heap B/inst",21} {"marginal RSS KiB/inst",22}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{0,9} {idle.RssKib / 1024.0,8:F1} {idle.HeapBytes / 1048576.0,9:F1} {"-",12} {"-",13} {"-",21} {"-",22}"));
        var (previous, previousCount) = (idle, 0);
        foreach (var count in counts)
        {
            await SpawnManyAsync(agent.Client, images.ImageId, count - previousCount);
            await Task.Delay(TimeSpan.FromSeconds(5));
            var full = await SnapshotAsync(agent, gcdump, dumps, count);
            var added = count - previousCount;
            var marginal = previousCount == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{(full.HeapBytes - previous.HeapBytes) / added:N0}");
            var marginalRss = previousCount == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{(full.RssKib - previous.RssKib) / (double)added:F1}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{count,9} {full.RssKib / 1024.0,8:F1} {full.HeapBytes / 1048576.0,9:F1} {(full.HeapBytes - idle.HeapBytes) / count,12:N0} {(full.RssKib - idle.RssKib) / (double)count,13:F1} {marginal,21} {marginalRss,22}"));
            (previous, previousCount) = (full, count);
            foreach (var (type, bytes) in full.Types
                .Select(t => (t.Key, Grown: t.Value - idle.Types.GetValueOrDefault(t.Key)))
                .OrderByDescending(t => t.Grown)
                .Take(topTypes))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    {bytes / (double)count,10:F0} B/instance  {type}"));
            }
        }

        Console.WriteLine($"heap snapshots: {dumps}/agent-COUNT.gcdump (dotnet-gcdump report FILE, or PerfView)");
        Directory.Delete(scratch, recursive: true);
        return 0;
    }

    /// <summary>From the agent's process start to its first health answer SERVING, polled every 5 ms; then it is stopped.</summary>
    private static async Task<double> StartToReadyAsync(string imageServiceUrl)
    {
        var scratch = RepositoryPaths.CreateScratch("ready-bench");
        var start = Stopwatch.GetTimestamp();
        await using (var agent = AgentProcess.Begin(new Dictionary<string, string> { ["LibvirtUri"] = "test:///default", ["ImageServiceUrl"] = imageServiceUrl }, scratch))
        {
            var health = new Grpc.Health.V1.Health.HealthClient(agent.Channel);
            while (true)
            {
                try
                {
                    if ((await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(2))).Status == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving)
                    {
                        break;
                    }
                }
                catch (Grpc.Core.RpcException) when (Stopwatch.GetElapsedTime(start) < TimeSpan.FromSeconds(60))
                {
                }

                await Task.Delay(5);
            }
        }

        var elapsed = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        Directory.Delete(scratch, recursive: true);
        return elapsed;
    }

    /// <summary>Spawns this many instances from the cached image, 20 at a time, each waited to ACTIVE.</summary>
    public static Task SpawnManyAsync(Api.V1.ComputeAgent.ComputeAgentClient client, string imageId, int count) =>
        Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 20 }, async (i, ct) =>
        {
            var uuid = Guid.NewGuid().ToString();
            await client.SpawnAsync(new SpawnRequest
            {
                InstanceUuid = uuid,
                Name = "bench",
                ProjectId = "project-" + (i % 10).ToString(CultureInfo.InvariantCulture),
                UserId = "u",
                ImageId = imageId,
                Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 64, RootGib = 1 },
            }, cancellationToken: ct);
            await client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(300), cancellationToken: ct);
        });

    public static long RssKib(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    private sealed record Snapshot(long RssKib, long HeapBytes, Dictionary<string, long> Types);

    // dotnet-gcdump collect induces a full blocking collection first, so the heap is what is live.
    private static async Task<Snapshot> SnapshotAsync(AgentProcess agent, string gcdump, string scratch, int count)
    {
        var file = Path.Combine(scratch, $"agent-{count}.gcdump");
        Directory.CreateDirectory(scratch);
        var pid = agent.ProcessId.ToString(CultureInfo.InvariantCulture);
        (await ProcessRunner.RunAsync(gcdump, ["collect", "-p", pid, "-o", file], TimeSpan.FromMinutes(5))).EnsureSuccess("dotnet-gcdump collect");
        var rss = RssKib(agent.ProcessId);
        File.Copy($"/proc/{agent.ProcessId}/smaps", Path.Combine(scratch, $"agent-{count}.smaps"), overwrite: true);
        Console.Error.WriteLine($"footprint: {count} instances, RSS by mapping (KiB): {string.Join(", ", RssByMapping(agent.ProcessId).Select(m => $"{m.Key} {m.Value}"))}");
        var report = await ProcessRunner.RunAsync(gcdump, ["report", file], TimeSpan.FromMinutes(5));
        report.EnsureSuccess("dotnet-gcdump report");
        var types = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        foreach (Match row in ReportRow().Matches(report.StandardOutput))
        {
            // A row is the size of one object of the type and how many there are.
            var bytes = Number(row, "bytes") * (row.Groups["count"].Success ? Number(row, "count") : 1);
            var type = row.Groups["type"].Value.Trim();
            if (type == "GC Heap bytes")
            {
                total = bytes;
            }
            else if (type != "GC Heap objects" && !type.StartsWith("Total", StringComparison.Ordinal))
            {
                types[type] = types.GetValueOrDefault(type) + bytes;
            }
        }

        return new Snapshot(rss, total, types);
    }

    /// <summary>
    /// RSS split by what maps it: files (the runtime's and libraries' code), the GC's reservation
    /// (the one anonymous range of many GiB), malloc (the brk heap and glibc's arenas: anonymous
    /// ranges of whole 64 MiB blocks), other anonymous memory (thread stacks, JIT code, mmaps).
    /// </summary>
    public static Dictionary<string, long> RssByMapping(int pid)
    {
        // An anonymous range is split into mappings by protection (committed rw-p, reserved ---p): join the adjacent ones.
        var spans = new List<(string Name, long Start, long End, long Rss)>();
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 5 && fields[0].Contains('-', StringComparison.Ordinal) && !fields[0].EndsWith(':'))
            {
                var range = fields[0].Split('-');
                var (start, end) = (Convert.ToInt64(range[0], 16), Convert.ToInt64(range[1], 16));
                var name = fields.Length > 5 ? fields[5] : string.Empty;
                if (name.Length == 0 && spans.Count > 0 && spans[^1] is { Name.Length: 0, End: var last } && last == start)
                {
                    spans[^1] = spans[^1] with { End = end };
                }
                else
                {
                    spans.Add((name, start, end, 0));
                }
            }
            else if (spans.Count > 0 && fields is ["Rss:", var kib, "kB"])
            {
                spans[^1] = spans[^1] with { Rss = spans[^1].Rss + long.Parse(kib, CultureInfo.InvariantCulture) };
            }
        }

        const long Arena = 64L << 20;
        return spans
            .GroupBy(s => s.Name.StartsWith('/') ? "file"
                : s.Name == "[heap]" ? "malloc"
                : s.Name.Length > 0 ? "other-anon"
                : s.End - s.Start >= 16L << 30 ? "gc"
                : s.Start % Arena == 0 && (s.End - s.Start) % Arena == 0 ? "malloc"
                : "other-anon")
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Sum(s => s.Rss), StringComparer.Ordinal);
    }

    private static long Number(Match row, string group) =>
        long.Parse(row.Groups[group].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);

    // `dotnet-gcdump report` rows: "  bytes  count  type" (the first two with thousands separators),
    // after the two totals "  bytes  GC Heap bytes" and "  count  GC Heap objects".
    [GeneratedRegex(@"^\s*(?<bytes>[\d,]+)\s+(?:(?<count>[\d,]+)\s+)?(?<type>\S.*)$", RegexOptions.Multiline)]
    private static partial Regex ReportRow();

    private static string GcDumpTool() =>
        Environment.GetEnvironmentVariable("DOTNET_GCDUMP") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-gcdump");
}
