using System.Net.Security;
using System.Reflection;
using System.Security.Cryptography.X509Certificates;
using ComputeAgent.Api.V1;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace ComputeAgent.Host.Controller;

/// <summary>
/// Dials the controller and keeps its Report stream open: Hello, a HostReport on connect and
/// every interval, then every state change of the event log after the last acknowledged sequence
/// number, in order. A lost link is redialled with back-off and jitter; what was not acknowledged
/// is sent again.
/// </summary>
public sealed partial class ControllerLink(AgentRuntime runtime, HostInventory inventory, IOptions<AgentOptions> options, ILogger<ControllerLink> logger) : BackgroundService
{
    private const int ReplayPage = 1000;
    private readonly ControllerLinkOptions settings = options.Value.Controller;
    private volatile string state = "not connected yet";
    private volatile bool connected;

    public bool IsConnected
    {
        get => connected;
        private set => connected = value;
    }

    /// <summary>In words, for the health service: connected, or why not.</summary>
    public string State => state;

    private AcknowledgedSequence? acknowledged;

    /// <summary>Instance events committed that the controller has not acknowledged yet (0 before the link has started).</summary>
    public long UnacknowledgedEvents => acknowledged is { } acks && runtime.Engine is { } engine ? Math.Max(0, engine.LastPublishedSequence - acks.Value) : 0;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var engine = await runtime.Ready.WaitAsync(stoppingToken).ConfigureAwait(false);
        var store = runtime.Store ?? throw new AgentNotReadyException();
        var lastSequence = await store.LastSequenceAsync(stoppingToken).ConfigureAwait(false);
        await using var acks = await AcknowledgedSequence.LoadAsync(runtime.Options.StateDirectory, lastSequence, logger, stoppingToken).ConfigureAwait(false);
        acknowledged = acks;
        var backoff = new ReconnectBackoff(TimeSpan.FromSeconds(settings.MinBackoffSeconds), TimeSpan.FromSeconds(settings.MaxBackoffSeconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            string reason;
            try
            {
                // A new channel per dial: renewed certificate files are picked up on the next dial.
                using var channel = Dial();
                await RunAsync(new Api.V1.Controller.ControllerClient(channel), engine, store, acks, backoff, stoppingToken).ConfigureAwait(false);
                reason = "the controller ended the stream";
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (RpcException ex)
            {
                // The transport's own words (refused, reset, certificate) are in the debug exception.
                reason = ex.Status.DebugException is { } cause ? $"{ex.StatusCode}: {ex.Status.Detail} ({cause.Message})" : $"{ex.StatusCode}: {ex.Status.Detail}";
            }
#pragma warning disable CA1031 // whatever ended the session (TLS, certificate files, libvirt, the store), the link redials
            catch (Exception ex)
#pragma warning restore CA1031
            {
                reason = $"{ex.GetType().Name}: {ex.Message}";
            }

            IsConnected = false;
            var delay = backoff.Next();
            state = $"not connected to {settings.Address}: {reason}; next attempt in {delay.TotalSeconds:0.0} s";
            LogLinkDown(logger, settings.Address!, reason, acks.Value, (int)delay.TotalMilliseconds);
            try
            {
                await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        IsConnected = false;
    }

    private GrpcChannel Dial()
    {
        var certificate = X509Certificate2.CreateFromPemFile(settings.CertificatePath!, settings.KeyPath);
        var trust = CertificateTrust.FromPemFile(settings.CaPath!);
        return GrpcChannel.ForAddress(settings.Address!, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    ClientCertificates = [certificate],
                    RemoteCertificateValidationCallback = (_, server, _, errors) =>
                    {
                        var problem = server is not X509Certificate2 presented ? "it presented no certificate"
                            : trust.Problem(presented) is { } reason ? $"its certificate '{presented.Subject}' is refused: {reason}"
                            : (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0 ? $"its certificate '{presented.Subject}' does not name the host of {settings.Address}"
                            : null;
                        if (problem is not null)
                        {
                            LogControllerRefused(logger, settings.Address!, problem);
                        }

                        return problem is null;
                    },
                },

                // A peer that vanished without a FIN (a cut cable, a dead NAT entry) is noticed by pings.
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                ConnectTimeout = TimeSpan.FromSeconds(10),
            },
            DisposeHttpClient = true,
        });
    }

    private async Task RunAsync(Api.V1.Controller.ControllerClient client, InstanceEngine engine, InstanceStore store, AcknowledgedSequence acks, ReconnectBackoff backoff, CancellationToken stoppingToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var token = session.Token;
        using var call = client.Report(cancellationToken: token);
        using var writing = new SemaphoreSlim(1, 1);

        // Subscribe before reading the log: nothing committed from here on can fall between the two.
        var live = engine.Events.Subscribe(token);
        try
        {
            var resumeAfter = acks.Value;
            var report = await inventory.ReadReportAsync(token).ConfigureAwait(false);
            await WriteAsync(new AgentMessage
            {
                Hello = new Hello
                {
                    HostId = string.IsNullOrEmpty(settings.HostId) ? report.Host.Hostname : settings.HostId,
                    AgentVersion = AgentVersion,
                    Capabilities = { Capabilities(engine) },
                    ResumeAfterSequence = resumeAfter,
                    LastSequence = await store.LastSequenceAsync(token).ConfigureAwait(false),
                },
            }).ConfigureAwait(false);
            await WriteAsync(new AgentMessage { HostReport = report }).ConfigureAwait(false);
            IsConnected = true;
            backoff.Reset();
            state = $"connected to {settings.Address}";
            LogLinkUp(logger, settings.Address!, resumeAfter);

            long sent = resumeAfter;
            var tasks = new[]
            {
                ReadAcksAsync(),
                ReportHostAsync(),
                SendChangesAsync(),
            };
            var first = await Task.WhenAny(tasks).ConfigureAwait(false);
            await session.CancelAsync().ConfigureAwait(false);

            // The others end cancelled once the first has ended; only the first's error says why.
            await Task.WhenAll(tasks).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await first.ConfigureAwait(false);

            async Task WriteAsync(AgentMessage message)
            {
                await writing.WaitAsync(token).ConfigureAwait(false);
                try
                {
                    await call.RequestStream.WriteAsync(message, token).ConfigureAwait(false);
                }
                finally
                {
                    writing.Release();
                }
            }

            async Task ReadAcksAsync()
            {
                await foreach (var message in call.ResponseStream.ReadAllAsync(token).ConfigureAwait(false))
                {
                    if (message.Ack is { } ack)
                    {
                        var limit = Volatile.Read(ref sent);
                        if (ack.Sequence > limit)
                        {
                            // An ack for what was never sent would skip changes after a restart.
                            LogAckBeyondSent(logger, ack.Sequence, limit);
                        }

                        acks.Advance(Math.Min(ack.Sequence, limit));
                    }
                }
            }

            async Task ReportHostAsync()
            {
                using var timer = new PeriodicTimer(TimeSpan.FromSeconds(settings.ReportIntervalSeconds));
                while (await timer.WaitForNextTickAsync(token).ConfigureAwait(false))
                {
                    await WriteAsync(new AgentMessage { HostReport = await inventory.ReadReportAsync(token).ConfigureAwait(false) }).ConfigureAwait(false);
                }
            }

            async Task SendChangesAsync()
            {
                while (true)
                {
                    // From the log: the backlog after the ack, or what a gap or an overflow skipped.
                    while (true)
                    {
                        var page = await store.ReadEventsAsync(Volatile.Read(ref sent), ReplayPage, token).ConfigureAwait(false);
                        foreach (var e in page)
                        {
                            await WriteAsync(new AgentMessage { InstanceEvent = e.ToApi() }).ConfigureAwait(false);
                            Volatile.Write(ref sent, e.Seq);
                        }

                        if (page.Count < ReplayPage)
                        {
                            break;
                        }
                    }

                    try
                    {
                        await foreach (var e in live.ReadAllAsync(token).ConfigureAwait(false))
                        {
                            var last = Volatile.Read(ref sent);
                            if (e.Seq <= last)
                            {
                                continue;
                            }

                            if (e.Seq != last + 1)
                            {
                                break; // something between is only in the log
                            }

                            await WriteAsync(new AgentMessage { InstanceEvent = e.ToApi() }).ConfigureAwait(false);
                            Metrics.HostMetrics.Delivered(e, "controller");
                            Volatile.Write(ref sent, e.Seq);
                        }
                    }
                    catch (WatcherTooSlowException)
                    {
                        // More than the broadcast's capacity behind: carry on from the log.
                        live.Dispose();
                        live = engine.Events.Subscribe(token);
                    }

                    token.ThrowIfCancellationRequested();
                    if (live.Completion.IsCompleted)
                    {
                        live.Dispose();
                        live = engine.Events.Subscribe(token);
                    }
                }
            }
        }
        finally
        {
            live.Dispose();
        }
    }

    private static IEnumerable<string> Capabilities(InstanceEngine engine) =>
        Enum.GetValues<InstanceCommand>().Where(InstanceDriver.Supports).Select(c => "command:" + c)
            .Append("virt_type:" + engine.Driver.Host.VirtType.ToString().ToLowerInvariant())
            .Append("ack:cumulative");

    private static string AgentVersion =>
        typeof(ControllerLink).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    [LoggerMessage(Level = LogLevel.Information, Message = "Controller link up: {ControllerAddress}, resending changes after sequence {Sequence}")]
    private static partial void LogLinkUp(ILogger logger, string controllerAddress, long sequence);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Controller link down: {ControllerAddress}: {Reason}; acknowledged up to {Sequence}; redialling in {DelayMs} ms")]
    private static partial void LogLinkDown(ILogger logger, string controllerAddress, string reason, long sequence, int delayMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The controller at {ControllerAddress} is not trusted: {Problem}; check Agent:Controller:CaPath")]
    private static partial void LogControllerRefused(ILogger logger, string controllerAddress, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The controller acknowledged sequence {Sequence} but only {Sent} was sent; counting the ack as {Sent}")]
    private static partial void LogAckBeyondSent(ILogger logger, long sequence, long sent);
}
