using System.Diagnostics;
using System.Text;
using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Google.Protobuf;
using Grpc.Core;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// AttachConsole and `compute-agent-cli console` on a real guest: the test guest runs a silent
/// shell on its serial port, so typing a command and reading its answer back is the round trip.
/// One guest for the whole walk: sessions, takeover, the CLI in pipe mode, the guest stopping.
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class AgentConsoleTests(QemuHost host)
{
    [SkippableFact]
    public async Task A_guests_shell_answers_through_the_console_one_session_at_a_time_force_taking_over()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-console");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
        }, scratch);
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var uuid = Guid.NewGuid();
        var id = uuid.ToString();
        try
        {
            using (var walk = new InstanceWalk(agent, libvirt, uuid))
            {
                await walk.SpawnAsync(images.ImageId, "console");
                await walk.BootedAsync(host.Guest.ReadyLine);
            }

            var unknown = Guid.NewGuid().ToString();
            using (var missing = await AttachAsync(agent, unknown))
            {
                var notFound = await EndAsync(missing);
                Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
                Assert.Contains(unknown, notFound.Status.Detail, StringComparison.Ordinal);
            }

            // The answer, not the tty's echo of the command: only the shell turns $((6*7)) into 42.
            using var first = await AttachAsync(agent, id);
            await TypeAsync(first, "echo console-$((6*7))");
            await ReadUntilAsync(first, "console-42");

            using (var second = await AttachAsync(agent, id))
            {
                var refused = await EndAsync(second);
                Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
                Assert.Contains("a console session is open", refused.Status.Detail, StringComparison.Ordinal);
                Assert.Contains("force", refused.Status.Detail, StringComparison.Ordinal);
            }

            // The refused attach changed nothing: the first session still types and reads.
            await TypeAsync(first, "echo console-$((6*7+1))");
            await ReadUntilAsync(first, "console-43");

            using var taker = await AttachAsync(agent, id, force: true);
            var aborted = await EndAsync(first);
            Assert.Equal(StatusCode.Aborted, aborted.StatusCode);
            Assert.Contains("took the console", aborted.Status.Detail, StringComparison.Ordinal);
            await TypeAsync(taker, "echo console-$((6*7+2))");
            await ReadUntilAsync(taker, "console-44");
            Assert.Contains($"Console session opened on instance {id}", agent.Output, StringComparison.Ordinal);
            Assert.Contains($"Console of instance {id} taken over", agent.Output, StringComparison.Ordinal);
            Assert.Contains($"Console session on instance {id} of", agent.Output, StringComparison.Ordinal);

            // The CLI, as an operator runs it from a script: input from a pipe, --force over the gRPC session.
            var cli = await ProcessRunner.RunAsync(
                "bash",
                ["-c", $"printf '%s\\n' 'echo console-$((6*7+3))' | exec dotnet '{AgentProcess.Cli}' console {id} --force --until console-45 --socket '{agent.SocketPath}'"],
                InstanceWalk.Bound);
            Assert.True(cli.ExitCode == 0, $"compute-agent-cli console exited {cli.ExitCode}: {cli.StandardError}");
            Assert.Contains("console-45", cli.StandardOutput, StringComparison.Ordinal);
            Assert.Equal(StatusCode.Aborted, (await EndAsync(taker)).StatusCode);

            // On a terminal (script(1) gives it one): raw mode, the keys go to the guest, Ctrl-] leaves
            // with exit 0, and the terminal is back in cooked mode with echo afterwards.
            var terminal = await RunOnTerminalAsync(
                $"dotnet '{AgentProcess.Cli}' console {id} --force --socket '{agent.SocketPath}'; echo \"exit=$?\"; stty -a",
                [("Ctrl-] leaves", "echo console-$((6*7+5))\r"), ("console-47", "\u001d")]);
            Assert.Contains("exit=0", terminal, StringComparison.Ordinal);
            Assert.Matches(@"(^|\s)icanon(\s|$)", terminal);
            Assert.Matches(@"(^|\s)echo(\s|$)", terminal);

            // The guest stops under an open session: its stream ends UNAVAILABLE; a new attach is refused.
            using (var watching = await AttachAsync(agent, id, force: true))
            {
                await TypeAsync(watching, "echo console-$((6*7+4))");
                await ReadUntilAsync(watching, "console-46");
                await agent.Client.StopAsync(new StopRequest { InstanceUuid = id });
                var closed = await EndAsync(watching);
                Assert.Equal(StatusCode.Unavailable, closed.StatusCode);
                Assert.Contains("closed", closed.Status.Detail, StringComparison.Ordinal);
            }

            var stopped = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = id, VmState = VmState.Stopped }, deadline: DateTime.UtcNow.Add(InstanceWalk.Bound));
            Assert.Equal(PowerState.Shutdown, stopped.PowerState);

            // The shell wrote nothing of its own (no prompt, no job-control warning): the guest's
            // marker lines that other tests read from the log are whole lines still.
            var log = (await File.ReadAllLinesAsync(Path.Combine(agent.Scratch, "instances", id, "console.log"))).Select(l => l.TrimEnd('\r')).ToList();
            Assert.Contains(host.Guest.ReadyLine, log);
            Assert.Contains(host.Guest.PowerOffLine, log);
            Assert.Contains("console-46", log);
            Assert.DoesNotContain(log, l => l.Contains("job control", StringComparison.Ordinal));
            using (var late = await AttachAsync(agent, id))
            {
                var notRunning = await EndAsync(late);
                Assert.Equal(StatusCode.FailedPrecondition, notRunning.StatusCode);
                Assert.Contains("not running", notRunning.Status.Detail, StringComparison.Ordinal);
            }

            var cliStopped = await CliHost.Cli(["console", id, "--socket", agent.SocketPath]);
            Assert.Equal(1, cliStopped.ExitCode);
            Assert.Contains("FAILED_PRECONDITION", cliStopped.StandardError, StringComparison.Ordinal);

            // The agent stopping ends an open session UNAVAILABLE, saying so.
            await agent.Client.StartAsync(new InstanceRequest { InstanceUuid = id });
            await EventWaits.WaitForConsoleLineAsync(Path.Combine(agent.Scratch, "instances", id, "console.log"), host.Guest.ReadyLine, InstanceWalk.Bound, occurrence: 2);
            using var last = await AttachAsync(agent, id);
            await TypeAsync(last, "echo console-$((6*7+6))");
            await ReadUntilAsync(last, "console-48");
            var stopping = agent.StopAsync(InstanceWalk.Bound);
            var agentGone = await EndAsync(last);
            Assert.Equal(StatusCode.Unavailable, agentGone.StatusCode);
            Assert.Contains("agent is stopping", agentGone.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(0, await stopping);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
        }
    }

    /// <summary>
    /// Runs <paramref name="command"/> on a pseudo-terminal (script -q) and types each step's keys
    /// once the terminal has shown its text; returns everything the terminal showed.
    /// </summary>
    private static async Task<string> RunOnTerminalAsync(string command, (string Shown, string Keys)[] steps)
    {
        var start = new ProcessStartInfo("script") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in new[] { "-qfc", command, "/dev/null" })
        {
            start.ArgumentList.Add(argument);
        }

        using var script = Process.Start(start)!;
        var shown = new StringBuilder();
        var reader = Task.Run(async () =>
        {
            var buffer = new char[1024];
            int read;
            while ((read = await script.StandardOutput.ReadAsync(buffer)) > 0)
            {
                lock (shown)
                {
                    shown.Append(buffer, 0, read);
                }
            }
        });
        using var bound = new CancellationTokenSource(InstanceWalk.Bound);
        try
        {
            foreach (var (text, keys) in steps)
            {
                while (!Shown().Contains(text, StringComparison.Ordinal))
                {
                    Assert.False(script.HasExited, $"the terminal ended before '{text}': {Shown()}");
                    Assert.False(bound.IsCancellationRequested, $"the terminal did not show '{text}': {Shown()}");
                    await Task.Delay(100, CancellationToken.None);
                }

                await script.StandardInput.WriteAsync(keys);
                await script.StandardInput.FlushAsync(bound.Token);
            }

            while (!script.HasExited)
            {
                Assert.False(bound.IsCancellationRequested, $"the terminal did not end: {Shown()}");
                await Task.Delay(100, CancellationToken.None);
            }

            await reader;
            return Shown();
        }
        finally
        {
            if (!script.HasExited)
            {
                script.Kill(entireProcessTree: true);
            }
        }

        string Shown()
        {
            lock (shown)
            {
                return shown.ToString();
            }
        }
    }

    private static async Task<AsyncDuplexStreamingCall<ConsoleInput, ConsoleData>> AttachAsync(AgentProcess agent, string uuid, bool force = false)
    {
        var call = agent.Client.AttachConsole();
        await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { InstanceUuid = uuid, Force = force } });
        return call;
    }

    private static Task TypeAsync(AsyncDuplexStreamingCall<ConsoleInput, ConsoleData> call, string line) =>
        call.RequestStream.WriteAsync(new ConsoleInput { Data = ByteString.CopyFromUtf8(line + "\n") });

    /// <summary>Reads the console until <paramref name="text"/> has come (bounded: a hung guest fails, a slow one does not).</summary>
    private static async Task ReadUntilAsync(AsyncDuplexStreamingCall<ConsoleInput, ConsoleData> call, string text)
    {
        using var bound = new CancellationTokenSource(InstanceWalk.Bound);
        var seen = new StringBuilder();
        while (!seen.ToString().Contains(text, StringComparison.Ordinal))
        {
            Assert.True(await call.ResponseStream.MoveNext(bound.Token), $"the console ended before '{text}' came; it said: {seen}");
            seen.Append(call.ResponseStream.Current.Data.ToStringUtf8());
        }
    }

    /// <summary>Reads the console to its end: the status the agent ended it with.</summary>
    private static async Task<RpcException> EndAsync(AsyncDuplexStreamingCall<ConsoleInput, ConsoleData> call)
    {
        using var bound = new CancellationTokenSource(InstanceWalk.Bound);
        return await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(bound.Token))
            {
            }
        });
    }
}
