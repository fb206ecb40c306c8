using System.Globalization;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;

namespace ComputeAgent.Host.Callers;

/// <summary>
/// Runs before every call: on the Unix socket the kernel's peer credentials must be root, the
/// agent's own user or a member of the socket group; on TCP the client certificate must chain to
/// the configured CA (and carry an allowed subject); then the optional bearer token. A refused call
/// is answered UNAUTHENTICATED or PERMISSION_DENIED, logged with the peer, and reaches no service.
/// </summary>
public sealed partial class CallerCheck : IMiddleware
{
    private const string HealthPrefix = "/grpc.health.v1.Health/";
    private readonly CallerOptions options;
    private readonly BearerTokens tokens;
    private readonly ILogger<CallerCheck> logger;
    private readonly uint ownUid = LocalAccounts.OwnUid();
    private readonly uint? socketGroup;
    private readonly CertificateTrust? clientTrust;

    public CallerCheck(CallerOptions options, BearerTokens tokens, ILogger<CallerCheck> logger)
    {
        this.options = options;
        this.tokens = tokens;
        this.logger = logger;
        socketGroup = LocalAccounts.GroupId(options.SocketGroup);
        clientTrust = string.IsNullOrEmpty(options.ClientCaPath) ? null : CertificateTrust.FromPemFile(options.ClientCaPath);
        if (socketGroup is null)
        {
            LogNoSocketGroup(logger, options.SocketGroup);
        }
    }

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
        var unixPeer = items is not null && items.TryGetValue(typeof(UnixPeer), out var p) ? p as UnixPeer : null;
        var (peer, refusal) = unixPeer is not null ? (unixPeer.ToString(), CheckUnixPeer(unixPeer)) : await CheckCertificateAsync(context, items).ConfigureAwait(false);
        if (refusal is null && tokens.Required && !context.Request.Path.StartsWithSegments(HealthPrefix.TrimEnd('/'), StringComparison.Ordinal))
        {
            try
            {
                refusal = await tokens.CheckAsync(BearerToken(context.Request), context.RequestAborted).ConfigureAwait(false);
            }
            catch (RpcException ex)
            {
                refusal = new Refusal(ex.StatusCode, ex.Status.Detail);
            }
        }

        if (refusal is null)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        LogRefused(logger, context.Request.Path, peer, refusal.Code.ToString(), refusal.Message);

        // A trailers-only gRPC answer: the status travels in the response headers.
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = ((int)refusal.Code).ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = PercentEncode(refusal.Message);
    }

    /// <summary>grpc-message's encoding: printable ASCII but '%' as is, every other UTF-8 byte as %XX.</summary>
    internal static string PercentEncode(string message)
    {
        var text = new System.Text.StringBuilder(message.Length);
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(message))
        {
            text.Append(b is >= 0x20 and <= 0x7e and not (byte)'%' ? (char)b : $"%{b:X2}");
        }

        return text.ToString();
    }

    private Refusal? CheckUnixPeer(UnixPeer peer) =>
        peer.Uid == 0 || peer.Uid == ownUid || (socketGroup is { } gid && peer.IsInGroup(gid))
            ? null
            : Refusal.PermissionDenied($"uid {peer.Uid} may not call this agent: only root, uid {ownUid} (the agent) and members of group '{options.SocketGroup}' may; add the user to that group (Agent:Callers:SocketGroup)");

    /// <summary>A TLS caller's client certificate: chained to Agent:Callers:ClientCaPath and among AllowedSubjects (the metrics listener asks too).</summary>
    internal async Task<(string Peer, Refusal? Refusal)> CheckCertificateAsync(HttpContext context, IDictionary<object, object?>? items)
    {
        var address = $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}";
        var certificate = await context.Connection.GetClientCertificateAsync(context.RequestAborted).ConfigureAwait(false);
        if (certificate is null || clientTrust is null)
        {
            return (address, Refusal.Unauthenticated("no client certificate: this listener serves only mutual TLS; present a certificate signed by the CA in the agent's Agent:Callers:ClientCaPath"));
        }

        var peer = $"{address} ({certificate.Subject})";

        // One chain check per connection: its certificate cannot change.
        string? problem;
        if (items is not null && items.TryGetValue(typeof(CertificateTrust), out var cached))
        {
            problem = cached as string;
        }
        else
        {
            problem = clientTrust.Problem(certificate);
            if (items is not null)
            {
                items[typeof(CertificateTrust)] = problem;
            }
        }

        if (problem is not null)
        {
            return (peer, Refusal.Unauthenticated($"the client certificate '{certificate.Subject}' is refused: {problem}; present a valid certificate signed by the agent's client CA"));
        }

        if (options.AllowedSubjects.Count > 0 && !options.AllowedSubjects.Contains(certificate.Subject, StringComparer.Ordinal))
        {
            return (peer, Refusal.PermissionDenied($"the certificate subject '{certificate.Subject}' is not among Agent:Callers:AllowedSubjects; ask the operator to allow it"));
        }

        return (peer, null);
    }

    private static string? BearerToken(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization["Bearer ".Length..].Trim()
            : request.Headers["x-auth-token"].ToString() is { Length: > 0 } token ? token
            : null;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused {Method} from {Peer}: {StatusCode} {Detail}")]
    private static partial void LogRefused(ILogger logger, string method, string peer, string statusCode, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Group '{Group}' (Agent:Callers:SocketGroup) does not exist; only root and the agent's own user may call over the Unix socket")]
    private static partial void LogNoSocketGroup(ILogger logger, string group);
}
