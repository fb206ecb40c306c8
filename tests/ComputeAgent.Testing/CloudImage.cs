namespace ComputeAgent.Testing;

/// <summary>
/// The Debian 12 cloud image built by tests/guest/build-cloud-image.sh (debootstrap + cloud-init,
/// ext4 root made with mkfs.ext4 -d, kernel and initramfs for direct kernel boot), cached.
/// </summary>
public sealed class CloudImage
{
    private static readonly SemaphoreSlim BuildGate = new(1, 1);
    private static CloudImage? loaded;

    private CloudImage(IReadOnlyDictionary<string, string> env)
    {
        Disk = env["CLOUD_DISK"];
        Kernel = env["CLOUD_KERNEL"];
        Initrd = env["CLOUD_INITRD"];
        CommandLine = env["CLOUD_CMDLINE"];
    }

    public string Disk { get; }

    public string Kernel { get; }

    public string Initrd { get; }

    /// <summary>The kernel command line the image boots with (the os_command_line image property).</summary>
    public string CommandLine { get; }

    public static string DefaultDirectory =>
        Environment.GetEnvironmentVariable("COMPUTE_AGENT_CLOUD_IMAGE_DIR") is { Length: > 0 } dir ? dir : "/var/cache/compute-agent/cloud-image";

    /// <summary>Why this machine cannot have the image (not built, and not root to debootstrap it), or null.</summary>
    public static string? UnavailableReason =>
        File.Exists(Path.Combine(DefaultDirectory, "cloud-image.env")) || Environment.UserName == "root"
            ? null
            : $"the cloud image is not built in {DefaultDirectory} and only root can build it (tests/guest/build-cloud-image.sh runs debootstrap)";

    /// <summary>Loads the image, running the (cached, idempotent) build script first; it needs root and the Debian mirror.</summary>
    public static async Task<CloudImage> LoadOrBuildAsync()
    {
        await BuildGate.WaitAsync();
        try
        {
            if (loaded is not null)
            {
                return loaded;
            }

            var script = Path.Combine(RepositoryPaths.Root, "tests", "guest", "build-cloud-image.sh");
            (await ProcessRunner.RunAsync("bash", [script, DefaultDirectory], TimeSpan.FromMinutes(30))).EnsureSuccess("tests/guest/build-cloud-image.sh");
            var env = EnvFile.Read(Path.Combine(DefaultDirectory, "cloud-image.env"));
            loaded = new CloudImage(env);
            return loaded;
        }
        finally
        {
            BuildGate.Release();
        }
    }
}
