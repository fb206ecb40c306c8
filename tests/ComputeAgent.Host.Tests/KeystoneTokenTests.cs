extern alias host;

using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Grpc.Core;
using Xunit;
using BearerTokens = host::ComputeAgent.Host.Callers.BearerTokens;
using CallerOptions = host::ComputeAgent.Host.Callers.CallerOptions;
using Refusal = host::ComputeAgent.Host.Callers.Refusal;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// The Keystone token check's failure paths against a Keystone stand-in the test starts: the
/// agent's own token refused, Keystone failing, a token past its expires_at, and the cache time
/// capped by the token's expiry.
/// </summary>
public sealed class KeystoneTokenTests
{
    private const string ServiceToken = "agent-service-token";

    [Fact]
    public async Task Keystone_failing_or_refusing_the_agents_own_token_is_unavailable_and_an_expired_token_unauthenticated()
    {
        var scratch = RepositoryPaths.CreateScratch("callers-keystone-refusals");
        await using var keystone = await KeystoneStandIn.StartAsync(ServiceToken);
        keystone.Add("expired-token", DateTimeOffset.UtcNow.AddMinutes(-1));
        keystone.Add("user-token", DateTimeOffset.UtcNow.AddHours(1));
        keystone.Add("other-user-token", DateTimeOffset.UtcNow.AddHours(1));
        var serviceTokenFile = Path.Combine(scratch, "service-token");
        await File.WriteAllTextAsync(serviceTokenFile, ServiceToken + "\n");
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["Callers:KeystoneUrl"] = keystone.Url,
            ["Callers:KeystoneServiceTokenFile"] = serviceTokenFile,
        }, scratch);
        try
        {
            // Keystone validates the token but its expires_at has passed.
            var expired = await RefusedAsync(agent, "expired-token");
            Assert.Equal((StatusCode.Unauthenticated, "the bearer token has expired; get a new token"), (expired.StatusCode, expired.Status.Detail));

            // Keystone answers 500: the token could not be checked, the caller is told to retry; the failure is not remembered.
            keystone.Status = System.Net.HttpStatusCode.InternalServerError;
            var failing = await RefusedAsync(agent, "user-token");
            Assert.Equal((StatusCode.Unavailable, $"Keystone at {keystone.Url} answered HTTP 500 validating the token; retry later"), (failing.StatusCode, failing.Status.Detail));
            keystone.Status = null;
            Assert.Equal(16, (await agent.Client.GetHostAsync(new GetHostRequest(), Token("user-token"))).Cpus);
            Assert.Equal(2, keystone.Asked("user-token"));

            // The agent's own token no longer accepted (rotated in Keystone): the operator's problem, not the caller's token.
            keystone.ServiceToken = "renewed-service-token";
            var own = await RefusedAsync(agent, "other-user-token");
            Assert.Equal(
                (StatusCode.Unavailable, $"Keystone at {keystone.Url} refused the agent's own token (Agent:Callers:KeystoneServiceTokenFile); the operator must renew it"),
                (own.StatusCode, own.Status.Detail));

            // A token accepted before is still trusted from the cache, without asking Keystone.
            Assert.Equal(16, (await agent.Client.GetHostAsync(new GetHostRequest(), Token("user-token"))).Cpus);
            Assert.Equal(2, keystone.Asked("user-token"));
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact]
    public async Task A_token_is_trusted_from_the_cache_until_its_expiry_when_that_comes_before_the_cache_time()
    {
        var scratch = RepositoryPaths.CreateScratch("callers-keystone-cache");
        var start = new DateTimeOffset(2030, 1, 1, 12, 0, 0, TimeSpan.Zero);
        var clock = new ManualTime(start);
        await using var keystone = await KeystoneStandIn.StartAsync(ServiceToken);
        keystone.Add("short-lived", start.AddSeconds(60));
        keystone.Add("long-lived", start.AddHours(1));
        var serviceTokenFile = Path.Combine(scratch, "service-token");
        await File.WriteAllTextAsync(serviceTokenFile, ServiceToken);
        using var http = new HttpClient();
        var tokens = new BearerTokens(
            new CallerOptions { KeystoneUrl = keystone.Url, KeystoneServiceTokenFile = serviceTokenFile, KeystoneCacheSeconds = 300 },
            http,
            clock);
        try
        {
            Assert.Null(await tokens.CheckAsync("short-lived", CancellationToken.None));
            Assert.Null(await tokens.CheckAsync("long-lived", CancellationToken.None));

            // 59 s on: both from the cache.
            clock.Now = start.AddSeconds(59);
            Assert.Null(await tokens.CheckAsync("short-lived", CancellationToken.None));
            Assert.Null(await tokens.CheckAsync("long-lived", CancellationToken.None));
            Assert.Equal((1, 1), (keystone.Asked("short-lived"), keystone.Asked("long-lived")));

            // 60 s on, the short-lived token's expiry, well inside the 300 s cache time: Keystone is asked again, and its expires_at has passed.
            clock.Now = start.AddSeconds(60);
            Assert.Equal(new Refusal(StatusCode.Unauthenticated, "the bearer token has expired; get a new token"), await tokens.CheckAsync("short-lived", CancellationToken.None));
            Assert.Equal(2, keystone.Asked("short-lived"));

            // The long-lived token keeps the whole cache time: from the cache until 300 s, asked again at 300 s.
            clock.Now = start.AddSeconds(299);
            Assert.Null(await tokens.CheckAsync("long-lived", CancellationToken.None));
            Assert.Equal(1, keystone.Asked("long-lived"));
            clock.Now = start.AddSeconds(300);
            Assert.Null(await tokens.CheckAsync("long-lived", CancellationToken.None));
            Assert.Equal(2, keystone.Asked("long-lived"));
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static Metadata Token(string token) => new() { { "authorization", $"Bearer {token}" } };

    private static async Task<RpcException> RefusedAsync(AgentProcess agent, string token) =>
        await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetHostAsync(new GetHostRequest(), Token(token)).ResponseAsync);
}
