using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace ComputeAgent.Testing;

/// <summary>
/// The real agent binary started as its own process (as systemd would), with a scratch state
/// directory and Unix socket, and a gRPC channel to it over that socket.
/// </summary>
public sealed class AgentProcess : IAsyncDisposable
{
    // Every agent this test process started: a test that fails before it disposes its agent must
    // not leave the agent running (it would hold guests and files past the run).
    private static readonly System.Collections.Concurrent.ConcurrentBag<Process> Started = StartedWithCleanup();

    private readonly Process process;
    private int disposed;
    private readonly StringBuilder output = new();

    private AgentProcess(Process process, string scratch, string socket)
    {
        this.process = process;
        Scratch = scratch;
        SocketPath = socket;
        Channel = GrpcChannel.ForAddress("http://agent", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, cancellationToken) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                },
            },
        });
        Client = new Api.V1.ComputeAgent.ComputeAgentClient(Channel);
    }

    public string Scratch { get; }

    public int ProcessId => process.Id;

    public string SocketPath { get; }

    /// <summary>The agent's process id (with a systemd parent: that parent's).</summary>
    public int Pid => process.Id;

    public GrpcChannel Channel { get; }

    public Api.V1.ComputeAgent.ComputeAgentClient Client { get; }

    /// <summary>What the agent printed so far (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    public static string Binary =>
        Environment.GetEnvironmentVariable("COMPUTE_AGENT_BINARY") is { Length: > 0 } configured
            ? configured
#if DEBUG
            : Path.Combine(RepositoryPaths.Root, "src", "ComputeAgent.Host", "bin", "Debug", "net10.0", "compute-agent.dll");
#else
            : Path.Combine(RepositoryPaths.Root, "src", "ComputeAgent.Host", "bin", "Release", "net10.0", "compute-agent.dll");
#endif

    public static string Cli =>
        Environment.GetEnvironmentVariable("COMPUTE_AGENT_CLI") is { Length: > 0 } configured
            ? configured
#if DEBUG
            : Path.Combine(RepositoryPaths.Root, "src", "ComputeAgent.Cli", "bin", "Debug", "net10.0", "compute-agent-cli.dll");
#else
            : Path.Combine(RepositoryPaths.Root, "src", "ComputeAgent.Cli", "bin", "Release", "net10.0", "compute-agent-cli.dll");
