using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// Keystone's token validation as the agent uses it, on a real HTTP server (Kestrel, 127.0.0.1,
/// a free port): GET /v3/auth/tokens answers 401 unless X-Auth-Token is the service token it
/// accepts, 404 for a subject token (X-Subject-Token) it does not know, else the token with its
/// expires_at. A real Keystone needs a database and a WSGI server.
/// </summary>
internal sealed class KeystoneStandIn : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly ConcurrentDictionary<string, DateTimeOffset> tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> asked = new(StringComparer.Ordinal);

    private KeystoneStandIn(WebApplication app, string serviceToken)
    {
        this.app = app;
        ServiceToken = serviceToken;
        app.MapGet("/v3/auth/tokens", Validate);
    }

    /// <summary>http://127.0.0.1:PORT</summary>
    public string Url { get; private set; } = null!;

    /// <summary>The agent's own token as Keystone accepts it; another value makes Keystone refuse the agent's token.</summary>
    public string ServiceToken { get; set; }

    /// <summary>Answer every validation with this status instead (a Keystone that fails).</summary>
    public HttpStatusCode? Status { get; set; }

    public static async Task<KeystoneStandIn> StartAsync(string serviceToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var keystone = new KeystoneStandIn(builder.Build(), serviceToken);
        await keystone.app.StartAsync();
        keystone.Url = keystone.app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return keystone;
    }

    /// <summary>A token Keystone validates, expiring at <paramref name="expiresAt"/>.</summary>
    public void Add(string token, DateTimeOffset expiresAt) => tokens[token] = expiresAt;

    /// <summary>How many times Keystone was asked about <paramref name="token"/>.</summary>
    public int Asked(string token) => asked.GetValueOrDefault(token);

    public Task StopAsync() => app.StopAsync();

    public async ValueTask DisposeAsync() => await app.DisposeAsync();

    private IResult Validate(HttpRequest request)
    {
        string subject = request.Headers["X-Subject-Token"].ToString();
        asked.AddOrUpdate(subject, 1, (_, n) => n + 1);
        if (Status is { } status)
        {
            return Results.StatusCode((int)status);
        }

        if (request.Headers["X-Auth-Token"] != ServiceToken)
        {
            return Results.StatusCode(StatusCodes.Status401Unauthorized);
        }

        return tokens.TryGetValue(subject, out var expires)
            ? Results.Json(new { token = new { expires_at = expires.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", System.Globalization.CultureInfo.InvariantCulture) } })
            : Results.NotFound();
    }
}
