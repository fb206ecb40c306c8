using System.Net.Sockets;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Xunit;
using Xunit.Abstractions;

namespace ComputeAgent.Install.Tests;

/// <summary>
/// The .deb on this machine, step by step (issue 7, item 5): install it, start the installed agent
/// the way its systemd unit would (no systemd here), call it over the unit's socket, reinstall it
/// over itself, remove and purge it. The shell side of each step is a phase of
/// tests/install/install-test.sh; its PASS / FAIL / SKIP lines are in each test's output. A step
/// whose phase printed SKIP (a check that did not run) is reported as skipped with those lines as
/// its reason, never as passed, once everything else in it has been checked.
/// </summary>
[Trait("Category", "Install")]
[TestCaseOrderer(StepOrderer.TypeName, StepOrderer.AssemblyName)]
public sealed class PackageInstallTests(InstallTest install, ITestOutputHelper output) : IClassFixture<InstallTest>
{
    private const string UnitSocket = "/run/compute-agent/agent.sock";

    [SkippableFact]
    [Step(1)]
    public async Task Dpkg_installs_the_agent_its_unit_settings_user_group_and_directories()
    {
        SkipUnlessEnabled();
        // COMPUTE_AGENT_DEB names a .deb to test; otherwise the phase builds one.
        var notRun = await RunPhaseAsync("install", TimeSpan.FromMinutes(15));
        install.Installed = true;
        SkipIfAnyDidNotRun(notRun);
    }

    [SkippableFact]
    [Step(2)]
    public async Task User_compute_agent_opens_qemu_system_through_group_libvirt()
    {
        SkipUnlessEnabled();
        RequireInstalled();
        var (exitCode, text) = await InstallTest.RunAsync("libvirt", [], null, TimeSpan.FromMinutes(1));
        output.WriteLine(text);
        Skip.If(exitCode == 3, SkipLines(text) is { Length: > 0 } notRun ? string.Join('\n', notRun) : text.Trim());
        Assert.True(exitCode == 0, text);
        SkipIfAnyDidNotRun(SkipLines(text));
    }

    [SkippableFact]
    [Step(3)]
    public async Task The_agent_started_as_its_unit_would_says_READY_and_serves_health_and_GetHost_on_the_unit_socket()
    {
        SkipUnlessEnabled();
        RequireInstalled();
        Directory.CreateDirectory(InstallTest.StateDirectory);
        using var notify = new NotifySocket(Path.Combine(InstallTest.StateDirectory, "notify.sock"));
        var notRun = await RunPhaseAsync("start", TimeSpan.FromMinutes(2), new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path });
        try
        {
            // Type=notify: systemd considers the unit started only on READY=1.
            Assert.True(await notify.WaitForAsync("READY=1", TimeSpan.FromSeconds(60)), $"no READY=1 on NOTIFY_SOCKET; got: [{string.Join(", ", notify.Messages)}]");

            using var channel = Connect(UnitSocket);
            var health = new Health.HealthClient(channel);
            var status = HealthCheckResponse.Types.ServingStatus.Unknown;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (status != HealthCheckResponse.Types.ServingStatus.Serving && DateTime.UtcNow < deadline)
            {
                try
                {
                    status = (await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(5))).Status;
                }
                catch (Grpc.Core.RpcException e)
                {
                    output.WriteLine($"health: {e.Status}");
                }

                if (status != HealthCheckResponse.Types.ServingStatus.Serving)
                {
                    await Task.Delay(200);
                }
            }

            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);

            var client = new ComputeAgent.Api.V1.ComputeAgent.ComputeAgentClient(channel);
            var host = await client.GetHostAsync(new GetHostRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
            output.WriteLine($"GetHost: {host.Hostname}, {host.HypervisorType} {host.HypervisorVersion}, libvirt {host.LibvirtVersion}, {host.Cpus} CPUs, {host.MemoryMib} MiB, {host.InstanceCount} instances");
            Assert.True(host.Cpus > 0, $"GetHost answered {host}");
            Assert.False(string.IsNullOrEmpty(host.LibvirtVersion), $"GetHost answered {host}");
            Assert.Empty((await client.ListInstancesAsync(new ListInstancesRequest())).Instances);

            // The installed compute-agent-cli finds the same socket through the installed agent.json.
            notRun = [.. notRun, .. await RunPhaseAsync("cli", TimeSpan.FromMinutes(1))];
        }
        finally
        {
            notRun = [.. notRun, .. await RunPhaseAsync("stop", TimeSpan.FromMinutes(1))];
        }

        Assert.Contains(notify.Messages, m => m.Split('\n').Contains("STOPPING=1"));
        SkipIfAnyDidNotRun(notRun);
    }

    [SkippableFact]
    [Step(4)]
    public async Task Installing_over_itself_keeps_the_state_an_edited_conffile_and_guest_disks()
    {
        SkipUnlessEnabled();
        RequireInstalled();
        SkipIfAnyDidNotRun(await RunPhaseAsync("upgrade", TimeSpan.FromMinutes(5)));
    }

    [SkippableFact]
    [Step(5)]
    public async Task Remove_and_purge_take_the_agent_and_its_settings_but_leave_guest_disks_and_the_user()
    {
        SkipUnlessEnabled();
        RequireInstalled();
        var notRun = await RunPhaseAsync("purge", TimeSpan.FromMinutes(5));
        install.Installed = false;
        SkipIfAnyDidNotRun(notRun);
    }

    private static void SkipUnlessEnabled() => Skip.If(InstallTest.NotEnabledReason is not null, InstallTest.NotEnabledReason);

    private void RequireInstalled() => Assert.True(install.Installed, "step 1 (dpkg -i) did not pass, so there is nothing to run");

    /// <summary>Runs a phase that must pass; returns its SKIP lines (the checks it did not run).</summary>
    private async Task<string[]> RunPhaseAsync(string phase, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var (exitCode, text) = await InstallTest.RunAsync(phase, [], environment, timeout);
        output.WriteLine(text);
        Assert.True(exitCode == 0, $"install-test.sh {phase} exited {exitCode}:\n{text}");
        return SkipLines(text);
    }

    private static string[] SkipLines(string text) =>
        [.. text.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("SKIP ", StringComparison.Ordinal))];

    // Every other check of the step passed by now; the step still did not run in full, so it is no pass.
    private static void SkipIfAnyDidNotRun(string[] notRun) => Skip.If(notRun.Length > 0, string.Join('\n', notRun));

    private static GrpcChannel Connect(string socketPath) =>
        GrpcChannel.ForAddress("http://compute-agent", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, cancellationToken) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            },
        });
}
