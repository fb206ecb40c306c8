using System.Security;

namespace ComputeAgent.Testing;

/// <summary>
/// The test guest built by tests/guest/build-guest.sh (kernel + busybox initramfs on a
/// BIOS-bootable qcow2), and per-test instances of it: an overlay, a console log, domain XML.
/// </summary>
public sealed class TestGuest
{
    private static readonly SemaphoreSlim BuildGate = new(1, 1);
    private static TestGuest? loaded;

    private TestGuest(string directory, IReadOnlyDictionary<string, string> env)
    {
        Directory = directory;
        Disk = env["GUEST_DISK"];
        DiskWithoutGuestAgent = env["GUEST_DISK_NO_GUEST_AGENT"];
        PasswordLinePrefix = env["GUEST_PASSWORD_LINE_PREFIX"];
        FsFreezeLinePrefix = env["GUEST_FSFREEZE_LINE_PREFIX"];
        Kernel = env["GUEST_KERNEL"];
        Initrd = env["GUEST_INITRD"];
        ReadyLine = env["GUEST_READY_LINE"];
        PowerOffLine = env.TryGetValue("GUEST_POWEROFF_LINE", out var powerOff) ? powerOff : "COMPUTE-AGENT-GUEST POWEROFF";
        SelfPowerOffLine = env.TryGetValue("GUEST_SELF_POWEROFF_LINE", out var selfPowerOff) ? selfPowerOff : "COMPUTE-AGENT-GUEST SELF-POWEROFF";
    }

    public string Directory { get; }

    /// <summary>The base "cloud image" (qcow2); never boot it directly, boot an overlay.</summary>
    public string Disk { get; }

    /// <summary>The same guest booted with compute_agent.guest_agent=off: it never starts qemu-ga.</summary>
    public string DiskWithoutGuestAgent { get; }

    /// <summary>What the guest's chpasswd prints, followed by " USER SHA256-OF-PASSWORD".</summary>
    public string PasswordLinePrefix { get; }

    /// <summary>What the guest agent's fsfreeze hook prints, followed by " freeze" or " thaw".</summary>
    public string FsFreezeLinePrefix { get; }

    public string Kernel { get; }

    public string Initrd { get; }

    /// <summary>The line the guest prints on its serial console once userspace is up.</summary>
    public string ReadyLine { get; }

    /// <summary>The line the guest prints when the ACPI power button makes it power off.</summary>
    public string PowerOffLine { get; }

    /// <summary>The line the guest prints when it powers itself off (kernel argument compute_agent.poweroff_after=SECONDS).</summary>
    public string SelfPowerOffLine { get; }

    public static string DefaultDirectory =>
        Environment.GetEnvironmentVariable("COMPUTE_AGENT_GUEST_DIR") is { Length: > 0 } dir ? dir : "/var/cache/compute-agent/test-guest";

    /// <summary>Loads the guest, running the (cached, idempotent) build script first.</summary>
    public static async Task<TestGuest> LoadOrBuildAsync()
    {
        await BuildGate.WaitAsync();
        try
        {
            if (loaded is not null)
            {
                return loaded;
            }

            var script = Path.Combine(RepositoryPaths.Root, "tests", "guest", "build-guest.sh");
            (await ProcessRunner.RunAsync("bash", [script, DefaultDirectory], TimeSpan.FromMinutes(10))).EnsureSuccess("tests/guest/build-guest.sh");
            var env = EnvFile.Read(Path.Combine(DefaultDirectory, "guest.env"));
            loaded = new TestGuest(DefaultDirectory, env);
            return loaded;
        }
        finally
        {
            BuildGate.Release();
        }
    }

    /// <summary>Creates an overlay on the guest disk and returns the files and XML for one domain.</summary>
    public async Task<GuestInstance> CreateInstanceAsync(string scratch, string name, Guid uuid)
    {
        var disk = Path.Combine(scratch, $"{name}.qcow2");
        var console = Path.Combine(scratch, $"{name}.console.log");
        (await ProcessRunner.RunAsync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", Disk, disk], TimeSpan.FromSeconds(30)))
            .EnsureSuccess("qemu-img create");
        return new GuestInstance(name, uuid, disk, console, DomainXml(name, uuid, disk, console));
    }

    /// <summary>
    /// The domain XML of tests/guest/example-domain.xml for one instance (TCG, ACPI, virtio disk,
    /// serial console to a file). The instance engine's XML builder replaces this for agent tests.
    /// </summary>
    public static string DomainXml(string name, Guid uuid, string disk, string consoleLog)
    {
        var template = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "tests", "guest", "example-domain.xml"));
        var start = template.IndexOf("<domain", StringComparison.Ordinal);
        return template[start..]
            .Replace("@NAME@", SecurityElement.Escape(name), StringComparison.Ordinal)
            .Replace("@DISK@", SecurityElement.Escape(disk), StringComparison.Ordinal)
            .Replace("@CONSOLE_LOG@", SecurityElement.Escape(consoleLog), StringComparison.Ordinal)
            .Replace("</name>", $"</name>\n  <uuid>{uuid}</uuid>", StringComparison.Ordinal);
    }
}

public sealed record GuestInstance(string Name, Guid Uuid, string DiskPath, string ConsoleLogPath, string Xml);
