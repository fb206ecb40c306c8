using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Options;

namespace ComputeAgent.Host;

/// <summary>
/// Brings the agent up in order (state directory, database, libvirt, engine recovery) and down
/// again; the gRPC service asks it for the engine and answers UNAVAILABLE until it is ready.
/// </summary>
public sealed partial class AgentRuntime : IHostedService, IAsyncDisposable
{
    /// <summary>
    /// Answered from libvirt's QEMU capabilities cache a lookup takes milliseconds; when libvirt
    /// re-probes QEMU at every lookup (its cache never valid, e.g. /dev/kvm not usable by the QEMU
    /// user) it takes tens of seconds (68 s seen on Debian 12). 2 s tells them apart on a busy host.
    /// </summary>
    public static readonly TimeSpan SlowCapabilitiesLookup = TimeSpan.FromSeconds(2);

    /// <summary>
    /// While libvirt does not answer, systemd's start timeout (TimeoutStartSec=) is pushed out by
    /// this much (EXTEND_TIMEOUT_USEC), renewed every third of it: the wait is not a hang.
    /// </summary>
    private static readonly TimeSpan StartExtension = TimeSpan.FromSeconds(30);

    private readonly AgentOptions options;
    private readonly ILoggerFactory loggers;
    private readonly ILogger logger;
    private readonly ISystemdNotifier notifier;
    private readonly ImageSource images;
    private readonly TaskCompletionSource<InstanceEngine> ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private InstanceStore? store;
    private LibvirtSession? session;
    private InstanceEngine? engine;

    public AgentRuntime(IOptions<AgentOptions> options, ILoggerFactory loggers, ISystemdNotifier notifier, ImageSource images)
    {
        this.images = images ?? throw new ArgumentNullException(nameof(images));
        this.options = (options ?? throw new ArgumentNullException(nameof(options))).Value;
        this.loggers = loggers ?? throw new ArgumentNullException(nameof(loggers));
        this.notifier = notifier ?? throw new ArgumentNullException(nameof(notifier));
        logger = loggers.CreateLogger<AgentRuntime>();
    }

    /// <summary>
    /// Exceptions with which the agent itself ends its start-up, each with a message that says
    /// what to do: a stop while it starts, a state database it must not use.
    /// </summary>
    public static bool IsStartRefusal(Exception exception) =>
        exception is OperationCanceledException or StoreDamagedException or StoreSchemaException or HostSettingsRefusedException;

    public bool IsReady => ready.Task.IsCompletedSuccessfully;

    /// <summary>Completes with the engine once recovery has finished (never, when the start failed or was stopped).</summary>
    public Task<InstanceEngine> Ready => ready.Task;

    /// <summary>The engine, once recovery has finished.</summary>
    public InstanceEngine? Engine => IsReady ? ready.Task.Result : null;

    public LibvirtSession? Session => session;

    public InstanceStore? Store => store;

