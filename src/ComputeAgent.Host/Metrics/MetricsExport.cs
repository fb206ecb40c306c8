using ComputeAgent.Host.Callers;
using ComputeAgent.Host.Controller;
using ComputeAgent.Libvirt;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Prometheus;

namespace ComputeAgent.Host.Metrics;

/// <summary>
/// GET /metrics in the Prometheus text format on its own listener (Agent:MetricsListen, off by
/// default). The <see cref="AgentMeter"/> instruments reach prometheus-net's registry through
/// <see cref="MeterBridge"/>; the per-guest series are set by <see cref="GuestMetrics"/>
/// from one bulk libvirt call per scrape. Scrapes run one at a time.
/// </summary>
public sealed class MetricsExport : IHostedService, IDisposable
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private static readonly double[] LibvirtCallBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private static readonly double[] OperationBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
    private static readonly double[] DeliveryBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

    private readonly CollectorRegistry registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly MeterBridge bridge;
    private readonly SemaphoreSlim scrapes = new(1, 1);

    public MetricsExport(AgentRuntime runtime, ImageSource images, IServiceProvider services, ILogger<GuestMetrics> logger)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(services);
        Host = new HostMetrics(runtime, images, services.GetService<ControllerLink>());
        Guests = new GuestMetrics(
            registry,
            async ct => await (runtime.Session ?? throw new AgentNotReadyException()).GetConnectionAsync(ct).ConfigureAwait(false),
            () => runtime.Engine?.List().ToDictionary(r => r.Uuid, r => r.Spec.Owner.ProjectId) ?? [],
            logger);
        bridge = new MeterBridge(registry, instrument => instrument.Name switch
        {
            "operation_duration_seconds" => OperationBuckets,
            "event_delivery_seconds" => DeliveryBuckets,
            _ => LibvirtCallBuckets,
        });
    }

    public HostMetrics Host { get; }

    public GuestMetrics Guests { get; }

    /// <summary>Writes one scrape: the guests' series refreshed, then every series in the text format.</summary>
    public async Task ScrapeAsync(Stream output, CancellationToken cancellationToken)
    {
        await scrapes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await Guests.RefreshAsync(cancellationToken).ConfigureAwait(false);
            bridge.Observe();
            await registry.CollectAndExportAsTextAsync(output, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            scrapes.Release();
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        bridge.Dispose();
        scrapes.Dispose();
    }

    /// <summary>Answers a request on the metrics listener: GET /metrics, after the client certificate check under mutual TLS.</summary>
    internal async Task ServeAsync(HttpContext context, bool mutualTls)
    {
        if (mutualTls)
        {
            var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
            var (_, refusal) = await context.RequestServices.GetRequiredService<CallerCheck>().CheckCertificateAsync(context, items).ConfigureAwait(false);
            if (refusal is not null)
            {
                var status = refusal.Code == Grpc.Core.StatusCode.PermissionDenied ? StatusCodes.Status403Forbidden : StatusCodes.Status401Unauthorized;
                await Answer(context, status, refusal.Message).ConfigureAwait(false);
                return;
            }
        }

        if (context.Request.Path != "/metrics")
        {
            await Answer(context, StatusCodes.Status404NotFound, "this listener serves GET /metrics only").ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.Headers.Allow = "GET, HEAD";
            await Answer(context, StatusCodes.Status405MethodNotAllowed, "/metrics answers GET only").ConfigureAwait(false);
            return;
        }

        // Whole, then sent: the response gets a length, and a failed scrape is a 500, not half a page.
        using var body = new MemoryStream();
        await ScrapeAsync(body, context.RequestAborted).ConfigureAwait(false);
        context.Response.ContentType = ContentType;
        context.Response.ContentLength = body.Length;
        body.Position = 0;
        await body.CopyToAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    private static Task Answer(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(message + "\n", context.RequestAborted);
    }
}

/// <summary>The metrics listener's wiring, one call each in Program.cs; nothing when Agent:MetricsListen is empty.</summary>
public static class MetricsSetup
{
    public static IServiceCollection AddMetricsExport(this IServiceCollection services, AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!string.IsNullOrEmpty(options.MetricsListen))
        {
            services.AddSingleton<MetricsExport>();

            // Made when the host starts, not at the first scrape: the bridge counts only what
            // happens after it listens.
            services.AddHostedService(s => s.GetRequiredService<MetricsExport>());
        }

        return services;
    }

    public static void ListenMetrics(this KestrelServerOptions kestrel, AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.MetricsListen))
        {
            return;
        }

        kestrel.Listen(System.Net.IPEndPoint.Parse(options.MetricsListen), listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            if (options.MetricsMutualTls)
            {
                // As the gRPC TCP listener: any certificate (or none) passes the handshake, so that
                // the refusal is an HTTP answer that says why rather than a broken handshake.
                listen.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(options.Callers.ServerCertificatePath!, options.Callers.ServerKeyPath),
                    ClientCertificateMode = ClientCertificateMode.AllowCertificate,
                    ClientCertificateValidation = (_, _, _) => true,
                });
            }

            listen.Use(next => connection =>
            {
                connection.Items[typeof(MetricsExport)] = true;
                return next(connection);
            });
        });
    }

    /// <summary>Requests on the metrics listener go to <see cref="MetricsExport"/> and nowhere else (no gRPC there, no gRPC caller checks).</summary>
    public static void MapMetricsExport(this WebApplication app, AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.MetricsListen))
        {
            return;
        }

        app.MapWhen(
            context => context.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(typeof(MetricsExport)) == true,
            branch => branch.Run(context => context.RequestServices.GetRequiredService<MetricsExport>().ServeAsync(context, options.MetricsMutualTls)));
    }
}
