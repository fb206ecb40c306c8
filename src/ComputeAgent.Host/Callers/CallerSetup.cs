using System.Security.Cryptography.X509Certificates;
using ComputeAgent.Host.Controller;
using Grpc.AspNetCore.HealthChecks;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace ComputeAgent.Host.Callers;

/// <summary>The wiring of caller checks and the controller link, one call each in Program.cs.</summary>
public static class CallerSetup
{
    /// <summary>Caller checks, the bearer token and the request size limit.</summary>
    public static IServiceCollection AddCallerChecks(this IServiceCollection services, AgentOptions options)
    {
        services.AddSingleton(options.Callers);
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(s => new BearerTokens(options.Callers, new HttpClient { Timeout = TimeSpan.FromSeconds(10) }, s.GetRequiredService<TimeProvider>()));
        services.AddSingleton<CallerCheck>();

        // gRPC answers a larger message RESOURCE_EXHAUSTED before any service sees it.
        services.Configure<GrpcServiceOptions>(g => g.MaxReceiveMessageSize = options.Callers.MaxRequestBytes);
        return services;
    }

    /// <summary>The controller link (when Agent:Controller:Address is set), with its own health service name.</summary>
    public static IServiceCollection AddControllerLink(this IServiceCollection services, AgentOptions options)
    {
        services.AddSingleton<HostInventory>();
        if (!options.Controller.Enabled)
        {
            return services;
        }

        services.AddSingleton<ControllerLink>();
        services.AddHostedService(s => s.GetRequiredService<ControllerLink>());
        services.AddHealthChecks().AddCheck<ControllerLinkHealth>(ControllerLinkHealth.Name);

        // "" keeps meaning the agent itself; "controller" is the link.
        services.Configure<GrpcHealthChecksOptions>(o =>
        {
            o.Services.Map(string.Empty, r => r.Name != ControllerLinkHealth.Name);
            o.Services.Map(ControllerLinkHealth.Name, r => r.Name == ControllerLinkHealth.Name);
        });
        return services;
    }

    /// <summary>Records the kernel's peer credentials of each Unix socket connection for <see cref="CallerCheck"/>.</summary>
    public static ListenOptions UseUnixPeerCredentials(this ListenOptions listen)
    {
        listen.Protocols = HttpProtocols.Http2;
        listen.Use(next => connection =>
        {
            if (connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket)
            {
                connection.Items[typeof(UnixPeer)] = UnixPeer.Read(socket);
            }

            return next(connection);
        });
        return listen;
    }

    /// <summary>
    /// TLS on the TCP listener, asking for a client certificate. The handshake accepts any
    /// certificate (or none) so that <see cref="CallerCheck"/> can refuse the call with a gRPC
    /// status that says why, rather than a broken handshake that says nothing.
    /// </summary>
    public static ListenOptions UseMutualTls(this ListenOptions listen, CallerOptions options)
    {
        listen.Protocols = HttpProtocols.Http2;
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = X509Certificate2.CreateFromPemFile(options.ServerCertificatePath!, options.ServerKeyPath),
            ClientCertificateMode = ClientCertificateMode.AllowCertificate,
            ClientCertificateValidation = (_, _, _) => true,
        });
        return listen;
    }
}
