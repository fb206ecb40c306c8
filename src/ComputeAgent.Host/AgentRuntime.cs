using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Options;

namespace ComputeAgent.Host;

/// <summary>
/// Brings the agent up in order (state directory, database, libvirt, engine recovery) and down
/// again; the gRPC service asks it for the engine and answers UNAVAILABLE until it is ready.
/// </summary>
public sealed partial class AgentRuntime : IHostedService, IAsyncDisposable
{
    private readonly AgentOptions options;
    private readonly ILoggerFactory loggers;
    private readonly ILogger logger;
    private readonly TaskCompletionSource<InstanceEngine> ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private InstanceStore? store;
    private LibvirtSession? session;
    private InstanceEngine? engine;

    public AgentRuntime(IOptions<AgentOptions> options, ILoggerFactory loggers)
    {
        this.options = (options ?? throw new ArgumentNullException(nameof(options))).Value;
        this.loggers = loggers ?? throw new ArgumentNullException(nameof(loggers));
        logger = loggers.CreateLogger<AgentRuntime>();
    }

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
        store = await InstanceStore.OpenAsync(Path.Combine(options.StateDirectory, "agent.db"), cancellationToken).ConfigureAwait(false);
        session = new LibvirtSession(new LibvirtSessionOptions { Uri = options.LibvirtUri }, loggers.CreateLogger<LibvirtSession>());
        await session.ConnectAsync(cancellationToken).ConfigureAwait(false);
        var connection = await session.GetConnectionAsync(cancellationToken).ConfigureAwait(false);
        var host = options.ToHostSettings(kvmUsable: KvmOffered(connection));
        LogStarting(logger, options.LibvirtUri, host.VirtType.ToString());
        engine = new InstanceEngine(store, session, new DomainXmlBuilder(host), options.ToEngineOptions(), loggers.CreateLogger<InstanceEngine>());
        await engine.StartAsync(cancellationToken).ConfigureAwait(false);
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

    private static bool KvmOffered(LibvirtConnection connection)
    {
        try
        {
            return connection.GetDomainCapabilities(virtType: "kvm").Contains("<domain>kvm</domain>", StringComparison.Ordinal);
        }
        catch (LibvirtException)
        {
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Starting: libvirt {LibvirtUri}, virt_type {VirtType}")]
    private static partial void LogStarting(ILogger logger, string libvirtUri, string virtType);

    [LoggerMessage(Level = LogLevel.Information, Message = "Ready: {InstanceCount} instances recovered and in step with libvirt")]
    private static partial void LogReady(ILogger logger, int instanceCount);
}
