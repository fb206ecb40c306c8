using System.Net.Sockets;
using Grpc.Net.Client;

namespace ComputeAgent.Cli;

/// <summary>A gRPC channel to the agent's Unix socket.</summary>
internal static class AgentChannel
{
    public static GrpcChannel ForSocket(string socketPath) => GrpcChannel.ForAddress("http://agent", new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        },
    });
}
