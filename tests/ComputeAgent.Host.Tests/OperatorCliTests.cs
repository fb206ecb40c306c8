using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>One agent on test:///default with one ACTIVE instance, for the CLI to be run against as a process.</summary>
public sealed class CliHost : IAsyncLifetime
{
    private ImageService? images;

    public AgentProcess Agent { get; private set; } = null!;

    public string Scratch { get; } = RepositoryPaths.CreateScratch("cli");

    public string Uuid { get; } = Guid.NewGuid().ToString();

    public async Task InitializeAsync()
    {
        images = await ImageService.StartAsync(await TestGuest.LoadOrBuildAsync(), Scratch);
        Agent = await AgentProcess.StartAsync(new Dictionary<string, string> { ["LibvirtUri"] = "test:///default", ["ImageServiceUrl"] = images.Url }, Scratch);
        await SpawnAsync(Uuid, "cli-one");
    }

    public async Task SpawnAsync(string uuid, string name)
    {
        await Agent.Client.SpawnAsync(new SpawnRequest
        {
            InstanceUuid = uuid,
            Name = name,
            ProjectId = "project-cli",
            UserId = "user-cli",
            ImageId = images!.ImageId,
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 128, RootGib = 1 },
        });
        var active = await Agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.Equal(VmState.Active, active.VmState);
    }

    /// <summary>compute-agent-cli ARGS against this agent's socket.</summary>
    public Task<ProcessRunner.Result> RunAsync(params string[] args) => Cli([.. args, "--socket", Agent.SocketPath]);

    /// <summary>compute-agent-cli ARGS as given (no --socket added).</summary>
    public static Task<ProcessRunner.Result> Cli(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null) =>
        ProcessRunner.RunAsync("env", [.. (environment ?? new Dictionary<string, string>()).Select(e => $"{e.Key}={e.Value}"), "dotnet", AgentProcess.Cli, .. args], TimeSpan.FromMinutes(2));

    public async Task DisposeAsync()
    {
        await Agent.DisposeAsync();
        if (images is not null)
        {
            await images.DisposeAsync();
        }

        RepositoryPaths.DeleteScratch(Scratch);
    }
}

