using System.Net.Sockets;
using Grpc.Net.Client;
using Microsoft.Extensions.Configuration;

namespace ComputeAgent.Cli;

/// <summary>A gRPC channel to the agent's Unix socket, and which socket that is.</summary>
internal static class AgentChannel
{
    /// <summary>The installed agent's settings file, as the agent reads it.</summary>
    public const string ConfigFile = "/etc/compute-agent/agent.json";

    /// <summary>Agent:UnixSocketPath's default.</summary>
    public const string DefaultSocket = "/run/compute-agent/agent.sock";

    public static GrpcChannel ForSocket(string socketPath) => GrpcChannel.ForAddress("http://agent", new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }

                return new NetworkStream(socket, ownsSocket: true);
            },
        },
    });

    /// <summary>
    /// The socket to call: <paramref name="given"/> (--socket), else the agent's own
    /// Agent:UnixSocketPath read as the agent reads it (the file COMPUTE_AGENT_CONFIG names or
    /// /etc/compute-agent/agent.json, then COMPUTE_AGENT_Agent__UnixSocketPath), else the default.
    /// </summary>
    public static string ResolveSocket(string? given)
    {
        if (!string.IsNullOrEmpty(given))
        {
            return given;
        }

        var named = Environment.GetEnvironmentVariable("COMPUTE_AGENT_CONFIG");
        var file = string.IsNullOrEmpty(named) ? ConfigFile : named;
        try
        {
            // The default file may be absent (a host without the package); a file someone named must be there.
            var settings = new ConfigurationBuilder()
                .AddJsonFile(file, optional: string.IsNullOrEmpty(named))
                .AddEnvironmentVariables("COMPUTE_AGENT_")
                .Build();
            return settings["Agent:UnixSocketPath"] is { Length: > 0 } path ? path : DefaultSocket;
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or IOException or UnauthorizedAccessException)
        {
            throw new CliException(CliException.BadCommandLine, $"cannot read Agent:UnixSocketPath from {file}: {e.Message}; fix the file or pass --socket PATH");
        }
    }
}
