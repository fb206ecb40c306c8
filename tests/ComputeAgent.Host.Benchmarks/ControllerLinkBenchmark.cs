using System.Diagnostics;
using System.Globalization;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;

namespace ComputeAgent.Host.Benchmarks;

/// <summary>
/// The controller link (issue 6 item 5): the real agent on test:///default reporting to the test
/// controller over mutual TLS on loopback. (1) Throughput: a backlog of state changes piled up
/// while the controller was away, delivered and acknowledged once it is back, and the rate while
/// many instances change at once. (2) Latency: from the change's commit (its event-log timestamp,
/// written right after libvirt answered) and from the client's call, to the controller's receipt.
/// </summary>
public static class ControllerLinkBenchmark
{
    public static async Task<int> RunAsync(int instances, int rounds)
    {
        var guest = await TestGuest.LoadOrBuildAsync();
        var scratch = RepositoryPaths.CreateScratch("link-bench");
        var site = ControllerSite.Create(scratch);
        var ledger = site.Ledger;
        await using var images = await ImageService.StartAsync(guest, scratch);
        await using var agent = await AgentProcess.StartAsync(site.AgentSettings(site.Port, 0.01, new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
            ["MaxConcurrentBuilds"] = "20",
        }), scratch);
        var client = agent.Client;

