using System.Runtime.InteropServices;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>The state folder and agent.db are not readable by other local users, whatever umask the agent starts with.</summary>
public sealed partial class StateFileTests
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [SkippableFact]
    public async Task Started_with_umask_022_over_an_old_0755_folder_and_0644_database_the_agent_makes_them_0711_and_0600()
    {
        Skip.IfNot(Environment.UserName == "root", "SKIP: reading as another uid (setpriv) needs root");
        var scratch = RepositoryPaths.CreateScratch("state-files");
        var state = Path.Combine(scratch, "state");
        var database = Path.Combine(state, "agent.db");

        // What an older agent left: a 0755 folder; then a fresh agent start creates the database.
        Directory.CreateDirectory(state);
        File.SetUnixFileMode(state, (UnixFileMode)0b111_101_101);
        var before = umask(0b000_010_010);
        AgentProcess agent;
        try
        {
            agent = await AgentProcess.StartAsync(new Dictionary<string, string> { ["LibvirtUri"] = "test:///default" }, scratch);
        }
        finally
        {
            _ = umask(before);
        }

        try
        {
            Assert.Equal("0022", ReadUmask(agent));
            Assert.Equal((UnixFileMode)0b111_001_001, File.GetUnixFileMode(state));
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(database));
            Assert.All(new[] { database + "-wal", database + "-shm" }.Where(File.Exists), f => Assert.Equal(OwnerOnly, File.GetUnixFileMode(f)));

            // Another local user can neither list the folder nor read the database.
            foreach (var (command, path) in new[] { ("ls", state), ("cat", database) })
            {
                var refused = await ProcessRunner.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", command, path], TimeSpan.FromSeconds(10));
                Assert.NotEqual(0, refused.ExitCode);
                Assert.Contains("Permission denied", refused.StandardError, StringComparison.Ordinal);
            }

            // An older 0644 database is narrowed at the next start.
            await agent.DisposeAsync();
            File.SetUnixFileMode(database, (UnixFileMode)0b110_100_100);
            agent = await AgentProcess.StartAsync(new Dictionary<string, string> { ["LibvirtUri"] = "test:///default" }, scratch);
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(database));
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>The umask the agent process runs with, as the kernel reports it.</summary>
    private static string ReadUmask(AgentProcess agent) =>
        File.ReadLines($"/proc/{agent.Pid}/status").First(l => l.StartsWith("Umask:", StringComparison.Ordinal))["Umask:".Length..].Trim();

    // The agent inherits the test process's umask; .NET has no call to set it.
    [LibraryImport("libc")]
    private static partial uint umask(uint mask);
}
