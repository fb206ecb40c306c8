using System.Buffers.Binary;
using ComputeAgent.Api.V1;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Grpc.Core;
using Grpc.Reflection.V1Alpha;
using Xunit;
using Model = ComputeAgent.Instances.Model;

namespace ComputeAgent.Host.Tests;

/// <summary>The agent process against libvirt's test:///default (inside the agent's own process): no QEMU needed.</summary>
public sealed class AgentStartupTests
{
    private static readonly Dictionary<string, string> TestDriver = new() { ["LibvirtUri"] = "test:///default" };

    [Fact]
    public async Task Host_passthrough_on_a_host_whose_libvirt_offers_no_kvm_stops_the_start_with_exit_2()
    {
        // VirtType auto: the test driver offers no KVM, so guests would run under TCG, which cannot pass the host CPU through.
        var (exitCode, output) = await AgentProcess.RunToExitAsync(new Dictionary<string, string>(TestDriver) { ["VirtType"] = "auto", ["CpuMode"] = "host-passthrough" });

        Assert.Equal(2, exitCode);
        Assert.Contains("Agent:VirtType auto runs guests as qemu here", output, StringComparison.Ordinal);
        Assert.Contains("change Agent:CpuMode or Agent:VirtType", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_settings_stop_the_start_with_every_bad_key_named()
    {
        var (exitCode, output) = await AgentProcess.RunToExitAsync(new Dictionary<string, string>
        {
            ["VirtType"] = "xen",
            ["MaxConcurrentBuilds"] = "0",
            ["ImageServiceUrl"] = "ftp://glance",
            ["StateDirectory"] = "relative/path",
            ["CpuMode"] = "custom",
        });

        Assert.Equal(2, exitCode);
        Assert.Contains("Agent:VirtType 'xen' must be kvm, qemu or auto", output, StringComparison.Ordinal);
        Assert.Contains("Agent:MaxConcurrentBuilds 0 must be between 1 and 1000", output, StringComparison.Ordinal);
        Assert.Contains("Agent:ImageServiceUrl 'ftp://glance'", output, StringComparison.Ordinal);
        Assert.Contains("Agent:StateDirectory 'relative/path' must be an absolute path", output, StringComparison.Ordinal);
        Assert.Contains("Agent:CpuMode custom needs Agent:CpuModels", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_JSON_syntax_error_in_the_settings_file_stops_the_start_with_the_file_and_line()
    {
        var scratch = RepositoryPaths.CreateScratch("agent-json");
        try
        {
            var file = Path.Combine(scratch, "agent.json");
            await File.WriteAllTextAsync(file, "{\n  \"Agent\": {\n    \"MaxConcurrentBuilds\": 10,,\n    \"VirtType\": \"qemu\"\n  }\n}\n");

            var (exitCode, output) = await AgentProcess.RunToExitAsync(TestDriver, scratch);

            Assert.Equal(2, exitCode);
            Assert.Contains($"{file} line 3: not valid JSON", output, StringComparison.Ordinal);
            AssertNoStackTrace(output);
        }
        finally
        {
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    [Fact]
    public async Task A_value_of_the_wrong_type_stops_the_start_naming_the_key_and_where_it_was_set()
    {
        var scratch = RepositoryPaths.CreateScratch("agent-json");
        try
        {
            var file = Path.Combine(scratch, "agent.json");
            await File.WriteAllTextAsync(file, "// a comment, as the packaged file has\n{\n  \"Agent\": {\n    \"MaxConcurrentBuilds\": \"ten\",\n    \"Controller\": {\n      \"ReportIntervalSeconds\": \"often\"\n    }\n  }\n}\n");

            var (exitCode, output) = await AgentProcess.RunToExitAsync(new Dictionary<string, string>(TestDriver) { ["RestartCrashedGuests"] = "yes" }, scratch);

            Assert.Equal(2, exitCode);
            Assert.Contains($"Agent:MaxConcurrentBuilds 'ten' ({file} line 4) must be a whole number", output, StringComparison.Ordinal);
            Assert.Contains($"Agent:Controller:ReportIntervalSeconds 'often' ({file} line 6) must be a whole number", output, StringComparison.Ordinal);
            Assert.Contains("Agent:RestartCrashedGuests 'yes' (command line --Agent:RestartCrashedGuests) must be true or false", output, StringComparison.Ordinal);
            AssertNoStackTrace(output);

            // The command line wins over the file, and is named as the source.
            (exitCode, output) = await AgentProcess.RunToExitAsync(new Dictionary<string, string>(TestDriver) { ["MaxConcurrentBuilds"] = "abc" });
            Assert.Equal(2, exitCode);
            Assert.Contains("Agent:MaxConcurrentBuilds 'abc' (command line --Agent:MaxConcurrentBuilds) must be a whole number", output, StringComparison.Ordinal);
            AssertNoStackTrace(output);
        }
        finally
        {
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    [Fact]
    public async Task A_misspelt_key_is_warned_about_and_the_agent_starts()
    {
        var scratch = RepositoryPaths.CreateScratch("agent-json");
        try
        {
            var file = Path.Combine(scratch, "agent.json");
            await File.WriteAllTextAsync(file, "{\n  \"Agent\": {\n    \"MaxConcurentBuilds\": 5\n  }\n}\n");

            await using var agent = await AgentProcess.StartAsync(TestDriver, scratch);

            Assert.Contains($"compute-agent: warning: Agent:MaxConcurentBuilds ({file} line 3) is not a setting and is ignored", agent.Output, StringComparison.Ordinal);
        }
        finally
        {
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    [Fact]
    public async Task A_settings_file_named_by_COMPUTE_AGENT_CONFIG_that_does_not_exist_stops_the_start()
    {
        var scratch = RepositoryPaths.CreateScratch("agent-json");
        try
        {
            var missing = Path.Combine(scratch, "etc", "agent.json");

            var (exitCode, output) = await AgentProcess.RunToExitAsync(TestDriver, scratch, new Dictionary<string, string> { ["COMPUTE_AGENT_CONFIG"] = missing });

            Assert.Equal(2, exitCode);
            Assert.Contains($"COMPUTE_AGENT_CONFIG names {missing}, which does not exist", output, StringComparison.Ordinal);
            AssertNoStackTrace(output);
        }
        finally
        {
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    [Fact]
    public async Task A_state_database_with_its_header_overwritten_stops_the_start_and_is_left_as_it_was()
    {
        await AssertDamagedDatabaseRefusedAsync((database, _) =>
        {
            using var file = File.OpenWrite(database);
            file.Write("this is no database"u8);
        });
    }

    [Fact]
    public async Task A_state_database_with_one_page_byte_changed_stops_the_start_and_is_left_as_it_was()
    {
        await AssertDamagedDatabaseRefusedAsync((database, pageSize) =>
        {
            // The first byte of page 2 (a table's b-tree page) is its page type: 0 is none of SQLite's four.
            using var file = File.OpenWrite(database);
            file.Position = pageSize;
            file.WriteByte(0);
        });
    }

    [Fact]
    public async Task A_slow_capabilities_lookup_is_warned_about_with_its_cause_and_fix()
    {
        await using var agent = await AgentProcess.StartAsync(TestDriver, environment: new Dictionary<string, string> { ["COMPUTE_AGENT_FAULT"] = "slow-capabilities-lookup" });

        Assert.Contains("A capabilities lookup took", agent.Output, StringComparison.Ordinal);
        Assert.Contains("/dev/kvm is not usable by the QEMU user", agent.Output, StringComparison.Ordinal);
        Assert.Contains("chgrp kvm /dev/kvm; chmod 0660 /dev/kvm", agent.Output, StringComparison.Ordinal);
    }

    [SkippableFact]
    [Trait("Category", "Qemu")]
    public async Task A_deleted_state_database_is_created_anew_with_a_warning_that_names_the_adopted_instances()
    {
        var unavailable = await LibvirtDaemon.EnsureRunningAsync();
        Skip.If(unavailable is not null, unavailable);
        var scratch = RepositoryPaths.CreateScratch("agent-newdb");
        var uuid = Guid.NewGuid();
        try
        {
            // A domain of this agent's (disk in its instances folder, agent metadata), defined and
            // never started, and no agent.db: as after the file was deleted.
            var settings = new Model.HostSettings { VirtType = Model.VirtType.Qemu, InstancesDirectory = Path.Combine(scratch, "instances"), DirectIoSupported = false };
            var disk = Path.Combine(settings.InstancesDirectory, uuid.ToString(), "disk");
            Directory.CreateDirectory(Path.GetDirectoryName(disk)!);
            var created = await ProcessRunner.RunAsync("qemu-img", ["create", "-f", "qcow2", disk, "64M"], TimeSpan.FromSeconds(60));
            Assert.Equal(0, created.ExitCode);
            var spec = new Model.InstanceSpec
            {
                Uuid = uuid,
                Name = "new-db",
                Flavor = new Model.Flavor("m1.tiny", 1, 256, RootGiB: 1),
                Image = new Model.ImageMeta("a1b2c3d4-0000-4000-8000-000000000003"),
                Owner = new Model.InstanceOwner("6f3e1a2b3c4d4e5f8a9b0c1d2e3f4a5b", "0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5"),
                BlockDevices = [new Model.BlockDevice(Model.BlockDeviceRole.Root, new Model.FileDiskSource(disk, Model.DiskFormat.Qcow2)) { BootIndex = 0 }],
            };
            using (var connection = LibvirtConnection.Open(QemuHost.Uri))
            {
                connection.DefineXml(new DomainXmlBuilder(settings).Build(spec)).Dispose();
            }

            await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri }, scratch);

            var database = Path.Combine(scratch, "state", "agent.db");
            var warning = Assert.Single(agent.Output.Split('\n'), l => l.Contains($"The state database {database} did not exist and was created anew", StringComparison.Ordinal));
            Assert.Contains("WRN", warning, StringComparison.Ordinal);
            Assert.Contains(uuid.ToString(), warning, StringComparison.Ordinal);
            Assert.Equal(uuid.ToString(), (await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() })).Uuid);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    [Fact]
    public async Task A_started_agent_serves_health_reflection_and_the_api_over_its_unix_socket()
    {
        await using var agent = await AgentProcess.StartAsync(TestDriver);
        // The mode is set just after the listener starts: give it a moment.
        const UnixFileMode ownerAndGroup = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
        for (var i = 0; i < 50 && File.GetUnixFileMode(agent.SocketPath) != ownerAndGroup; i++)
        {
            await Task.Delay(20);
        }

        Assert.Equal(ownerAndGroup, File.GetUnixFileMode(agent.SocketPath));

        // Reflection: what grpcurl list / describe use.
        var reflection = new ServerReflection.ServerReflectionClient(agent.Channel);
        using (var call = reflection.ServerReflectionInfo())
        {
            await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = string.Empty });
            await call.RequestStream.CompleteAsync();
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
            Assert.Contains("computeagent.v1.ComputeAgent", services);
            Assert.Contains("grpc.health.v1.Health", services);
        }

        // The test driver's fixed node: 16 CPUs in 2 NUMA cells.
        var host = await agent.Client.GetHostAsync(new GetHostRequest());
        Assert.Equal(16, host.Cpus);
        Assert.Equal(2, host.NumaNodes);
        Assert.Equal(0, host.InstanceCount);
        Assert.Empty((await agent.Client.ListInstancesAsync(new ListInstancesRequest())).Instances);
    }

    [Fact]
    public async Task Bad_requests_answer_with_a_status_that_says_what_to_do()
    {
        await using var agent = await AgentProcess.StartAsync(TestDriver);

        var badUuid = await Assert.ThrowsAsync<RpcException>(() => agent.Client.PauseAsync(new InstanceRequest { InstanceUuid = "not-a-uuid" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badUuid.StatusCode);
        Assert.Contains("instance_uuid", badUuid.Status.Detail, StringComparison.Ordinal);

        var missing = Guid.NewGuid().ToString();
        var notFound = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = missing }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        Assert.Contains(missing, notFound.Status.Detail, StringComparison.Ordinal);

        var noImageService = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SpawnAsync(new SpawnRequest
        {
            InstanceUuid = Guid.NewGuid().ToString(),
            Name = "vm",
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
            ImageId = "a1b2c3d4-0000-4000-8000-000000000002",
        }).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, noImageService.StatusCode);
        Assert.Contains("Agent:ImageServiceUrl", noImageService.Status.Detail, StringComparison.Ordinal);

        var noFlavor = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SpawnAsync(new SpawnRequest { InstanceUuid = Guid.NewGuid().ToString(), ImageId = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noFlavor.StatusCode);
        Assert.Contains("flavor", noFlavor.Status.Detail, StringComparison.Ordinal);

        var overAnHour = await Assert.ThrowsAsync<RpcException>(() => agent.Client.StopAsync(new StopRequest { InstanceUuid = missing, GracefulTimeout = new Google.Protobuf.WellKnownTypes.Duration { Seconds = 3601 } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, overAnHour.StatusCode);
        Assert.Contains("graceful_timeout", overAnHour.Status.Detail, StringComparison.Ordinal);
        Assert.Empty((await agent.Client.ListInstancesAsync(new ListInstancesRequest())).Instances);
    }

    /// <summary>The agent once started and stopped (a database of the current schema), then <paramref name="damage"/> to agent.db.</summary>
    private static async Task AssertDamagedDatabaseRefusedAsync(Action<string, int> damage)
    {
        var scratch = RepositoryPaths.CreateScratch("agent-db");
        try
        {
            await (await AgentProcess.StartAsync(TestDriver, scratch)).DisposeAsync();
            var database = Path.Combine(scratch, "state", "agent.db");
            var header = new byte[100];
            await using (var file = File.OpenRead(database))
            {
                await file.ReadExactlyAsync(header);
            }

            Assert.False(File.Exists(database + "-wal") && new FileInfo(database + "-wal").Length > 0, "the stopped agent left a write-ahead log, which would hide the damage");
            damage(database, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(16)));
            var damaged = await File.ReadAllBytesAsync(database);

            var (exitCode, output) = await AgentProcess.RunToExitAsync(TestDriver, scratch);

            Assert.Equal(2, exitCode);
            Assert.Contains($"the state database {database} is damaged", output, StringComparison.Ordinal);
            Assert.Contains("restore it from a backup", output, StringComparison.Ordinal);
            AssertNoStackTrace(output);
            Assert.Equal(damaged, await File.ReadAllBytesAsync(database));
        }
        finally
        {
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    private static void AssertNoStackTrace(string output)
    {
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }
}