        // The controller is away: spawn, then pause / unpause every instance, all at once.
        var uuids = Enumerable.Range(0, instances).Select(_ => Guid.NewGuid().ToString()).ToList();
        await Parallel.ForEachAsync(uuids, new ParallelOptions { MaxDegreeOfParallelism = 20 }, async (uuid, ct) =>
        {
            await client.SpawnAsync(new SpawnRequest
            {
                InstanceUuid = uuid,
                Name = "bench",
                ProjectId = "p",
                UserId = "u",
                ImageId = images.ImageId,
                Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 64, RootGib = 1 },
            }, cancellationToken: ct);
            await client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(120), cancellationToken: ct);
        });
        var churn = Stopwatch.StartNew();
        await ChurnAsync(client, uuids, rounds);
        churn.Stop();
        var backlog = await LastSequenceAsync(client);

        var start = Stopwatch.StartNew();
        await using (var controller = await site.StartAsync())
        {
            await ledger.WaitForAsync(l => l.Highest >= backlog, TimeSpan.FromMinutes(5), "the backlog");
            var received = start.Elapsed;
            var ackFile = Path.Combine(scratch, "state", "controller-ack");
            while (!File.Exists(ackFile) || long.Parse(await File.ReadAllTextAsync(ackFile), CultureInfo.InvariantCulture) < backlog)
            {
                await Task.Delay(5);
            }

            var acknowledged = start.Elapsed;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"backlog of {backlog} changes (made at {backlog / churn.Elapsed.TotalSeconds:F0}/s with the controller away), from the controller's start: all received in {received.TotalSeconds:F2} s, the last ack on the agent's disk at {acknowledged.TotalSeconds:F2} s: {backlog / acknowledged.TotalSeconds:F0} changes/s acknowledged, {ledger.Duplicates} duplicates"));

            // Live, many instances at once: every change's commit-to-receipt delay.
            // A WatchInstances client alongside: the same delay for the agent's own API, to compare.
            var liveFrom = ledger.Highest;
            using var watching = new CancellationTokenSource();
            var watchDelays = new List<double>();
            var watcher = WatchAsync(client, watchDelays, watching.Token);
            var live = Stopwatch.StartNew();
            await ChurnAsync(client, uuids, rounds);
            var liveLast = await LastSequenceAsync(client);
            await ledger.WaitForAsync(l => l.Highest >= liveLast, TimeSpan.FromMinutes(5), "the live changes");
            live.Stop();
            await watching.CancelAsync();
            await watcher;
            var loaded = await LatenciesAsync(client, ledger, liveFrom, liveLast);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"live, {instances} instances pausing / unpausing at once: {liveLast - liveFrom} changes in {live.Elapsed.TotalSeconds:F2} s ({(liveLast - liveFrom) / live.Elapsed.TotalSeconds:F0}/s, the agent's own pace), commit to controller receipt p50 {P(loaded, 0.5):F2} ms, p99 {P(loaded, 0.99):F2} ms; WatchInstances alongside: p50 {P(watchDelays, 0.5):F2} ms, p99 {P(watchDelays, 0.99):F2} ms"));

            // Quiet: one instance, one command at a time; the client's call to the controller's receipt of "done".
            var uuid = uuids[0];
            var calls = new List<double>();
            var quietFrom = ledger.Highest;
            for (var i = 0; i < 250; i++)
            {
                foreach (var (command, state) in new (Func<InstanceRequest, Task>, VmState)[]
                {
                    (r => client.PauseAsync(r).ResponseAsync, VmState.Paused),
                    (r => client.UnpauseAsync(r).ResponseAsync, VmState.Active),
                })
                {
                    var before = ledger.Highest;
                    var called = DateTime.UtcNow;
                    await command(new InstanceRequest { InstanceUuid = uuid });
                    await ledger.WaitForAsync(l => l.Highest >= before + 2, TimeSpan.FromSeconds(30), "the command's two changes");
                    calls.Add((ledger.ReceivedAt(before + 2)!.Value - called).TotalMilliseconds);
                }
            }

            var quiet = await LatenciesAsync(client, ledger, quietFrom, ledger.Highest);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"quiet, one command at a time, {quiet.Count} changes: commit to controller receipt p50 {P(quiet, 0.5):F2} ms, p99 {P(quiet, 0.99):F2} ms; pause / unpause call to the controller's receipt of its end p50 {P(calls, 0.5):F2} ms, p99 {P(calls, 0.99):F2} ms"));
        }

        // What the agent logged about its link (the controller was away at first, then came).
        var lines = agent.Output.Split('\n').Select(l => l.Trim()).ToList();
        foreach (var line in new[] { "Controller link down", "Controller link up" }.Select(m => lines.FirstOrDefault(l => l.StartsWith(m, StringComparison.Ordinal))).OfType<string>())
        {
            Console.WriteLine("agent log: " + line);
        }

        Directory.Delete(scratch, recursive: true);
        return 0;
    }

    private static async Task ChurnAsync(Api.V1.ComputeAgent.ComputeAgentClient client, List<string> uuids, int rounds) =>
        await Parallel.ForEachAsync(uuids, new ParallelOptions { MaxDegreeOfParallelism = 50 }, async (uuid, ct) =>
        {
            var request = new InstanceRequest { InstanceUuid = uuid };
            for (var i = 0; i < rounds; i++)
            {
                await client.PauseAsync(request, cancellationToken: ct);
                await client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Paused }, deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: ct);
                await client.UnpauseAsync(request, cancellationToken: ct);
                await client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: ct);
            }
        });

    /// <summary>Receipt minus commit for every change in (from, to]: the event's time is the agent's commit clock, the same host's.</summary>
    private static async Task<List<double>> LatenciesAsync(Api.V1.ComputeAgent.ComputeAgentClient client, ControllerLedger ledger, long from, long to)
    {
        var latencies = new List<double>();
        using var watch = client.WatchInstances(new WatchInstancesRequest { AfterSequence = from });
        while (await watch.ResponseStream.MoveNext(CancellationToken.None))
        {
            var e = watch.ResponseStream.Current;
            latencies.Add((ledger.ReceivedAt(e.Sequence)!.Value - e.Time.ToDateTime()).TotalMilliseconds);
            if (e.Sequence >= to)
            {
                break;
            }
        }

        return latencies;
    }

    private static async Task WatchAsync(Api.V1.ComputeAgent.ComputeAgentClient client, List<double> delays, CancellationToken cancellationToken)
    {
        using var watch = client.WatchInstances(new WatchInstancesRequest(), cancellationToken: cancellationToken);
        try
        {
            while (await watch.ResponseStream.MoveNext(cancellationToken))
            {
                delays.Add((DateTime.UtcNow - watch.ResponseStream.Current.Time.ToDateTime()).TotalMilliseconds);
            }
        }
        catch (Grpc.Core.RpcException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private static async Task<long> LastSequenceAsync(Api.V1.ComputeAgent.ComputeAgentClient client)
    {
        using var watch = client.WatchInstances(new WatchInstancesRequest { Snapshot = true }, deadline: DateTime.UtcNow.AddSeconds(10));
        return await watch.ResponseStream.MoveNext(CancellationToken.None) ? watch.ResponseStream.Current.Sequence : 0;
    }

    /// <summary>The q-quantile (nearest rank).</summary>
    public static double P(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToList();
        return sorted[(int)Math.Clamp(Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
    }
}
