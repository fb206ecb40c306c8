using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Grpc.Core;

namespace ComputeAgent.Host.Callers;

/// <summary>
/// The optional bearer-token check: one static token from a file, or any token Keystone v3
/// validates (GET /v3/auth/tokens with X-Subject-Token), remembered for a while so that not every
/// call costs a round trip to Keystone.
/// </summary>
public sealed partial class BearerTokens
{
    private const int MaxCached = 10_000;
    private readonly CallerOptions options;
    private readonly HttpClient http;
    private readonly TimeProvider time;
    private readonly byte[]? staticToken;
    private readonly string? serviceToken;
    private readonly ConcurrentDictionary<string, DateTimeOffset> accepted = new(StringComparer.Ordinal);

    public BearerTokens(CallerOptions options, HttpClient http, TimeProvider time)
    {
        this.options = options;
        this.http = http;
        this.time = time;
        staticToken = string.IsNullOrEmpty(options.TokenFile) ? null : Encoding.UTF8.GetBytes(File.ReadAllText(options.TokenFile).Trim());
        serviceToken = string.IsNullOrEmpty(options.KeystoneServiceTokenFile) ? null : File.ReadAllText(options.KeystoneServiceTokenFile).Trim();
    }

    public bool Required => staticToken is not null || !string.IsNullOrEmpty(options.KeystoneUrl);

    /// <summary>Null when the token is good; else why it is refused.</summary>
    public async Task<Refusal?> CheckAsync(string? token, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(token))
        {
            return Refusal.Unauthenticated("this agent requires a bearer token: send 'authorization: Bearer TOKEN' (or x-auth-token) with every call");
        }

        if (staticToken is not null)
        {
            return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(token), staticToken)
                ? null
                : Refusal.Unauthenticated("the bearer token is not the one in the agent's Agent:Callers:TokenFile; send the right token");
        }

        // Keyed by a hash: the cache never holds a usable token.
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        var now = time.GetUtcNow();
        if (accepted.TryGetValue(key, out var until) && until > now)
        {
            return null;
        }

        return await AskKeystoneAsync(token, key, now, cancellationToken).ConfigureAwait(false);
    }

    private async Task<Refusal?> AskKeystoneAsync(string token, string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(options.KeystoneUrl!.TrimEnd('/') + "/"), "v3/auth/tokens"));
        request.Headers.Add("X-Auth-Token", serviceToken);
        request.Headers.Add("X-Subject-Token", token);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"Keystone at {options.KeystoneUrl} could not be asked about the token ({ex.Message}); retry later"));
        }

        using (response)
        {
            if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized)
            {
                return response.StatusCode == HttpStatusCode.Unauthorized && !string.IsNullOrEmpty(serviceToken)
                    ? throw new RpcException(new Status(StatusCode.Unavailable, $"Keystone at {options.KeystoneUrl} refused the agent's own token (Agent:Callers:KeystoneServiceTokenFile); the operator must renew it"))
                    : Refusal.Unauthenticated("Keystone does not accept the bearer token (expired or revoked); get a new token");
            }

            if (!response.IsSuccessStatusCode)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"Keystone at {options.KeystoneUrl} answered HTTP {(int)response.StatusCode} validating the token; retry later"));
            }

            var until = now.AddSeconds(options.KeystoneCacheSeconds);
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var json = await JsonDocument.ParseAsync(body, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (json.RootElement.TryGetProperty("token", out var t) && t.TryGetProperty("expires_at", out var e)
                && DateTimeOffset.TryParse(e.GetString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var expires))
            {
                if (expires <= now)
                {
                    return Refusal.Unauthenticated("the bearer token has expired; get a new token");
                }

                until = expires < until ? expires : until;
            }

            if (accepted.Count >= MaxCached)
            {
                accepted.Clear();
            }

            accepted[key] = until;
            return null;
        }
    }
}
