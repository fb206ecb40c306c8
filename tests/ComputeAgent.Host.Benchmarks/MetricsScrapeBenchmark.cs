using System.Diagnostics;
using System.Globalization;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;

namespace ComputeAgent.Host.Benchmarks;

/// <summary>
/// GET /metrics (issue 15 item 1) with 1,000 instances on test:///default: the real agent
/// process, a scrape over HTTP as Prometheus makes it, timed end to end. Target: at most 50 ms
/// and one libvirt call per scrape, counted by the agent's own
/// compute_agent_libvirt_call_duration_seconds_count{call="virConnectGetAllDomainStats"}.
/// </summary>
public static class MetricsScrapeBenchmark
{
    private const string BulkCall = "virConnectGetAllDomainStats";

    public static async Task<int> RunAsync(int instances, int scrapes)
    {
        var guest = await TestGuest.LoadOrBuildAsync();
        var scratch = RepositoryPaths.CreateScratch("metrics-bench");
        var port = TestController.FreePort();
        await using var images = await ImageService.StartAsync(guest, scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
            ["MaxConcurrentBuilds"] = "20",
            ["MetricsListen"] = $"127.0.0.1:{port}",

            // Only the scrapes make the bulk call while they are counted.
            ["ReconcileIntervalSeconds"] = "86400",
        }, scratch);
        await FootprintBenchmark.SpawnManyAsync(agent.Client, images.ImageId, instances);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var warm = PrometheusText.Parse(await http.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
        var callsBefore = warm.Value("compute_agent_libvirt_call_duration_seconds_count", ("call", BulkCall));
        var times = new List<double>();
        var bytes = 0;
        for (var i = 0; i < scrapes; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var body = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            bytes = body.Length;
        }

        var last = PrometheusText.Parse(await http.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
        var calls = last.Value("compute_agent_libvirt_call_duration_seconds_count", ("call", BulkCall)) - callsBefore;
        var instancesSeen = last.Series("compute_agent_instances").Sum(s => s.Value);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"GET /metrics with {instancesSeen} instances on test:///default, {scrapes} scrapes of {bytes / 1024} KiB: p50 {ControllerLinkBenchmark.P(times, 0.5):F2} ms, p95 {ControllerLinkBenchmark.P(times, 0.95):F2} ms, max {times.Max():F2} ms"));
        var callSeconds = last.Value("compute_agent_libvirt_call_duration_seconds_sum", ("call", BulkCall)) - warm.Value("compute_agent_libvirt_call_duration_seconds_sum", ("call", BulkCall));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{BulkCall} calls: {calls} for {scrapes + 1} scrapes ({calls / (scrapes + 1):F2} per scrape), {callSeconds * 1000 / calls:F2} ms each on average"));
        Directory.Delete(scratch, recursive: true);
        return calls == scrapes + 1 ? 0 : 1;
    }
}
