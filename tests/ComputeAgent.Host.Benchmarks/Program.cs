using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Xml.Linq;
using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;

// The agent's own cost per operation (issue 5 item 6), end to end: the real agent process on
// libvirt's test:///default (no guest boots: what is measured is the agent, not QEMU), a real
// HTTP image service, the gRPC client over the Unix socket. Each agent figure is set against the
// same libvirt calls made directly in this process.
if (args is ["--controller", ..])
{
    // dotnet run -- --controller [INSTANCES] [ROUNDS]: the controller link's throughput and latency.
    return await ComputeAgent.Host.Benchmarks.ControllerLinkBenchmark.RunAsync(
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 25);
}

if (args is ["--metrics", ..])
{
    // dotnet run -- --metrics [INSTANCES] [SCRAPES]: one GET /metrics with that many instances.
    return await ComputeAgent.Host.Benchmarks.MetricsScrapeBenchmark.RunAsync(
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1000,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 50);
}

if (args is ["--footprint", ..])
{
    // dotnet run -- --footprint [COUNTS] [TOP]: RSS and managed heap per instance at each count (default 1000,5000).
    return await ComputeAgent.Host.Benchmarks.FootprintBenchmark.RunAsync(
        (args.Length > 1 ? args[1] : "1000,5000").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToList(),
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 12);
}

var instances = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1000;
var guest = await TestGuest.LoadOrBuildAsync();
var scratch = RepositoryPaths.CreateScratch("agent-bench");
await using var images = await ImageService.StartAsync(guest, scratch);
await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
{
    ["LibvirtUri"] = "test:///default",
    ["ImageServiceUrl"] = images.Url,
    ["MaxConcurrentBuilds"] = "20",
}, scratch);
var client = agent.Client;
var rows = new List<string>();
var watchLatencies = new ConcurrentBag<double>();
var watchUnderLoad = new ConcurrentBag<double>();
var quietPhase = false;
var active = new ConcurrentDictionary<string, TaskCompletionSource<InstanceEvent>>();
var states = new ConcurrentDictionary<(string, VmState), TaskCompletionSource>();
using var stop = new CancellationTokenSource();
var watcher = Task.Run(async () =>
{
    using var watch = client.WatchInstances(new WatchInstancesRequest(), cancellationToken: stop.Token);
    try
    {
        while (await watch.ResponseStream.MoveNext(stop.Token))
        {
            var e = watch.ResponseStream.Current;
            (Volatile.Read(ref quietPhase) ? watchLatencies : watchUnderLoad).Add((DateTime.UtcNow - e.Time.ToDateTime()).TotalMilliseconds);
            if (e.TaskState == TaskState.None && states.TryRemove((e.InstanceUuid, e.VmState), out var waiter))
            {
                waiter.TrySetResult();
            }
            else if (e.VmState == VmState.Error && states.TryRemove((e.InstanceUuid, VmState.Active), out var failed))
            {
                var fault = (await client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = e.InstanceUuid })).Fault;
                failed.TrySetException(new InvalidOperationException($"{e.InstanceUuid} went to ERROR: {fault?.Message}"));
            }
        }
    }
    catch (Exception) when (stop.IsCancellationRequested)
    {
    }
});

Task Reach(string uuid, VmState state) => states.GetOrAdd((uuid, state), _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task.WaitAsync(TimeSpan.FromSeconds(30));

async Task<double> SpawnAsync()
{
    var uuid = Guid.NewGuid().ToString();
    var done = Reach(uuid, VmState.Active);
    var start = Stopwatch.GetTimestamp();
    await client.SpawnAsync(new SpawnRequest
    {
        InstanceUuid = uuid,
        Name = "bench",
        Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 64, RootGib = 1 },
        ImageId = images.ImageId,
        ProjectId = "bench",
        UserId = "bench",
    });
    try
    {
        await done;
    }
    catch (TimeoutException)
    {
        var now = await client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid });
        throw new TimeoutException($"{uuid} is {now.VmState}/{now.TaskState}/{now.PowerState} ({now.Fault?.Message}); watcher: {watcher.Status} {watcher.Exception?.InnerException?.Message}");
    }

    return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
}

var rssIdle = Rss(agent);

// Spawn from a cached image, one at a time, against qemu-img create + define + start directly.
await SpawnAsync(); // caches the image
var spawnAgent = new List<double>();
for (var i = 0; i < 20; i++)
{
    spawnAgent.Add(await SpawnAsync());
}

