using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using System.Xml.Linq;
using ComputeAgent.Libvirt;

namespace ComputeAgent.Cli;

/// <summary>The main job until the gRPC agent exists: one real guest, its whole lifecycle, through the wrapper.</summary>
internal static class LifecycleWalk
{
    private static readonly TimeSpan StepBound = TimeSpan.FromSeconds(120);

    internal sealed record Options(string Image, string? ReadyLine, string Uri, string VirtType, string WorkDir);

    public static async Task<int> RunAsync(Options options, CancellationToken cancellationToken)
    {
        var uuid = Guid.NewGuid();
        var name = $"demo-{uuid.ToString()[..8]}";
        var dir = Path.Combine(options.WorkDir, uuid.ToString());
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(options.WorkDir, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        var disk = Path.Combine(dir, "disk.qcow2");
        var consoleLog = Path.Combine(dir, "console.log");
        await CreateOverlayAsync(options.Image, disk, cancellationToken);

        var clock = Stopwatch.StartNew();
        using var connection = LibvirtConnection.Open(options.Uri);
        var events = Channel.CreateUnbounded<DomainEvent>();
        connection.SubscribeDomainEvents(events.Writer);
        Console.WriteLine($"libvirt {LibvirtConnection.FormatVersion(connection.GetLibVersion())} on {connection.GetHostname()}, hypervisor {LibvirtConnection.FormatVersion(connection.GetHypervisorVersion())}, guest {name} ({uuid})");

        var domain = connection.DefineXml(DomainXml(name, uuid, options.VirtType, disk, consoleLog));
        try
        {
            await StepAsync("define", () => { }, DomainLifecycleDetail.DefinedAdded);
            await StepAsync("start", () => domain.Create(), DomainLifecycleDetail.StartedBooted);
            await ReadyAsync();
            await StepAsync("suspend", domain.Suspend, DomainLifecycleDetail.SuspendedPaused);
            await StepAsync("resume", domain.Resume, DomainLifecycleDetail.ResumedUnpaused);
            await StepAsync("managed save", domain.ManagedSave, DomainLifecycleDetail.StoppedSaved);
            await StepAsync("restore", () => domain.Create(), DomainLifecycleDetail.StartedRestored);
            await StepAsync("shutdown (ACPI)", () => domain.Shutdown(DomainShutdownFlags.AcpiPowerButton), DomainLifecycleDetail.StoppedShutdown);
            await StepAsync("start", () => domain.Create(), DomainLifecycleDetail.StartedBooted);
            await ReadyAsync();
            await StepAsync("destroy", () => domain.Destroy(), DomainLifecycleDetail.StoppedDestroyed);
            await StepAsync("undefine", () => domain.Undefine(), DomainLifecycleDetail.UndefinedRemoved);
            Console.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s: the guest went through its whole lifecycle");
            return 0;
        }
        catch (Exception ex) when (ex is LibvirtException or TimeoutException)
        {
            Console.Error.WriteLine($"FAILED: {ex.Message}");
            return 1;
        }
        finally
        {
            using (var left = connection.TryLookupByUuid(uuid))
            {
                if (left is not null)
                {
                    if (left.IsActive)
                    {
                        left.Destroy();
                    }

                    left.Undefine(DomainUndefineFlags.ManagedSave);
                }
            }

            domain.Dispose();
            Directory.Delete(dir, recursive: true);
        }

        async Task StepAsync(string step, Action call, DomainLifecycleDetail expected)
        {
            var started = clock.Elapsed;
            call();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(StepBound);
            DomainEvent received;
            do
            {
                received = await events.Reader.ReadAsync(cts.Token);
            }
            while (received.Uuid != uuid || received.Detail != expected);

            string state;
            using (var current = connection.TryLookupByUuid(uuid))
            {
                state = current?.GetState().ToString() ?? "gone";
            }

            Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:F2}s  {step,-16} event {received.Detail,-18} state {state,-22} ({(clock.Elapsed - started).TotalMilliseconds:F0} ms)");
        }

        async Task ReadyAsync()
        {
            if (options.ReadyLine is null)
            {
                return;
            }

            var started = clock.Elapsed;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(StepBound);
            while (!(File.Exists(consoleLog) && (await ReadShared(consoleLog)).Split('\n').Any(l => l.TrimEnd('\r') == options.ReadyLine)))
            {
                await Task.Delay(100, cts.Token);
            }

            Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:F2}s  {"guest ready",-16} console: {options.ReadyLine} ({(clock.Elapsed - started).TotalMilliseconds:F0} ms after start)");
        }
    }

    private static async Task<string> ReadShared(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync();
    }

    private static async Task CreateOverlayAsync(string image, string overlay, CancellationToken cancellationToken)
    {
        using var process = Process.Start(new ProcessStartInfo("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, overlay]) { RedirectStandardError = true })
            ?? throw new InvalidOperationException("qemu-img could not be started (apt-get install qemu-utils)");
        var error = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"qemu-img create failed: {error.Trim()}");
        }
    }


    // A minimal guest: the instance engine's domain XML builder takes over once the agent spawns.
    private static string DomainXml(string name, Guid uuid, string virtType, string disk, string consoleLog) =>
        new XElement("domain", new XAttribute("type", virtType),
            new XElement("name", name),
            new XElement("uuid", uuid),
            new XElement("memory", new XAttribute("unit", "MiB"), 256),
            new XElement("vcpu", 1),
            new XElement("os", new XElement("type", new XAttribute("arch", "x86_64"), new XAttribute("machine", "pc"), "hvm"), new XElement("boot", new XAttribute("dev", "hd"))),
            new XElement("features", new XElement("acpi")),
            new XElement("on_poweroff", "destroy"),
            new XElement("on_reboot", "restart"),
            new XElement("on_crash", "destroy"),
            new XElement("devices",
                new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
                    new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", "qcow2")),
                    new XElement("source", new XAttribute("file", disk)),
                    new XElement("target", new XAttribute("dev", "vda"), new XAttribute("bus", "virtio"))),
                new XElement("serial", new XAttribute("type", "file"),
                    new XElement("source", new XAttribute("path", consoleLog)),
                    new XElement("target", new XAttribute("port", 0))),
                new XElement("memballoon", new XAttribute("model", "none")))).ToString();
}
