using System.Threading.Channels;
using System.Xml.Linq;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>A real engine: a SQLite store in a scratch folder, a libvirt session, the XML builder.</summary>
public sealed class EngineHarness : IAsyncDisposable
{
    private EngineHarness(string scratch, string uri, HostSettings host, EngineOptions options)
    {
        Scratch = scratch;
        Uri = uri;
        Host = host;
        Options = options;
    }

    public string Scratch { get; }

    public string Uri { get; }

    public HostSettings Host { get; }

    public EngineOptions Options { get; }

    public string StorePath => Path.Combine(Scratch, "agent.db");

    public InstanceStore Store { get; private set; } = null!;

    public LibvirtSession Session { get; private set; } = null!;

    public InstanceEngine Engine { get; private set; } = null!;

    public ChannelReader<EventRecord> Events { get; private set; } = null!;

    /// <summary>The image service the next engine (after <see cref="RestartAsync"/>) reaches on its own; none unless a test sets it.</summary>
    public AgentImageService? ImageService { get; set; }

    /// <summary>The engine's clock (the system's unless a test sets its own).</summary>
    public TimeProvider? Time { get; private init; }

    public static async Task<EngineHarness> StartAsync(string uri, EngineOptions? options = null, string? scratch = null, Func<InstanceStore, Task>? beforeStart = null, TimeProvider? time = null)
    {
        scratch ??= RepositoryPaths.CreateScratch("engine");
        var host = Samples.Host with { InstancesDirectory = Path.Combine(scratch, "instances"), DedicatedCpuSet = [], DirectIoSupported = false };
        Directory.CreateDirectory(host.InstancesDirectory);
        var harness = new EngineHarness(scratch, uri, host, options ?? new EngineOptions { GracefulStopTimeout = TimeSpan.FromSeconds(30) }) { Time = time };
        await harness.OpenAsync(beforeStart);
        return harness;
    }

    /// <summary>Stops the engine as a crash would leave things (journal kept) and starts a new one on the same files.</summary>
    public async Task RestartAsync(Func<InstanceStore, Task>? beforeStart = null)
    {
        await CloseAsync();
        await OpenAsync(beforeStart);
    }

    private async Task OpenAsync(Func<InstanceStore, Task>? beforeStart)
    {
        Store = await InstanceStore.OpenAsync(StorePath);
        if (beforeStart is not null)
        {
            await beforeStart(Store);
        }

        Session = new LibvirtSession(new LibvirtSessionOptions { Uri = Uri }, NullLogger<LibvirtSession>.Instance);
        await Session.ConnectAsync(CancellationToken.None);
        Engine = new InstanceEngine(Store, Session, new DomainXmlBuilder(Host), Options, NullLogger<InstanceEngine>.Instance, Time, ImageService);
        Events = Engine.Events.Subscribe(CancellationToken.None);
        await Engine.StartAsync(CancellationToken.None);
    }

    private async Task CloseAsync()
    {
        await Engine.DisposeAsync();
        await Session.DisposeAsync();
        await Store.DisposeAsync();
    }

    /// <summary>
    /// Waits for the instance to reach the states (the engine's record), failing at once when a task
    /// of it fails on the way, or with the events seen after a bound (a hang bound, not a speed check).
    /// Only events committed after the call count: older ones still queued are stale.
    /// </summary>
    public async Task<EventRecord> WaitForAsync(Guid uuid, VmState vm, TaskState task, PowerState? power = null, int seconds = 60)
    {
        var after = await Store.LastSequenceAsync();
        var seen = new List<string>();
        EventRecord? reached = null;
        DateTime? stateSince = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            while (Events.TryRead(out var e))
            {
                if (e.Uuid != uuid || e.Seq <= after)
                {
                    continue;
                }

                seen.Add($"{e.NewVmState}/{e.NewTaskState}/{e.NewPowerState} ({e.Cause})");
                if (e.NewVmState == vm && e.NewTaskState == task && (power is null || e.NewPowerState == power))
                {
                    reached = e;
                }
                else if (e.Cause.EndsWith(" failed", StringComparison.Ordinal))
                {
                    var faults = await Store.ListFaultsAsync(uuid);
                    throw new InvalidOperationException($"{uuid}: {e.Cause} while waiting for {vm}/{task}/{power}: {(faults.Count > 0 ? faults[^1].Message : "no fault")}; saw [{string.Join(", ", seen)}]");
                }
            }

            if (Engine.Find(uuid) is { } now && now.VmState == vm && now.TaskState == task && (power is null || now.PowerState == power))
            {
                // The record changes just before its event is published: give the event a moment.
                stateSince ??= DateTime.UtcNow;
                if (reached is not null || DateTime.UtcNow - stateSince > TimeSpan.FromSeconds(1))
                {
                    return reached ?? new EventRecord(0, uuid, null, vm, null, task, null, now.PowerState, "already there", DateTimeOffset.UtcNow);
                }
            }

            await Task.WhenAny(Events.WaitToReadAsync().AsTask(), Task.Delay(100));
        }

        var record = Engine.Find(uuid);
        throw new TimeoutException($"{uuid} never reached {vm}/{task}/{power}; now {record?.VmState}/{record?.TaskState}/{record?.PowerState}; saw [{string.Join(", ", seen)}]");
    }

    /// <summary>Defines a test-driver domain carrying the agent's metadata, as the agent would have left it.</summary>
    public static Guid DefineTestDomainOfOurs(LibvirtConnection connection, bool start, string? disk = null)
    {
        var uuid = Guid.NewGuid();
        using var domain = connection.DefineXml(Samples.TestDriverDomainOfOurs(uuid, disk));
        if (start)
        {
            domain.Create();
        }

        return uuid;
    }

    public async ValueTask DisposeAsync()
    {
        // Whatever a failed test left, no domain of this engine's instances outlives it.
        var mine = Engine.List().Where(r => r.Spec.BlockDevices.Any(b => b.Source is FileDiskSource f && f.Path.StartsWith(Host.InstancesDirectory, StringComparison.Ordinal))).Select(r => r.Uuid).ToList();
        await CloseAsync();
        DomainCleanup.Remove(Uri, [.. mine]);
        try
        {
            Directory.Delete(Scratch, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
