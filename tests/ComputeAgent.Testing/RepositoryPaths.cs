namespace ComputeAgent.Testing;

/// <summary>Where the repository and the per-run scratch space are.</summary>
public static class RepositoryPaths
{
    // COMPUTE_AGENT_REPO first: a build with --artifacts-path outside the tree has no
    // ComputeAgent.sln above its binaries.
    private static readonly Lazy<string> RootLazy = new(() =>
        Environment.GetEnvironmentVariable("COMPUTE_AGENT_REPO") is { Length: > 0 } configured
            ? configured
            : FindAbove(AppContext.BaseDirectory) ?? FindAbove(Directory.GetCurrentDirectory())
              ?? throw new InvalidOperationException($"ComputeAgent.sln not found above {AppContext.BaseDirectory}; set COMPUTE_AGENT_REPO to the repository root"));

    private static string? FindAbove(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ComputeAgent.sln")))
            {
                return dir.FullName;
            }
        }

        return null;
    }

    public static string Root => RootLazy.Value;

    /// <summary>
    /// A scratch folder for this test process under /var/tmp (not /tmp: QEMU, running as
    /// libvirt-qemu, must be able to reach the files), world-searchable so QEMU can open overlays.
    /// </summary>
    public static string CreateScratch(string purpose)
    {
        var path = Path.Combine("/var/tmp/compute-agent-tests", $"{purpose}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        File.SetUnixFileMode("/var/tmp/compute-agent-tests", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return path;
    }

    /// <summary>Removes a scratch folder; one still in use (a process that has not let go yet) is left for the next run's cleanup.</summary>
    public static void DeleteScratch(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
