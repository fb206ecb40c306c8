using System.Text;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Install.Tests;

/// <summary>
/// What the steps of <see cref="PackageInstallTests"/> share: whether this run may install the
/// package at all, how far the steps got, the phases of tests/install/install-test.sh, and the
/// cleanup that puts the machine back however the steps ended.
/// </summary>
public sealed class InstallTest : IAsyncLifetime
{
    public const string Gate = "COMPUTE_AGENT_INSTALL_TEST";

    /// <summary>Where the script keeps its state (pid, log) and where the notify socket goes.</summary>
    public const string StateDirectory = "/var/tmp/compute-agent-install-test";

    public static string Script => Path.Combine(RepositoryPaths.Root, "tests", "install", "install-test.sh");

    public bool Installed { get; set; }

    /// <summary>Null when the steps may run; otherwise the reason they skip, said loudly.</summary>
    public static string? NotEnabledReason
    {
        get
        {
            if (Environment.GetEnvironmentVariable(Gate) != "1")
            {
                return $"{Gate} is not 1. These steps install the compute-agent .deb on THIS machine, start it, "
                    + "then remove and purge it; test.sh sets it in its install step (as root, after the other projects). "
                    + $"By hand, as root: {Gate}=1 dotnet test tests/ComputeAgent.Install.Tests";
            }

            return IsRoot() ? null : "the install test runs dpkg -i / -r / -P and creates a system user: run it as root";
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (NotEnabledReason is null)
        {
            await RunAsync("cleanup", [], null, TimeSpan.FromMinutes(2));
        }
    }

    /// <summary>Runs one phase of install-test.sh; its PASS / FAIL / SKIP lines are the result's output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string phase, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment, TimeSpan timeout)
    {
        var startInfo = new System.Diagnostics.ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(Script);
        startInfo.ArgumentList.Add(phase);
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[key] = value;
        }

        using var process = System.Diagnostics.Process.Start(startInfo) ?? throw new InvalidOperationException("could not start bash");
        var output = new StringBuilder();
        var stdout = Pump(process.StandardOutput, output);
        var stderr = Pump(process.StandardError, output);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"install-test.sh {phase} did not finish within {timeout}:\n{output}");
        }

        await Task.WhenAll(stdout, stderr);
        lock (output)
        {
            return (process.ExitCode, output.ToString());
        }

        static async Task Pump(StreamReader reader, StringBuilder into)
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                lock (into)
                {
                    into.AppendLine(line);
                }
            }
        }
    }

    private static bool IsRoot() =>
        File.ReadLines("/proc/self/status")
            .Where(l => l.StartsWith("Uid:", StringComparison.Ordinal))
            .Select(l => l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1])
            .SingleOrDefault() == "0";
}
