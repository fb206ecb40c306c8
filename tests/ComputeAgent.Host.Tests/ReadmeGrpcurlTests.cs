using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Reflection.V1Alpha;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// The grpcurl commands of README, the documents it links and the man pages (<see cref="Documents"/>),
/// exactly as written, against a real agent and real guests. grpcurl is
/// not packaged in Debian 12, so bash expands each command as a shell would (quotes, line
/// continuations, $(base64 -w0 user-data)) into a grpcurl function that hands over its arguments,
/// and <see cref="CallAsync"/> does what grpcurl does with them: list and describe through server
/// reflection, a call with the -d JSON body (proto field names, as grpcurl reads them). One
/// substitution: /run/compute-agent/agent.sock becomes the test agent's socket. The image ids the
/// commands name are served (the test guest under those ids).
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class ReadmeGrpcurlTests(QemuHost host)
{
    private const string DocumentedSocket = "/run/compute-agent/agent.sock";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [SkippableFact]
    public async Task Every_grpcurl_command_the_documents_show_is_answered_by_a_real_agent()
    {
        host.SkipIfUnavailable();
        var shown = Documents.Commands("grpcurl");
        var commands = shown.Select(c => c.Command).ToList();

        // README's list, describe, spawn and watch come first (the watch's snapshot is that spawn's
        // guest); the config-drive spawn of src/README.md and the operators' list follow.
        Assert.Equal(["README.md", "README.md", "README.md", "README.md"], shown.Take(4).Select(c => c.Document));
        Assert.True(commands.Count >= 5, "the documents' grpcurl commands:\n" + string.Join("\n", commands));
        var scratch = RepositoryPaths.CreateScratch("readme-grpcurl");
        var imageDirectory = Path.Combine(scratch, "images");
        Directory.CreateDirectory(imageDirectory);
        foreach (var id in new[] { "0f5ba35c-5e03-e872-03fb-3f9e6e669330", "4e681fb7-30dd-8567-0a5e-f25c241a465d" })
        {
            File.Copy(host.Guest.Disk, Path.Combine(imageDirectory, id + ".qcow2"));
            await File.WriteAllTextAsync(Path.Combine(imageDirectory, id + ".qcow2.json"), $"{{\"id\": \"{id}\"}}");
        }

        // The user data file the config-drive spawn (src/README.md) reads with $(base64 -w0 user-data).
        await File.WriteAllTextAsync(Path.Combine(scratch, "user-data"), "#!/bin/sh\necho readme user data\n");
        var images = await ImageService.StartAsync(imageDirectory);
        var agents = new List<AgentProcess>();
        var spawned = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            var agent = await StartAgentAsync(images, agents);
            foreach (var command in commands)
            {
                var arguments = await ExpandAsync(command, scratch);
                var body = arguments.IndexOf("-d") is var d and >= 0 ? arguments[d + 1] : null;
                if (arguments[^1].EndsWith("/Spawn", StringComparison.Ordinal)
                    && JsonParser.Default.Parse<SpawnRequest>(body ?? "{}").InstanceUuid is var uuid
                    && !spawned.Add(uuid))
                {
                    // The same instance UUID again would only answer the first instance: the first
                    // guest goes, and a fresh agent runs the spawn for real.
                    DomainCleanup.Remove(QemuHost.Uri, Guid.Parse(uuid));
                    await agent.DisposeAsync();
                    agent = await StartAgentAsync(images, agents);
                }

                await CheckAsync(command, arguments, agent);
            }
        }
        finally
        {
            foreach (var uuid in spawned)
            {
                DomainCleanup.Remove(QemuHost.Uri, Guid.Parse(uuid));
            }

            foreach (var agent in agents)
            {
                await agent.DisposeAsync();
                Directory.Delete(agent.Scratch, recursive: true);
            }

            await images.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>Runs one expanded command and checks its answer as an operator would read grpcurl's output.</summary>
    private static async Task CheckAsync(string command, IReadOnlyList<string> arguments, AgentProcess agent)
    {
        var answer = await CallAsync(arguments, agent);
        var what = arguments.Contains("list") ? "list" : arguments.Contains("describe") ? "describe" : arguments[^1];
        switch (what)
        {
            case "list":
                Assert.Equal(["computeagent.v1.ComputeAgent", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"], ((string[])answer).Order(StringComparer.Ordinal));
                break;
            case "describe":
                var service = Assert.IsType<ServiceDescriptorProto>(answer);
                Assert.Contains("Spawn", service.Method.Select(m => m.Name));
                Assert.Contains("WatchInstances", service.Method.Select(m => m.Name));
                break;
            case "computeagent.v1.ComputeAgent/Spawn":
                var reply = Assert.IsType<InstanceReply>(answer);
                Assert.Equal(VmState.Building, reply.Instance.VmState);
                var uuid = reply.Instance.Uuid;
                var instance = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow + Bound);
                Assert.True(instance.VmState == VmState.Active && instance.PowerState == PowerState.Running, $"{command}\n{instance}\n{agent.Output}");
                break;
            case "computeagent.v1.ComputeAgent/WatchInstances":
                // The snapshot: one event per instance, here the one spawned before it.
                var first = Assert.IsType<InstanceEvent>(answer);
                Assert.Equal(VmState.Active, first.VmState);
                Assert.Equal("3f2c8a6e-0d1b-4c1e-9a52-7b6f1e0c2d4a", first.InstanceUuid);
                break;
            default:
                Assert.Fail($"a document shows a grpcurl call this test does not check yet: {command}");
                break;
        }
    }

    /// <summary>
    /// What grpcurl -plaintext -unix [-d JSON] SOCKET (list | describe SYMBOL | SERVICE/METHOD) asks:
    /// the service names, the service's descriptor, the unary answer or a stream's first message.
    /// </summary>
    private static async Task<object> CallAsync(IReadOnlyList<string> arguments, AgentProcess agent)
    {
        var rest = new List<string>();
        string? body = null;
        for (var i = 0; i < arguments.Count; i++)
        {
            switch (arguments[i])
            {
                case "-plaintext" or "-unix":
                    break;
                case "-d":
                    body = arguments[++i];
                    break;
                default:
                    Assert.False(arguments[i].StartsWith('-'), $"grpcurl option {arguments[i]} is not one this test knows");
                    rest.Add(arguments[i]);
                    break;
            }
        }

        Assert.Equal(DocumentedSocket, rest[0]);
        var reflection = new ServerReflection.ServerReflectionClient(agent.Channel);
        if (rest[1] == "list")
        {
            var listed = await AskAsync(reflection, new ServerReflectionRequest { ListServices = string.Empty });
            return listed.ListServicesResponse.Service.Select(s => s.Name).ToArray();
        }

        if (rest[1] == "describe")
        {
            var found = await AskAsync(reflection, new ServerReflectionRequest { FileContainingSymbol = rest[2] });
            var files = found.FileDescriptorResponse.FileDescriptorProto.Select(FileDescriptorProto.Parser.ParseFrom).ToList();
            return files.SelectMany(f => f.Service.Select(s => (Name: $"{f.Package}.{s.Name}", Service: s))).Single(s => s.Name == rest[2]).Service;
        }

        // SERVICE/METHOD: grpcurl builds the request from the server's descriptors; the generated
        // ones are the same file (the describe above checks the server serves them).
        var slash = rest[1].LastIndexOf('/');
        var service = ComputeAgentReflection.Descriptor.Services.Single(s => s.FullName == rest[1][..slash]);
        var method = service.FindMethodByName(rest[1][(slash + 1)..]);
        var request = JsonParser.Default.Parse(body ?? "{}", method.InputType);
        var call = new Method<IMessage, IMessage>(
            method.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary,
            service.FullName,
            method.Name,
            Marshallers.Create<IMessage>(m => m.ToByteArray(), method.InputType.Parser.ParseFrom),
            Marshallers.Create<IMessage>(m => m.ToByteArray(), method.OutputType.Parser.ParseFrom));
        var invoker = agent.Channel.CreateCallInvoker();
        if (!method.IsServerStreaming)
        {
            return await invoker.AsyncUnaryCall(call, null, new CallOptions(deadline: DateTime.UtcNow + Bound), request);
        }

        // grpcurl prints a stream until it ends; its first message is what the command shows.
        using var stream = invoker.AsyncServerStreamingCall(call, null, new CallOptions(deadline: DateTime.UtcNow + Bound), request);
        Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None), "the stream ended without a message");
        return stream.ResponseStream.Current;
    }

    private static async Task<ServerReflectionResponse> AskAsync(ServerReflection.ServerReflectionClient reflection, ServerReflectionRequest request)
    {
        using var call = reflection.ServerReflectionInfo(deadline: DateTime.UtcNow + Bound);
        await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        return call.ResponseStream.Current;
    }

    private static async Task<AgentProcess> StartAgentAsync(ImageService images, List<AgentProcess> agents)
    {
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "5",
        });
        agents.Add(agent);
        return agent;
    }

    /// <summary>The arguments bash gives grpcurl for <paramref name="command"/>, run in <paramref name="directory"/>.</summary>
    private static async Task<List<string>> ExpandAsync(string command, string directory)
    {
        var script = $"grpcurl() {{ printf '%s\\0' \"$@\"; }}\ncd '{directory}'\n{command}\n";
        var result = await ProcessRunner.RunAsync("bash", ["-euo", "pipefail", "-c", script], TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, $"bash could not expand {command}: {result.StandardError}");
        return [.. result.StandardOutput.Split('\0', StringSplitOptions.None)[..^1]];
    }
}