/// <summary>
/// compute-agent-cli as an operator runs it: a process against a real agent (libvirt's
/// test:///default, a real spawn from the image service), its tables and JSON read back, its
/// exit statuses and messages when the agent refuses or is not there.
/// </summary>
public sealed class OperatorCliTests(CliHost host) : IClassFixture<CliHost>
{
    [Fact]
    public async Task List_prints_the_instance_as_a_table_and_as_json_and_filters_by_vm_state_and_name()
    {
        var table = await host.RunAsync("list");
        Assert.True(table.ExitCode == 0, table.StandardError);
        var lines = table.StandardOutput.TrimEnd('\n').Split('\n');
        Assert.Equal(["UUID", "NAME", "VM_STATE", "TASK_STATE", "POWER_STATE", "FLAVOR", "AGE"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var row = lines.Single(l => l.StartsWith(host.Uuid, StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([host.Uuid, "cli-one", "ACTIVE", "none", "RUNNING", "m1.tiny"], row[..6]);
        Assert.Matches("^[0-9]+[smhd]$", row[6]);

        var json = await host.RunAsync("list", "--json");
        Assert.True(json.ExitCode == 0, json.StandardError);
        var instance = JsonNode.Parse(json.StandardOutput)!.AsArray().Single(i => (string?)i!["uuid"] == host.Uuid)!;
        Assert.Equal("cli-one", (string?)instance["name"]);
        Assert.Equal("VM_STATE_ACTIVE", (string?)instance["vm_state"]);
        Assert.Equal("TASK_STATE_NONE", (string?)instance["task_state"]);
        Assert.Equal(128, (int)instance["flavor"]!["ram_mib"]!);
        Assert.Equal("project-cli", (string?)instance["project_id"]);

        var stopped = await host.RunAsync("list", "--vm-state", "stopped", "--uuids");
        Assert.DoesNotContain(host.Uuid, stopped.StandardOutput, StringComparison.Ordinal);
        var active = await host.RunAsync("list", "--vm-state", "active", "--name", "CLI-ONE", "--uuids");
        Assert.Equal(host.Uuid + "\n", active.StandardOutput);
        Assert.Empty((await host.RunAsync("list", "--name", "no-such-name", "--uuids")).StandardOutput);
    }

    [Fact]
    public async Task Show_prints_states_flavor_owner_the_instances_last_events_and_its_domain_xml()
    {
        var shown = await host.RunAsync("show", host.Uuid, "--xml");
        Assert.True(shown.ExitCode == 0, shown.StandardError);
        var fields = shown.StandardOutput.Split('\n').TakeWhile(l => l.Length > 0)
            .Select(l => l.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries)).ToDictionary(p => p[0], p => p[1].Trim());
        Assert.Equal("cli-one", fields["name"]);
        Assert.Equal("ACTIVE", fields["vm_state"]);
        Assert.Equal("none", fields["task_state"]);
        Assert.Equal("RUNNING", fields["power_state"]);
        Assert.Equal("m1.tiny: 1 vCPU, 128 MiB RAM, 1 GiB root", fields["flavor"]);
        Assert.Equal("user-cli", fields["user_id"]);
        Assert.Equal("none", fields["fault"]);
        Assert.Contains($"<uuid>{host.Uuid}</uuid>", shown.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("domain XML (live):", shown.StandardOutput, StringComparison.Ordinal);

        var json = JsonNode.Parse((await host.RunAsync("show", host.Uuid, "--json", "--events", "100")).StandardOutput)!;
        Assert.Equal(host.Uuid, (string?)json["instance"]!["uuid"]);
        var events = json["last_events"]!.AsArray();
        Assert.All(events, e => Assert.Equal(host.Uuid, (string?)e!["instance_uuid"]));
        // The spawn from its very first change (the log's sequence 1: this agent's first instance) to ACTIVE.
        Assert.Equal(1, Sequence(events[0]!));
        Assert.Equal("VM_STATE_BUILDING", (string?)events[0]!["vm_state"]);
        Assert.Contains(events, e => (string?)e!["vm_state"] == "VM_STATE_ACTIVE" && (string?)e["task_state"] == "TASK_STATE_NONE");

        var two = JsonNode.Parse((await host.RunAsync("show", host.Uuid, "--json", "--events", "2")).StandardOutput)!["last_events"]!.AsArray();
        Assert.Equal(2, two.Count);
        Assert.True(Sequence(two[0]!) < Sequence(two[1]!));
    }

    [Fact]
    public async Task Pause_wait_streams_the_task_to_paused_and_exits_0_while_events_follow_sees_it_and_resumes_after_a_sequence()
    {
        var uuid = Guid.NewGuid().ToString();
        await host.SpawnAsync(uuid, "cli-pause");
        // Follow from where the log stands now: whether the follower's call reaches the agent before
        // or after the pause, it gets every change after this number, live or replayed.
        long now;
        using (var snapshot = host.Agent.Client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid, Snapshot = true, ReplayOnly = true }))
        {
            Assert.True(await snapshot.ResponseStream.MoveNext(CancellationToken.None));
            now = snapshot.ResponseStream.Current.Sequence;
            Assert.False(await snapshot.ResponseStream.MoveNext(CancellationToken.None), "replay_only ends the stream after the snapshot");
        }

        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { AgentProcess.Cli, "events", uuid, "--follow", "--json", "--after", now.ToString(System.Globalization.CultureInfo.InvariantCulture), "--socket", host.Agent.SocketPath })
        {
            start.ArgumentList.Add(argument);
        }

        using var follower = Process.Start(start)!;
        try
        {
            var seen = new List<JsonNode>();
            var paused = await host.RunAsync("pause", uuid, "--wait");
            Assert.True(paused.ExitCode == 0, paused.StandardError + paused.StandardOutput);
            var output = paused.StandardOutput.TrimEnd('\n').Split('\n');
            Assert.Equal($"pause accepted: {uuid} ACTIVE / PAUSING", output[0]);
            Assert.Equal($"pause done: {uuid} PAUSED / none / PAUSED", output[^1]);
            Assert.Contains(output, l => l.Contains(uuid, StringComparison.Ordinal) && l.Contains(" PAUSED ", StringComparison.Ordinal) && l.Contains(" none ", StringComparison.Ordinal));

            while (!seen.Any(e => (string?)e["vm_state"] == "VM_STATE_PAUSED" && (string?)e["task_state"] == "TASK_STATE_NONE"))
            {
                var line = await follower.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
                Assert.NotNull(line);
                seen.Add(JsonNode.Parse(line)!);
            }

            Assert.Contains(seen, e => (string?)e["task_state"] == "TASK_STATE_PAUSING");
            Assert.All(seen, e => Assert.Equal(uuid, (string?)e["instance_uuid"]));

            // Resumable: after the PAUSING change's number, the log gives exactly what came after it.
            var pausing = Sequence(seen.First(e => (string?)e["task_state"] == "TASK_STATE_PAUSING"));
            var resumed = await host.RunAsync("events", uuid, "--after", pausing.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json");
            Assert.True(resumed.ExitCode == 0, resumed.StandardError);
            var after = resumed.StandardOutput.TrimEnd('\n').Split('\n').Select(l => JsonNode.Parse(l)!).ToList();
            Assert.All(after, e => Assert.True(Sequence(e) > pausing));
            Assert.Equal("VM_STATE_PAUSED", (string?)after[^1]["vm_state"]);
        }
        finally
        {
            follower.Kill();
            await follower.WaitForExitAsync();
        }

        var table = await host.RunAsync("events", uuid);
        Assert.Equal(["SEQ", "TIME", "(UTC)", "INSTANCE", "VM_STATE", "TASK_STATE", "POWER_STATE", "CAUSE"], table.StandardOutput.Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task A_waited_task_that_fails_exits_1_with_the_fault_the_agent_recorded()
    {
        var uuid = Guid.NewGuid().ToString();
        await host.SpawnAsync(uuid, "cli-fail");
        // The overlay gone behind the agent's back: the resize's qemu-img fails and the task records why.
        File.Delete(Path.Combine(host.Scratch, "instances", uuid, "disk"));

        var resize = await host.RunAsync("resize", uuid, "--root-gib", "2", "--wait");
        Assert.Equal(1, resize.ExitCode);
        Assert.StartsWith($"resize accepted: {uuid} ACTIVE / RESIZE_PREP\n", resize.StandardOutput, StringComparison.Ordinal);
        Assert.StartsWith($"compute-agent-cli: resize failed: {uuid} is ACTIVE / RUNNING: IOException: resize failed: qemu-img info failed", resize.StandardError, StringComparison.Ordinal);
        Assert.Contains("No such file or directory", resize.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_command_the_state_table_refuses_exits_1_with_the_agents_status_and_message()
    {
        var refused = await host.RunAsync("unpause", host.Uuid);
        Assert.Equal(1, refused.ExitCode);
        Assert.Empty(refused.StandardOutput);
        Assert.StartsWith("compute-agent-cli: the agent answered FAILED_PRECONDITION: cannot unpause: instance is ACTIVE (task_state none)", refused.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", refused.StandardError, StringComparison.Ordinal);

        var missing = Guid.NewGuid().ToString();
        var notFound = await host.RunAsync("show", missing);
        Assert.Equal(1, notFound.ExitCode);
        Assert.Contains("NOT_FOUND", notFound.StandardError, StringComparison.Ordinal);
        Assert.Contains(missing, notFound.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_an_agent_on_the_socket_it_exits_3_and_says_what_is_wrong()
    {
        var scratch = RepositoryPaths.CreateScratch("cli-no-agent");
        try
        {
            var absent = Path.Combine(scratch, "agent.sock");
            var missing = await CliHost.Cli(["host", "--socket", absent]);
            Assert.Equal(3, missing.ExitCode);
            Assert.Equal($"compute-agent-cli: no agent socket at {absent}: the agent is not running (systemctl status compute-agent), or it listens elsewhere: pass --socket PATH\n", missing.StandardError);

            // A socket file nothing listens on: what a killed agent leaves behind. Bound, never
            // listening (.NET removes the file when the socket is disposed, so it stays open).
            var stale = Path.Combine(scratch, "stale.sock");
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Bind(new UnixDomainSocketEndPoint(stale));
            var refused = await CliHost.Cli(["list", "--socket", stale]);
            Assert.Equal(3, refused.ExitCode);
            Assert.StartsWith($"compute-agent-cli: nothing answers on {stale}: the agent is not running", refused.StandardError, StringComparison.Ordinal);
            Assert.Empty(refused.StandardOutput);
        }
        finally
        {
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    [Fact]
    public async Task Without_socket_it_calls_the_socket_the_agents_settings_file_names()
    {
        var settings = Path.Combine(host.Scratch, "cli-settings.json");
        await File.WriteAllTextAsync(settings, $$"""
            // as packaged: comments allowed
            { "Agent": { "UnixSocketPath": "{{host.Agent.SocketPath}}" } }
            """);
        var health = await CliHost.Cli(["health"], new Dictionary<string, string> { ["COMPUTE_AGENT_CONFIG"] = settings });
        Assert.True(health.ExitCode == 0, health.StandardError);
        Assert.Equal("SERVING\n", health.StandardOutput);

        var json = await CliHost.Cli(["host", "--json"], new Dictionary<string, string> { ["COMPUTE_AGENT_CONFIG"] = settings });
        Assert.True(json.ExitCode == 0, json.StandardError);
        var answer = JsonNode.Parse(json.StandardOutput)!;
        Assert.Equal(16, (int)answer["cpus"]!);
        Assert.False(string.IsNullOrEmpty((string?)answer["libvirt_version"]));

        var broken = Path.Combine(host.Scratch, "cli-broken.json");
        await File.WriteAllTextAsync(broken, "{ \"Agent\": ");
        var bad = await CliHost.Cli(["list"], new Dictionary<string, string> { ["COMPUTE_AGENT_CONFIG"] = broken });
        Assert.Equal(2, bad.ExitCode);
        Assert.StartsWith($"compute-agent-cli: cannot read Agent:UnixSocketPath from {broken}:", bad.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Host_and_console_log_print_what_the_agent_answers()
    {
        var shown = await host.RunAsync("host");
        Assert.True(shown.ExitCode == 0, shown.StandardError);
        Assert.Matches(@"(?m)^cpus +16 \(", shown.StandardOutput);
        Assert.Matches(@"(?m)^instances +[0-9]+ \(.*Active [0-9]+", shown.StandardOutput);

        // test:///default runs no QEMU: the console log is the file the agent tails, written here.
        await File.WriteAllTextAsync(Path.Combine(host.Scratch, "instances", host.Uuid, "console.log"), "boot\nline 2\nline 3\n");
        var tail = await host.RunAsync("console-log", host.Uuid, "--lines", "2");
        Assert.True(tail.ExitCode == 0, tail.StandardError);
        Assert.Equal("line 2\nline 3\n", tail.StandardOutput);
    }

    [Fact]
    public async Task A_command_line_the_cli_does_not_take_exits_2_and_names_the_problem()
    {
        var state = await CliHost.Cli(["list", "--vm-state", "sleeping"]);
        Assert.Equal(2, state.ExitCode);
        Assert.Contains("--vm-state 'sleeping' is not a vm_state; one of BUILDING, ACTIVE, PAUSED", state.StandardError, StringComparison.Ordinal);
        Assert.Contains("see: compute-agent-cli list --help", state.StandardError, StringComparison.Ordinal);

        var noUuid = await CliHost.Cli(["pause"]);
        Assert.Equal(2, noUuid.ExitCode);
        Assert.Contains("see: compute-agent-cli pause --help", noUuid.StandardError, StringComparison.Ordinal);

        var help = await CliHost.Cli(["demo", "walk", "--help"]);
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("--image-id", help.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_bash_completion_completes_commands_options_values_and_the_agents_uuids()
    {
        var script = await CliHost.Cli(["completion", "bash"]);
        Assert.True(script.ExitCode == 0, script.StandardError);
        var bin = Path.Combine(host.Scratch, "bin");
        Directory.CreateDirectory(bin);
        await File.WriteAllTextAsync(Path.Combine(bin, "compute-agent-cli"), $"#!/bin/sh\nexec dotnet '{AgentProcess.Cli}' \"$@\"\n");
        File.SetUnixFileMode(Path.Combine(bin, "compute-agent-cli"), (UnixFileMode)0b111_101_101);
        await File.WriteAllTextAsync(Path.Combine(host.Scratch, "completion.bash"), script.StandardOutput);

        async Task<string> Complete(params string[] words)
        {
            var line = string.Join(' ', words.Select(w => $"'{w}'"));
            var run = await ProcessRunner.RunAsync("env", [$"PATH={bin}:{Environment.GetEnvironmentVariable("PATH")}", "bash", "-c",
                $"source '{host.Scratch}/completion.bash'; COMP_WORDS=(compute-agent-cli {line}); COMP_CWORD={words.Length}; _compute_agent_cli; echo \"${{COMPREPLY[*]}}\""], TimeSpan.FromMinutes(1));
            Assert.True(run.ExitCode == 0, run.StandardError);
            return run.StandardOutput.TrimEnd('\n');
        }

        Assert.Equal("delete demo", await Complete("de"));
        Assert.Equal("image-server lifecycle spawn walk", string.Join(' ', (await Complete("demo", "")).Split(' ').Order(StringComparer.Ordinal)));
        Assert.Equal("--vm-state", await Complete("list", "--vm"));
        Assert.Equal("PAUSED", await Complete("list", "--vm-state", "PA"));
        Assert.Equal("--hard --help", string.Join(' ', (await Complete("reboot", "--h")).Split(' ').Order(StringComparer.Ordinal)));
        Assert.Contains(host.Uuid, (await Complete("show", "--socket", host.Agent.SocketPath, "")).Split(' '));
    }

    [Fact]
    public async Task Every_compute_agent_cli_command_the_documents_show_is_one_the_cli_parses()
    {
        var shown = Documents.Commands("compute-agent-cli");
        Assert.True(shown.Count >= 5, $"expected the man page's examples, found {shown.Count}");
        foreach (var (document, command) in shown)
        {
            // [diagram] parses and prints the parse instead of running the command; it exits non-zero on a parse error.
            var run = await ProcessRunner.RunAsync("bash", ["-c", $"exec dotnet '{AgentProcess.Cli}' '[diagram]' {command["compute-agent-cli ".Length..]}"], TimeSpan.FromMinutes(1));
            Assert.True(run.ExitCode == 0, $"{document}: `{command}` does not parse: {run.StandardOutput} {run.StandardError}");
        }
    }

    // The proto's JSON mapping writes an int64 as a string.
    private static long Sequence(JsonNode e) => long.Parse((string)e["sequence"]!, System.Globalization.CultureInfo.InvariantCulture);
}