#endif

    /// <summary>Starts the agent with these settings (Agent:Key=value) and waits until it answers health SERVING.</summary>
    /// <param name="environment">Extra environment variables (NOTIFY_SOCKET, WATCHDOG_USEC, ...).</param>
    /// <param name="systemdParent">
    /// Start it under a parent process named systemd, as the unit does: .NET's UseSystemd() sends
    /// READY=1 only then. SIGTERM to the parent is passed on to the agent.
    /// </param>
    public static async Task<AgentProcess> StartAsync(IReadOnlyDictionary<string, string> settings, string? scratch = null, IReadOnlyDictionary<string, string>? environment = null, bool systemdParent = false)
    {
        scratch ??= RepositoryPaths.CreateScratch("agent");
        var socket = Path.Combine(scratch, "agent.sock");
        var process = Launch(settings, scratch, socket, environment ?? new Dictionary<string, string>(), systemdParent);
        var agent = new AgentProcess(process, scratch, socket);
        agent.Capture();
        await agent.WaitServingAsync(TimeSpan.FromSeconds(60));
        return agent;
    }

    /// <summary>Starts the agent and returns at once, not waiting for it to serve (e.g. to stop it while it starts).</summary>
    public static AgentProcess Begin(IReadOnlyDictionary<string, string> settings, string scratch, IReadOnlyDictionary<string, string>? environment = null, bool systemdParent = false)
    {
        var socket = Path.Combine(scratch, "agent.sock");
        var agent = new AgentProcess(Launch(settings, scratch, socket, environment ?? new Dictionary<string, string>(), systemdParent), scratch, socket);
        agent.Capture();
        return agent;
    }

    /// <summary>
    /// Runs the agent expecting it to refuse to start; returns its exit code and output. Its
    /// settings file is <paramref name="scratch"/>/agent.json when the test wrote one.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(IReadOnlyDictionary<string, string> settings, string? scratch = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var own = scratch is null;
        scratch ??= RepositoryPaths.CreateScratch("agent-config");
        try
        {
            await using var agent = Begin(settings, scratch, environment);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await agent.process.WaitForExitAsync(timeout.Token);
            return (agent.process.ExitCode, agent.Output);
        }
        finally
        {
            if (own)
            {
                Directory.Delete(scratch, recursive: true);
            }
        }
    }

    /// <summary>SIGTERM, as systemctl stop sends; returns the exit status once the agent has exited.</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        await ProcessRunner.RunAsync("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        return process.ExitCode;
    }

    /// <summary>kill -9: the agent dies wherever it is, as in a crash.</summary>
    public async Task KillAsync()
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        Channel.Dispose();
        if (!process.HasExited)
        {
            // SIGTERM, as systemd stops it; then make sure.
            try
            {
                await StopAsync(TimeSpan.FromSeconds(30));
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        process.Dispose();
    }

    private static Process Launch(IReadOnlyDictionary<string, string> settings, string scratch, string socket, IReadOnlyDictionary<string, string> environment, bool systemdParent)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (systemdParent)
        {
            var parent = Path.Combine(scratch, "bin", "systemd");
            Directory.CreateDirectory(Path.GetDirectoryName(parent)!);
            File.CreateSymbolicLink(parent, "/bin/bash");
            startInfo.FileName = parent;
            startInfo.ArgumentList.Add("-c");
            startInfo.ArgumentList.Add("trap 'kill -TERM $child; wait $child; exit $?' TERM; \"$@\" & child=$!; wait $child");
            startInfo.ArgumentList.Add("systemd");
            startInfo.ArgumentList.Add("dotnet");
        }

        startInfo.ArgumentList.Add(Binary);
        foreach (var argument in Arguments(settings, scratch, socket))
        {
            startInfo.ArgumentList.Add(argument);
        }

        // No /etc/compute-agent/agent.json from the machine leaks into a test: the scratch one
        // (a test may have written it; else no settings).
        var settingsFile = Path.Combine(scratch, "agent.json");
        if (!File.Exists(settingsFile))
        {
            Directory.CreateDirectory(scratch);
            File.WriteAllText(settingsFile, "{}");
        }

        startInfo.Environment["COMPUTE_AGENT_CONFIG"] = settingsFile;
        foreach (var (name, value) in environment)
        {
            startInfo.Environment[name] = value;
        }

        var started = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start the agent");
        Started.Add(started);
        return started;
    }

    private static IEnumerable<string> Arguments(IReadOnlyDictionary<string, string> settings, string scratch, string socket)
    {
        var all = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["StateDirectory"] = Path.Combine(scratch, "state"),
            ["InstancesDirectory"] = Path.Combine(scratch, "instances"),
            ["UnixSocketPath"] = socket,
            ["VirtType"] = "qemu",
            // Output holds the log even where the test runner itself runs under systemd.
            ["LogTarget"] = "console",
        };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        return all.Select(p => $"--Agent:{p.Key}={p.Value}");
    }

    private void Capture()
    {
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        void Append(string? line)
        {
            if (line is not null)
            {
                lock (output)
                {
                    output.AppendLine(line);
                }
            }
        }
    }

    private async Task WaitServingAsync(TimeSpan timeout)
    {
        var health = new Health.HealthClient(Channel);
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the agent exited with {process.ExitCode}: {Output}");
            }

            try
            {
                if ((await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(2))).Status == HealthCheckResponse.Types.ServingStatus.Serving)
                {
                    return;
                }
            }
            catch (Grpc.Core.RpcException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"the agent did not answer SERVING within {timeout}: {Output}");
    }

    private static System.Collections.Concurrent.ConcurrentBag<Process> StartedWithCleanup()
    {
        var started = new System.Collections.Concurrent.ConcurrentBag<Process>();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var process in started)
            {
                try
                {
                    if (!process.HasExited)
                    {
                        process.Kill(entireProcessTree: true);
                    }
                }
                catch (InvalidOperationException)
                {
                    // Disposed by its test: already stopped.
                }
            }
        };
        return started;
    }
}
