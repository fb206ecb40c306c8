using ComputeAgent.Host;
using ComputeAgent.Host.Callers;
using ComputeAgent.Host.HostShutdown;
using ComputeAgent.Host.Journal;
using ComputeAgent.Host.Metrics;
using ComputeAgent.Instances.Images;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Options;
using Serilog;

var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.Sources.Clear();
var configuration = AgentConfiguration.Load(builder.Configuration, args);
foreach (var warning in configuration.Warnings)
{
    // Before logging is set up (it depends on the settings); stderr reaches the journal under systemd.
    await Console.Error.WriteLineAsync($"compute-agent: warning: {warning}");
}

if (configuration.Options is not { } options || configuration.Problems.Count > 0)
{
    await Console.Error.WriteLineAsync("compute-agent: the configuration is not valid:\n  " + string.Join("\n  ", configuration.Problems));
    return 2;
}

if (options.LogTarget == "journal" && !File.Exists(options.JournalSocketPath))
{
    // Not fatal: journald may come up later; until then entries are dropped, so say it where it is seen.
    await Console.Error.WriteLineAsync($"compute-agent: Agent:LogTarget is journal but {options.JournalSocketPath} does not exist; log entries are dropped until journald listens there");
}

builder.Host.UseSystemd();
builder.Services.AddSerilog(logging => AgentLogging.Configure(logging, options));
builder.Services.Configure<AgentOptions>(builder.Configuration.GetSection(AgentOptions.Section));
builder.Services.AddSingleton<AgentRuntime>();
builder.Services.AddHostedService(s => s.GetRequiredService<AgentRuntime>());
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<RequestLedger>();
builder.Services.AddSingleton<ConsoleSessions>();
builder.Services.TryAddSingleton<ISystemdNotifier, SystemdNotifier>();
builder.Services.AddHostedService<SystemdWatchdog>();
builder.Services.AddSingleton<GuestCommands>();
builder.Services.AddHostedService<HostShutdownGuard>();
builder.Services.AddHostedService<ImageCacheCleanup>();
builder.Services.AddSingleton(s =>
{
    var agent = s.GetRequiredService<IOptions<AgentOptions>>().Value;
    if (string.IsNullOrEmpty(agent.ImageServiceUrl))
    {
        return new ImageSource(null, null, null);
    }

    var glance = new GlanceClient(new HttpClient(), new Uri(agent.ImageServiceUrl));
    var cache = new ImageCache(glance, agent.ToImageCacheOptions(), s.GetRequiredService<ILogger<ImageCache>>());

    // The agent's own Keystone token (when it checks callers' tokens with Keystone), else none.
    var own = string.IsNullOrEmpty(agent.Callers.KeystoneServiceTokenFile) ? null : File.ReadAllText(agent.Callers.KeystoneServiceTokenFile).Trim();
    return new ImageSource(glance, cache, new AgentImageService(glance, own));
});
builder.Services.AddGrpc(o =>
{
    o.Interceptors.Add<RequestLogScope>();
    o.Interceptors.Add<ErrorMapping>();
});
builder.Services.AddGrpcReflection();
builder.Services.AddGrpcHealthChecks(o => o.UseHealthChecksCache = false).AddCheck<AgentHealth>("agent");
builder.Services.AddCallerChecks(options);
builder.Services.AddControllerLink(options);
builder.Services.AddMetricsExport(options);

Directory.CreateDirectory(Path.GetDirectoryName(options.UnixSocketPath)!);
if (File.Exists(options.UnixSocketPath))
{
    File.Delete(options.UnixSocketPath); // a socket left by a previous run that was killed
}

builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.ListenUnixSocket(options.UnixSocketPath, l => l.UseUnixPeerCredentials());
    if (!string.IsNullOrEmpty(options.TcpListen))
    {
        kestrel.Listen(System.Net.IPEndPoint.Parse(options.TcpListen), l => l.UseMutualTls(options.Callers));
    }

    kestrel.ListenMetrics(options);
});

var app = builder.Build();
app.MapMetricsExport(options);
app.UseMiddleware<CallerCheck>();
app.MapGrpcService<ComputeAgentService>();
app.MapGrpcReflectionService();
app.MapGrpcHealthChecksService();
try
{
    await app.StartAsync();
}
catch (Exception e) when (AgentRuntime.IsStartRefusal(e))
{
    await app.DisposeAsync();
    if (e is OperationCanceledException)
    {
        // SIGTERM (systemctl stop) while starting, e.g. while waiting for libvirt: nothing is running yet.
        await Console.Error.WriteLineAsync("compute-agent: stopped while starting; nothing was started");
        return 0;
    }

    await Console.Error.WriteLineAsync($"compute-agent: {e.Message}");
    return 2;
}

if (Environment.GetEnvironmentVariable("COMPUTE_AGENT_FAULT") == "stall-libvirt-event-loop")
{
    // Fault injection for the watchdog test only: the libvirt event loop stops iterating.
    ComputeAgent.Libvirt.LibvirtEventLoop.InjectStall();
}

// Only the socket's owner and Agent:Callers:SocketGroup may open it.
if (SocketAccess.Restrict(options.UnixSocketPath, options.Callers.SocketGroup) is { } socketProblem)
{
    await Console.Error.WriteLineAsync("compute-agent: " + socketProblem);
    await app.StopAsync();
    return 2;
}

await app.WaitForShutdownAsync();
return 0;