    public AgentOptions Options => options;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.StateDirectory);
        Directory.CreateDirectory(options.InstancesDirectory);

        // 0711, whatever the umask: others may pass through to the disks QEMU opens (instances/,
        // _base/) but not list the folder; agent.db itself is 0600 (InstanceStore).
        File.SetUnixFileMode(options.StateDirectory, (UnixFileMode)0b111_001_001);

        // QEMU runs as another user and must reach the instance folders.
        File.SetUnixFileMode(options.InstancesDirectory, (UnixFileMode)0b111_101_101);
        var databasePath = Path.Combine(options.StateDirectory, "agent.db");
        var databaseExisted = File.Exists(databasePath);
        store = await InstanceStore.OpenAsync(databasePath, cancellationToken).ConfigureAwait(false);
        session = new LibvirtSession(new LibvirtSessionOptions { Uri = options.LibvirtUri }, loggers.CreateLogger<LibvirtSession>());
        await WaitForLibvirtAsync(session.ConnectAsync(cancellationToken), cancellationToken).ConfigureAwait(false);
        var connection = await session.GetConnectionAsync(cancellationToken).ConfigureAwait(false);
        var host = options.ToHostSettings(kvmUsable: await KvmOfferedAsync(connection, cancellationToken).ConfigureAwait(false));
        LogStarting(logger, options.LibvirtUri, host.VirtType.ToString());
        DomainXmlBuilder xml;
        try
        {
            xml = new DomainXmlBuilder(host);
        }
        catch (InvalidInstanceSpecException e)
        {
            // Settings that only this host's libvirt can refuse (VirtType auto found no KVM here).
            throw new HostSettingsRefusedException($"the settings do not fit this host: Agent:VirtType {options.VirtType} runs guests as {host.VirtType.ToString().ToLowerInvariant()} here, and {e.Message}; change Agent:CpuMode or Agent:VirtType", e);
        }

        engine = new InstanceEngine(store, session, xml, options.ToEngineOptions(), loggers.CreateLogger<InstanceEngine>(), imageService: images.Own);
        await engine.StartAsync(cancellationToken).ConfigureAwait(false);
        if (!databaseExisted)
        {
            LogNewDatabase(engine.List().Select(r => r.Uuid).ToList(), databasePath);
        }

        ready.TrySetResult(engine);
        LogReady(logger, engine.List().Count);
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync().ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        if (engine is not null)
        {
            await engine.DisposeAsync().ConfigureAwait(false);
            engine = null;
        }

        if (session is not null)
        {
            await session.DisposeAsync().ConfigureAwait(false);
            session = null;
        }

        if (store is not null)
        {
            await store.DisposeAsync().ConfigureAwait(false);
            store = null;
        }
    }

    /// <summary>Waits for the first libvirt connection, telling systemd (if it waits for READY=1) that the start goes on.</summary>
    private async Task WaitForLibvirtAsync(Task connecting, CancellationToken cancellationToken)
    {
        while (!connecting.IsCompleted && !cancellationToken.IsCancellationRequested)
        {
            if (notifier.IsEnabled)
            {
                notifier.Notify(new ServiceState(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"EXTEND_TIMEOUT_USEC={(long)StartExtension.TotalMicroseconds}\nSTATUS=Waiting for libvirt at {options.LibvirtUri}")));
            }

            try
            {
                await Task.WhenAny(connecting, Task.Delay(StartExtension / 3, cancellationToken)).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The connect attempt ends on the same token; it is awaited below.
            }
        }

        await connecting.ConfigureAwait(false);
    }

    /// <summary>
    /// Whether libvirt offers kvm domains here; the lookup is timed because a slow one means libvirt
    /// re-probes QEMU at every lookup, and then every domain define is as slow.
    /// </summary>
    private async Task<bool> KvmOfferedAsync(LibvirtConnection connection, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        if (Environment.GetEnvironmentVariable("COMPUTE_AGENT_FAULT") == "slow-capabilities-lookup")
        {
            // Fault injection for the slow-libvirt warning's test only: the lookup takes longer than the threshold.
            await Task.Delay(SlowCapabilitiesLookup + TimeSpan.FromSeconds(0.5), cancellationToken).ConfigureAwait(false);
        }

        bool offered;
        try
        {
            offered = connection.GetDomainCapabilities(virtType: "kvm").Contains("<domain>kvm</domain>", StringComparison.Ordinal);
        }
        catch (LibvirtException)
        {
            offered = false;
        }

        var took = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        if (took >= SlowCapabilitiesLookup)
        {
            LogSlowCapabilities(logger, took.TotalSeconds, options.LibvirtUri);
        }

        return offered;
    }

    private void LogNewDatabase(List<Guid> adopted, string databasePath)
    {
        var instanceFolders = Directory.EnumerateFileSystemEntries(options.InstancesDirectory).Count();
        if (adopted.Count == 0 && instanceFolders == 0)
        {
            LogFirstDatabase(logger, databasePath);
        }
        else
        {
            LogDatabaseCreatedAnew(logger, databasePath, adopted.Count, string.Join(", ", adopted), instanceFolders, options.InstancesDirectory);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A capabilities lookup took {Seconds:0.0} s at libvirt {LibvirtUri} (from libvirt's cache it takes milliseconds): libvirt is re-probing QEMU at every lookup, and every domain define will be as slow. "
        + "The usual cause: /dev/kvm is not usable by the QEMU user (libvirtd's log says \"KVM was enabled when probing ... but it is not available now\"), e.g. root:root 0600 because no udev applied Debian's rule. "
        + "Fix: chgrp kvm /dev/kvm; chmod 0660 /dev/kvm (what udev's 50-udev-default.rules does), then restart libvirtd")]
    private static partial void LogSlowCapabilities(ILogger logger, double seconds, string libvirtUri);

    [LoggerMessage(Level = LogLevel.Information, Message = "Created the state database {DatabasePath} (none existed); no instances to adopt")]
    private static partial void LogFirstDatabase(ILogger logger, string databasePath);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The state database {DatabasePath} did not exist and was created anew: adopted {AdoptedCount} instances from the libvirt domains with disks under {InstancesDirectory} ({AdoptedInstances}), which holds {InstanceFolderCount} entries; "
        + "their history and faults are gone, their specs come from the domains' metadata, and folders of instances not adopted are left as they are. If agent.db was lost by mistake, stop the agent and restore it from a backup")]
    private static partial void LogDatabaseCreatedAnew(ILogger logger, string databasePath, int adoptedCount, string adoptedInstances, int instanceFolderCount, string instancesDirectory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Starting: libvirt {LibvirtUri}, virt_type {VirtType}")]
    private static partial void LogStarting(ILogger logger, string libvirtUri, string virtType);

    [LoggerMessage(Level = LogLevel.Information, Message = "Ready: {InstanceCount} instances recovered and in step with libvirt")]
    private static partial void LogReady(ILogger logger, int instanceCount);
}
