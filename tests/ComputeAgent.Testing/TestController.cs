using System.Net;
using System.Net.Sockets;
using ComputeAgent.Api.V1;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Testing;

/// <summary>
/// A real controller for the tests: the Controller gRPC service on loopback, mutual TLS (its own
/// server certificate, agents' client certificates checked against the test CA), recording what
/// the agent reports in a <see cref="ControllerLedger"/> that outlives a restart of the controller.
/// </summary>
public sealed class TestController : IAsyncDisposable
{
    private readonly WebApplication app;

    private TestController(WebApplication app, int port)
    {
        this.app = app;
        Port = port;
    }

    public int Port { get; }

    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    public static async Task<TestController> StartAsync(TestCertificates authority, PemPair serverCertificate, ControllerLedger ledger, int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.Zero);
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 16 * 1024 * 1024);
        builder.Services.AddSingleton(ledger);
        var certificate = serverCertificate.Load();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, port, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificate = certificate,
                ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                ClientCertificateValidation = (client, _, _) => Chains(client, authority),
            });
        }));
        var app = builder.Build();
        app.MapGrpcService<ReportService>();
        await app.StartAsync();
        return new TestController(app, port);
    }

    /// <summary>Stops at once: open streams are aborted, as when the controller process dies.</summary>
    public async ValueTask DisposeAsync()
    {
        using var now = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await app.StopAsync(now.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await app.DisposeAsync();
    }

    private static bool Chains(System.Security.Cryptography.X509Certificates.X509Certificate2 client, TestCertificates authority)
    {
        using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
        chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority.Authority);
        chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        return chain.Build(client);
    }

    private sealed class ReportService(ControllerLedger ledger) : Api.V1.Controller.ControllerBase
    {
        public override async Task Report(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<ControllerMessage> responseStream, ServerCallContext context)
        {
            var stream = ledger.OpenStream();
            await context.WriteResponseHeadersAsync([]);
            await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
            {
                switch (message.KindCase)
                {
                    case AgentMessage.KindOneofCase.Hello:
                        ledger.Add(message.Hello);
                        break;
                    case AgentMessage.KindOneofCase.HostReport:
                        ledger.Add(message.HostReport);
                        break;
                    case AgentMessage.KindOneofCase.InstanceEvent:
                        if (ledger.Receive(stream, message.InstanceEvent) is { } ack)
                        {
                            await responseStream.WriteAsync(new ControllerMessage { Ack = new Ack { Sequence = ack } });
                        }

                        break;
                }
            }
        }
    }
}

/// <summary>
/// The controller's memory: what it stored, de-duplicated by sequence number, and the checks a
/// test makes on it (order, gaps, duplicates).
/// </summary>
public sealed class ControllerLedger
{
    private readonly Lock gate = new();
    private readonly List<long> firstSeen = [];
    private readonly HashSet<long> seen = [];
    private readonly List<Hello> hellos = [];
    private readonly List<HostReport> reports = [];
    private readonly Dictionary<long, DateTime> receivedAt = [];
    private readonly List<TaskCompletionSource> waiters = [];
    private int streams;

    /// <summary>While true the controller stores but does not acknowledge (as if its database lagged).</summary>
    public bool HoldAcks { get; set; }

    /// <summary>Acknowledge every Nth change only (and always the last one read before a pause); 1: each.</summary>
    public int AckEvery { get; set; } = 1;

    public int Duplicates { get; private set; }

    /// <summary>Changes that arrived on one stream with a sequence number not above the one before.</summary>
    public int OutOfOrderWithinStream { get; private set; }

    public int Streams => streams;

    public IReadOnlyList<long> FirstSeen
    {
        get
        {
            lock (gate)
            {
                return [.. firstSeen];
            }
        }
    }

    public IReadOnlyList<Hello> Hellos
    {
        get
        {
            lock (gate)
            {
                return [.. hellos];
            }
        }
    }

    public IReadOnlyList<HostReport> HostReports
    {
        get
        {
            lock (gate)
            {
                return [.. reports];
            }
        }
    }

    public long Highest
    {
        get
        {
            lock (gate)
            {
                return firstSeen.Count == 0 ? 0 : firstSeen.Max();
            }
        }
    }

    /// <summary>When the controller first read this change (UTC).</summary>
    public DateTime? ReceivedAt(long sequence)
    {
        lock (gate)
        {
            return receivedAt.TryGetValue(sequence, out var at) ? at : null;
        }
    }

    internal StreamState OpenStream()
    {
        Interlocked.Increment(ref streams);
        Changed();
        return new StreamState();
    }

    internal void Add(Hello hello)
    {
        lock (gate)
        {
            hellos.Add(hello);
        }

        Changed();
    }

    internal void Add(HostReport report)
    {
        lock (gate)
        {
            reports.Add(report);
        }

        Changed();
    }

    /// <summary>Stores the change; returns the sequence number to acknowledge, if any now.</summary>
    internal long? Receive(StreamState stream, InstanceEvent change)
    {
        var now = DateTime.UtcNow;
        lock (gate)
        {
            if (change.Sequence <= stream.Last)
            {
                OutOfOrderWithinStream++;
            }

            stream.Last = change.Sequence;
            stream.Count++;
            if (seen.Add(change.Sequence))
            {
                firstSeen.Add(change.Sequence);
                receivedAt[change.Sequence] = now;
            }
            else
            {
                Duplicates++;
            }
        }

        Changed();
        return HoldAcks || stream.Count % AckEvery != 0 ? null : change.Sequence;
    }

    /// <summary>Waits until the condition on this ledger holds (checked after every message).</summary>
    public async Task WaitForAsync(Func<ControllerLedger, bool> condition, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            TaskCompletionSource next;
            lock (gate)
            {
                next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                waiters.Add(next);
            }

            if (condition(this))
            {
                return;
            }

            try
            {
                await next.Task.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"the controller did not see {what} within {timeout}: highest {Highest}, {FirstSeen.Count} changes, {Streams} streams, {Hellos.Count} hellos");
            }
        }
    }

    private void Changed()
    {
        List<TaskCompletionSource> waking;
        lock (gate)
        {
            waking = [.. waiters];
            waiters.Clear();
        }

        foreach (var waiter in waking)
        {
            waiter.TrySetResult();
        }
    }

    internal sealed class StreamState
    {
        public long Last { get; set; }

        public long Count { get; set; }
    }
}