using var direct = LibvirtConnection.Open("test:///default");
var spawnDirect = new List<double>();
for (var i = 0; i < 20; i++)
{
    var uuid = Guid.NewGuid();
    var overlay = Path.Combine(scratch, $"direct-{uuid}.qcow2");
    var start = Stopwatch.GetTimestamp();
    (await ProcessRunner.RunAsync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", guest.Disk, overlay, "1G"], TimeSpan.FromSeconds(30))).EnsureSuccess("qemu-img");
    using var domain = direct.DefineXml(DirectXml(uuid, overlay));
    domain.Create();
    spawnDirect.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
}

rows.Add(Row("spawn (cached image), call to ACTIVE", spawnAgent, spawnDirect));

// Pause / unpause round trips against virDomainSuspend / virDomainResume.
var target = Guid.NewGuid().ToString();
await client.SpawnAsync(new SpawnRequest { InstanceUuid = target, Name = "pause", Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 64, RootGib = 1 }, ImageId = images.ImageId, ProjectId = "bench", UserId = "bench" });
await Reach(target, VmState.Active);
Volatile.Write(ref quietPhase, true);
var pauseAgent = new List<double>();
var unpauseAgent = new List<double>();
for (var i = 0; i < 200; i++)
{
    var paused = Reach(target, VmState.Paused);
    var start = Stopwatch.GetTimestamp();
    await client.PauseAsync(new InstanceRequest { InstanceUuid = target });
    await paused;
    pauseAgent.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    var resumed = Reach(target, VmState.Active);
    start = Stopwatch.GetTimestamp();
    await client.UnpauseAsync(new InstanceRequest { InstanceUuid = target });
    await resumed;
    unpauseAgent.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
}

Volatile.Write(ref quietPhase, false);
using var directDomain = direct.LookupByName("test");
var suspendDirect = new List<double>();
var resumeDirect = new List<double>();
for (var i = 0; i < 200; i++)
{
    var start = Stopwatch.GetTimestamp();
    directDomain.Suspend();
    suspendDirect.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    start = Stopwatch.GetTimestamp();
    directDomain.Resume();
    resumeDirect.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
}

rows.Add(Row("pause, call to PAUSED", pauseAgent, suspendDirect));
rows.Add(Row("unpause, call to ACTIVE", unpauseAgent, resumeDirect));

// 50 concurrent spawns.
var clock = Stopwatch.StartNew();
var concurrent = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => SpawnAsync()));
var concurrentSeconds = clock.Elapsed.TotalSeconds;

// KubeVirt's density shape: 100 spawns 100 ms apart, creation to ACTIVE.
var density = new List<Task<double>>();
for (var i = 0; i < 100; i++)
{
    density.Add(SpawnAsync());
    await Task.Delay(100);
}

var densityMs = (await Task.WhenAll(density)).ToList();

// Fill up to the requested count, then the agent's memory with that many instances.
var have = (await client.GetHostAsync(new GetHostRequest())).InstanceCount;
for (var left = instances - have; left > 0; left -= 20)
{
    await Task.WhenAll(Enumerable.Range(0, Math.Min(20, left)).Select(_ => SpawnAsync()));
}

var count = (await client.GetHostAsync(new GetHostRequest())).InstanceCount;
var rssFull = Rss(agent);
await stop.CancelAsync();
await watcher;

Console.WriteLine($"{"operation",-40} {"agent p50",10} {"agent p95",10} {"direct p50",11} {"overhead p50",13}");
rows.ForEach(Console.WriteLine);
Console.WriteLine($"50 concurrent spawns: {concurrent.Length} ACTIVE, 0 errors, {50 / concurrentSeconds:F1} spawns/s, call to ACTIVE p50 {P(concurrent, 0.5):F1} ms, p95 {P(concurrent, 0.95):F1} ms");
Console.WriteLine($"100 spawns 100 ms apart: creation to ACTIVE p50 {P(densityMs, 0.5):F1} ms, p95 {P(densityMs, 0.95):F1} ms");
Console.WriteLine($"WatchInstances delivery (commit to client), pause/unpause phase, {watchLatencies.Count} events: p50 {P(watchLatencies, 0.5):F2} ms, p99 {P(watchLatencies, 0.99):F2} ms");
Console.WriteLine($"WatchInstances delivery under spawn load (20-50 spawns at once), {watchUnderLoad.Count} events: p50 {P(watchUnderLoad, 0.5):F2} ms, p99 {P(watchUnderLoad, 0.99):F2} ms");
Console.WriteLine($"agent RSS: {rssIdle / 1024} MiB idle, {rssFull / 1024} MiB with {count} instances");
Directory.Delete(scratch, recursive: true);
return 0;

static double P(IEnumerable<double> values, double q) => ComputeAgent.Host.Benchmarks.ControllerLinkBenchmark.P(values, q);

static string Row(string name, List<double> agent, List<double> direct) =>
    string.Create(CultureInfo.InvariantCulture, $"{name,-40} {P(agent, 0.5),8:F2}ms {P(agent, 0.95),8:F2}ms {P(direct, 0.5),9:F4}ms {P(agent, 0.5) - P(direct, 0.5),11:F2}ms");

static long Rss(AgentProcess agent) => ComputeAgent.Host.Benchmarks.FootprintBenchmark.RssKib(agent.ProcessId);

static string DirectXml(Guid uuid, string disk) =>
    new XElement("domain", new XAttribute("type", "qemu"),
        new XElement("name", $"direct-{uuid}"),
        new XElement("uuid", uuid),
        new XElement("memory", new XAttribute("unit", "MiB"), 64),
        new XElement("vcpu", 1),
        new XElement("os", new XElement("type", "hvm")),
        new XElement("devices",
            new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
                new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", "qcow2")),
                new XElement("source", new XAttribute("file", disk)),
                new XElement("target", new XAttribute("dev", "vda"), new XAttribute("bus", "virtio"))))).ToString();
