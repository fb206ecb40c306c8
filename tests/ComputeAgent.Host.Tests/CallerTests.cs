using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>Who may call the agent: mutual TLS on TCP, peer credentials on the socket, the bearer token, the size limit.</summary>
public sealed class CallerTests
{
    private static readonly SpawnRequest Spawn = new()
    {
        InstanceUuid = "3f2c8a6e-0d1b-4c1e-9a52-7b6f1e0c2d4a",
        Name = "refused",
        ProjectId = "p",
        UserId = "u",
        ImageId = "0f5ba35c-5e03-e872-03fb-3f9e6e669330",
        Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 128, RootGib = 1 },
    };

    [Fact]
    public async Task On_tcp_only_a_valid_certificate_of_the_configured_ca_with_an_allowed_subject_may_call()
    {
        var scratch = RepositoryPaths.CreateScratch("callers-tls");
        var pki = TestCertificates.Create(scratch);
        var otherCa = TestCertificates.Create(scratch, "other CA");
        var server = pki.IssueServer("agent");
        var port = TestController.FreePort();
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["TcpListen"] = $"127.0.0.1:{port}",
            ["Callers:ServerCertificatePath"] = server.CertificatePath,
            ["Callers:ServerKeyPath"] = server.KeyPath,
            ["Callers:ClientCaPath"] = pki.CaPath,
            ["Callers:AllowedSubjects:0"] = "CN=controller",
        }, scratch);
        try
        {
            var refusals = new (PemPair? Client, StatusCode Code, string Says)[]
            {
                (null, StatusCode.Unauthenticated, "no client certificate"),
                (otherCa.IssueClient("controller"), StatusCode.Unauthenticated, "not signed by the configured CA"),
                (pki.IssueClient("controller", DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-1)), StatusCode.Unauthenticated, "outside its validity"),
                (pki.IssueClient("intruder"), StatusCode.PermissionDenied, "CN=intruder"),
            };
            foreach (var (client, code, says) in refusals)
            {
                using var channel = TlsChannel(port, pki, client);
                var api = new Api.V1.ComputeAgent.ComputeAgentClient(channel);
                var refused = await Assert.ThrowsAsync<RpcException>(() => api.SpawnAsync(Spawn).ResponseAsync);
                Assert.Equal(code, refused.StatusCode);
                Assert.Contains(says, refused.Status.Detail, StringComparison.Ordinal);
                Assert.Contains("Refused /computeagent.v1.ComputeAgent/Spawn from 127.0.0.1:", agent.Output, StringComparison.Ordinal);
            }

            // The allowed controller gets through; nothing the refused calls asked for was done.
            using var good = TlsChannel(port, pki, pki.IssueClient("controller"));
            var allowed = new Api.V1.ComputeAgent.ComputeAgentClient(good);
            Assert.Equal(16, (await allowed.GetHostAsync(new GetHostRequest())).Cpus);
            Assert.Empty((await allowed.ListInstancesAsync(new ListInstancesRequest())).Instances);
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact]
    public async Task A_tcp_listener_without_its_certificates_or_a_controller_without_https_stops_the_start_naming_the_keys()
    {
        var (exitCode, output) = await AgentProcess.RunToExitAsync(new Dictionary<string, string>
        {
            ["TcpListen"] = "127.0.0.1:50051",
            ["Controller:Address"] = "http://controller:8080",
        });

        Assert.Equal(2, exitCode);
        Assert.Contains("Agent:Callers:ServerCertificatePath '' must name a readable PEM file: the TCP listener serves only mutual TLS", output, StringComparison.Ordinal);
        Assert.Contains("Agent:Callers:ClientCaPath", output, StringComparison.Ordinal);
        Assert.Contains("Agent:Controller:Address 'http://controller:8080' must be the controller's https:// URL", output, StringComparison.Ordinal);
        Assert.Contains("Agent:Controller:CertificatePath", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_larger_than_the_maximum_is_refused_resource_exhausted_and_changes_nothing()
    {
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["Callers:MaxRequestBytes"] = "4096",
        });
        try
        {
            var large = Spawn.Clone();
            large.Name = new string('x', 8192);
            var refused = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SpawnAsync(large).ResponseAsync);
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Empty((await agent.Client.ListInstancesAsync(new ListInstancesRequest())).Instances);
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(agent.Scratch, recursive: true);
        }
    }

    [Fact]
    public async Task With_a_token_file_only_calls_carrying_that_token_get_through_and_health_needs_none()
    {
        var scratch = RepositoryPaths.CreateScratch("callers-token");
        var tokenFile = Path.Combine(scratch, "token");
        await File.WriteAllTextAsync(tokenFile, "s3cret-token\n");
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["Callers:TokenFile"] = tokenFile,
        }, scratch);
        try
        {
            var missing = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetHostAsync(new GetHostRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, missing.StatusCode);
            Assert.Contains("requires a bearer token", missing.Status.Detail, StringComparison.Ordinal);

            var wrong = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetHostAsync(new GetHostRequest(), new Metadata { { "authorization", "Bearer guess" } }).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, wrong.StatusCode);

            Assert.Equal(16, (await agent.Client.GetHostAsync(new GetHostRequest(), new Metadata { { "authorization", "Bearer s3cret-token" } })).Cpus);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await new Health.HealthClient(agent.Channel).CheckAsync(new HealthCheckRequest())).Status);
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact]
    public async Task With_keystone_a_token_it_validates_gets_through_and_is_asked_about_once_within_the_cache_time()
    {
        var scratch = RepositoryPaths.CreateScratch("callers-keystone");
        await using var keystone = await KeystoneStandIn.StartAsync("agent-service-token");
        keystone.Add("user-token", DateTimeOffset.UtcNow.AddHours(1));
        var serviceToken = Path.Combine(scratch, "service-token");
        await File.WriteAllTextAsync(serviceToken, "agent-service-token\n");
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["Callers:KeystoneUrl"] = keystone.Url,
            ["Callers:KeystoneServiceTokenFile"] = serviceToken,
        }, scratch);
        try
        {
            var unknown = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetHostAsync(new GetHostRequest(), new Metadata { { "x-auth-token", "stolen" } }).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, unknown.StatusCode);
            Assert.Contains("Keystone does not accept the bearer token", unknown.Status.Detail, StringComparison.Ordinal);

            var good = new Metadata { { "authorization", "Bearer user-token" } };
            Assert.Equal(16, (await agent.Client.GetHostAsync(new GetHostRequest(), good)).Cpus);
            Assert.Equal(16, (await agent.Client.GetHostAsync(new GetHostRequest(), good)).Cpus);
            Assert.Equal(1, keystone.Asked("user-token"));

            // Keystone gone: a token not in the cache cannot be checked, and the caller is told to retry.
            await keystone.StopAsync();
            var down = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetHostAsync(new GetHostRequest(), new Metadata { { "x-auth-token", "another" } }).ResponseAsync);
            Assert.Equal(StatusCode.Unavailable, down.StatusCode);
            Assert.Contains("retry later", down.Status.Detail, StringComparison.Ordinal);
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task On_the_unix_socket_a_member_of_the_socket_group_gets_through_and_others_are_refused_by_the_kernel_and_the_agent()
    {
        Skip.IfNot(Environment.UserName == "root", "SKIP: creating a group and a user and calling as them (setpriv) needs root");

        // A group that is not the agent's own (root's) primary group, and a user in it.
        var group = "ca-callers-" + Guid.NewGuid().ToString("N")[..8];
        var member = group + "-u";
        await RunAsRootAsync("groupadd", group);
        await RunAsRootAsync("useradd", "--no-create-home", "--no-user-group", "--gid", "nogroup", "--groups", group, "--shell", "/usr/sbin/nologin", member);
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["Callers:SocketGroup"] = group,
        });
        try
        {
            // The socket is root:GROUP 0660 (wait: the mode and group are set just after the agent answers).
            for (var i = 0; i < 50 && File.GetUnixFileMode(agent.SocketPath) != (UnixFileMode)0b110_110_000; i++)
            {
                await Task.Delay(100);
            }

            var owners = await ProcessRunner.RunAsync("stat", ["-c", "%U:%G %a", agent.SocketPath], TimeSpan.FromSeconds(10));
            Assert.Equal($"root:{group} 660", owners.StandardOutput.Trim());

            // The member (supplementary group only) gets GetHost's answer: a message frame of more than its 5-byte header.
            var answer = await CurlAsAsync(agent.SocketPath, $"--reuid={member}", "--regid=nogroup", "--init-groups");
            Assert.DoesNotContain("grpc-status: 7", answer, StringComparison.Ordinal);
            Assert.Contains("grpc-status: 0", answer, StringComparison.Ordinal);
            var bytes = int.Parse(answer[(answer.LastIndexOf("bytes=", StringComparison.Ordinal) + 6)..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(bytes > 5, answer);

            // uid nobody outside the group cannot even connect (curl's exit 7: the connect was refused).
            var outsider = await CurlAsAsync(agent.SocketPath, "--reuid=65534", "--regid=65534", "--clear-groups");
            Assert.Contains("curl: (7)", outsider, StringComparison.Ordinal);
            Assert.DoesNotContain("grpc-status", outsider, StringComparison.Ordinal);

            // Were the socket opened to everyone, the agent's own check still refuses the outsider.
            File.SetUnixFileMode(agent.SocketPath, (UnixFileMode)0b110_110_110);
            outsider = await CurlAsAsync(agent.SocketPath, "--reuid=65534", "--regid=65534", "--clear-groups");
            Assert.Contains("grpc-status: 7", outsider, StringComparison.Ordinal);
            Assert.Contains("uid 65534 may not call this agent", Uri.UnescapeDataString(outsider), StringComparison.Ordinal);
            Assert.Contains("Refused /computeagent.v1.ComputeAgent/GetHost from unix:pid=", agent.Output, StringComparison.Ordinal);
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(agent.Scratch, recursive: true);
            await RunAsRootAsync("userdel", member);
            await RunAsRootAsync("groupdel", group);
        }
    }

    private static async Task RunAsRootAsync(string command, params string[] arguments) =>
        (await ProcessRunner.RunAsync(command, arguments, TimeSpan.FromSeconds(30))).EnsureSuccess(command);

    /// <summary>GetHost as the user setpriv makes of <paramref name="identity"/>, speaking gRPC over HTTP/2 with curl; returns headers and trailers.</summary>
    private static async Task<string> CurlAsAsync(string socket, params string[] identity)
    {
        // One gRPC frame holding the empty GetHostRequest: no compression, length 0.
        var request = Path.Combine(Path.GetDirectoryName(socket)!, "get-host.grpc");
        await File.WriteAllBytesAsync(request, new byte[5]);
        var result = await ProcessRunner.RunAsync("setpriv", [
            .. identity, "--",
            "curl", "-sS", "--http2-prior-knowledge", "--unix-socket", socket, "-D", "-", "-o", "/dev/null", "-w", "\nbytes=%{size_download}\n",
            "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@" + request,
            "http://agent/computeagent.v1.ComputeAgent/GetHost"], TimeSpan.FromSeconds(30));
        return result.StandardOutput + result.StandardError;
    }

    private static GrpcChannel TlsChannel(int port, TestCertificates pki, PemPair? client) =>
        GrpcChannel.ForAddress($"https://127.0.0.1:{port}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { SslOptions = pki.ClientOptions(client) },
        });
}
