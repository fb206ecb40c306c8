using System.Globalization;
using System.Net;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// GET /metrics of the real agent process, read with the strict Prometheus text parser, on
/// libvirt's test:///default: the host's series after spawns, a pause and a failed command; the
/// listener off by default; under mutual TLS, a client without a certificate refused.
/// </summary>
public sealed class MetricsTests
{
    private const string GuestStatsCall = "virConnectGetAllDomainStats";

    [Fact]
    public async Task Metrics_count_the_instances_by_state_the_commands_started_and_failed_and_one_bulk_call_per_scrape()
    {
        var scratch = RepositoryPaths.CreateScratch("metrics");
        var guest = await TestGuest.LoadOrBuildAsync();
        await using var images = await ImageService.StartAsync(guest, scratch);
        var port = TestController.FreePort();
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
            ["MetricsListen"] = $"127.0.0.1:{port}",

            // No periodic reconcile between two scrapes: its bulk call would count with theirs.
            ["ReconcileIntervalSeconds"] = "86400",
        }, scratch);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using var watch = agent.Client.WatchInstances(new WatchInstancesRequest());
        var running = Guid.NewGuid().ToString();
        var paused = Guid.NewGuid().ToString();
        await SpawnAsync(agent, images, running, "project-a");
        await SpawnAsync(agent, images, paused, "project-b");
        await agent.Client.PauseAsync(new InstanceRequest { InstanceUuid = paused });
        await WaitIdleAsync(agent, paused);

        // test:///default cannot copy a running guest's disk: the snapshot's task fails.
        await agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = running, Name = "metrics-snapshot" });
        var failed = await WaitIdleAsync(agent, running);
        Assert.NotEmpty(failed.Fault.Message);
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));

        var first = await ScrapeAsync(http);
        Assert.Equal(1, first.Value("compute_agent_instances", ("vm_state", "ACTIVE"), ("task_state", "none")));
        Assert.Equal(1, first.Value("compute_agent_instances", ("vm_state", "PAUSED"), ("task_state", "none")));
        Assert.Equal(2, first.Value("compute_agent_operations_started_total", ("command", "spawn")));
        Assert.Equal(1, first.Value("compute_agent_operations_started_total", ("command", "pause")));
        Assert.Equal(1, first.Value("compute_agent_operations_started_total", ("command", "snapshot")));
        Assert.Equal(1, first.Value("compute_agent_operations_failed_total", ("command", "snapshot")));
        Assert.Null(first.Find("compute_agent_operations_failed_total", ("command", "spawn")));
        Assert.Equal(2, first.Value("compute_agent_operation_duration_seconds_count", ("command", "spawn"), ("outcome", "done")));
        Assert.Equal(1, first.Value("compute_agent_operation_duration_seconds_count", ("command", "snapshot"), ("outcome", "failed")));
        Assert.True(first.Value("compute_agent_libvirt_call_duration_seconds_count", ("call", "virDomainSuspend")) >= 1);
        Assert.True(first.Value("compute_agent_event_delivery_seconds_count", ("watcher", "grpc")) >= 1);
        Assert.Equal(1, first.Value("compute_agent_image_cache_misses_total"));
        Assert.Equal(1, first.Value("compute_agent_image_cache_hits_total"));
        Assert.True(first.Value("compute_agent_image_cache_size_bytes") >= new FileInfo(guest.Disk).Length);
        Assert.True(first.Value("compute_agent_process_resident_memory_bytes") > 10 * 1024 * 1024);
        Assert.True(first.Value("compute_agent_gc_heap_bytes") > 0);
        Assert.NotNull(first.Find("compute_agent_gc_collections_total", ("generation", "0")));
        Assert.Equal(1, first.Value("compute_agent_guest_stats_up"));
        Assert.Equal("histogram", first.FamilyTypes["compute_agent_operation_duration_seconds"]);

        // No controller configured: no link series.
        Assert.DoesNotContain(first.Samples, s => s.Name.StartsWith("compute_agent_controller_link", StringComparison.Ordinal));

        // Each scrape makes exactly one bulk libvirt call, whatever the number of guests.
        var second = await ScrapeAsync(http);
        var third = await ScrapeAsync(http);
        var before = first.Value("compute_agent_libvirt_call_duration_seconds_count", ("call", GuestStatsCall));
        Assert.Equal(before + 1, second.Value("compute_agent_libvirt_call_duration_seconds_count", ("call", GuestStatsCall)));
        Assert.Equal(before + 2, third.Value("compute_agent_libvirt_call_duration_seconds_count", ("call", GuestStatsCall)));

        var wrongPath = await http.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, wrongPath.StatusCode);
        Assert.Contains("GET /metrics", await wrongPath.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_metrics_listen_the_agent_binds_no_tcp_port()
    {
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string> { ["LibvirtUri"] = "test:///default" });
        Assert.Empty(ListeningTcpPorts(agent.Pid));
    }

    [Fact]
    public async Task Under_mutual_tls_a_client_without_a_certificate_is_refused_and_one_of_the_ca_is_served()
    {
        var scratch = RepositoryPaths.CreateScratch("metrics-tls");
        var pki = TestCertificates.Create(scratch);
        var server = pki.IssueServer("agent");
        var port = TestController.FreePort();
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["MetricsListen"] = $"127.0.0.1:{port}",
            ["MetricsMutualTls"] = "true",
            ["Callers:ServerCertificatePath"] = server.CertificatePath,
            ["Callers:ServerKeyPath"] = server.KeyPath,
            ["Callers:ClientCaPath"] = pki.CaPath,
        }, scratch);
        Assert.Equal(new List<int> { port }, ListeningTcpPorts(agent.Pid));

        using var anonymous = TlsClient(pki, null);
        var refused = await anonymous.GetAsync(new Uri($"https://127.0.0.1:{port}/metrics"));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("no client certificate", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var known = TlsClient(pki, pki.IssueClient("prometheus"));
        var metrics = await ScrapeAsync(known, new Uri($"https://127.0.0.1:{port}/metrics"));
        Assert.Equal(1, metrics.Value("compute_agent_guest_stats_up"));
        Assert.Equal(0, metrics.Series("compute_agent_instances").Sum(s => s.Value));
    }

    /// <param name="keep">Where to write the page as read (kept with the test's scratch files).</param>
    internal static async Task<PrometheusText> ScrapeAsync(HttpClient http, Uri? address = null, string? keep = null)
    {
        using var response = await http.GetAsync(address ?? new Uri("/metrics", UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET /metrics answered {response.StatusCode}: {body}");
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        if (keep is not null)
        {
            await File.WriteAllTextAsync(keep, body);
        }

        return PrometheusText.Parse(body);
    }

    private static async Task SpawnAsync(AgentProcess agent, ImageService images, string uuid, string project)
    {
        await agent.Client.SpawnAsync(new SpawnRequest
        {
            InstanceUuid = uuid,
            Name = "metrics-" + project,
            ProjectId = project,
            UserId = "user-1",
            ImageId = images.ImageId,
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 128, RootGib = 1 },
        });
        Assert.Equal(VmState.Active, (await WaitIdleAsync(agent, uuid)).VmState);
    }

    private static async Task<Instance> WaitIdleAsync(AgentProcess agent, string uuid) =>
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow.Add(InstanceWalk.Bound));

    /// <summary>The TCP ports in LISTEN state whose sockets the process holds (from /proc, as ss -ltnp reads it).</summary>
    private static List<int> ListeningTcpPorts(int pid)
    {
        var inodes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal))
            {
                inodes.Add(target["socket:[".Length..^1]);
            }
        }

        var ports = new List<int>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            foreach (var row in File.ReadLines(table).Skip(1))
            {
                var columns = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (columns[3] == "0A" && inodes.Contains(columns[9]))
                {
                    ports.Add(int.Parse(columns[1].Split(':')[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                }
            }
        }

        return ports;
    }

    private static HttpClient TlsClient(TestCertificates pki, PemPair? client) =>
        new(new SocketsHttpHandler { SslOptions = pki.ClientOptions(client) });
}
