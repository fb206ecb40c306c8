using System.Net;
using System.Net.Sockets;

namespace ComputeAgent.Testing;

/// <summary>
/// A loopback TCP forwarder between the agent and the test controller, so a test can cut every
/// connection in the middle of a stream (as a network failure would) while the listener stays.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly int targetPort;
    private readonly List<Socket> open = [];
    private readonly CancellationTokenSource stopping = new();
    private readonly Task accepting;

    public TcpProxy(int targetPort)
    {
        this.targetPort = targetPort;
        listener.Start();
        accepting = Task.Run(AcceptAsync);
    }

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

    public int Accepted { get; private set; }

    /// <summary>Resets every connection now (RST, no goodbye); new ones are accepted again.</summary>
    public void CutAll()
    {
        lock (open)
        {
            foreach (var socket in open)
            {
                try
                {
                    socket.LingerState = new LingerOption(true, 0);
                }
                catch (ObjectDisposedException)
                {
                    // Its pump closed it already.
                }

                socket.Close();
            }

            open.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        listener.Stop();
        CutAll();
        try
        {
            await accepting;
        }
        catch (OperationCanceledException)
        {
        }

        stopping.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(stopping.Token);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                return;
            }

            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, targetPort, stopping.Token);
            }
            catch (SocketException)
            {
                // The controller is down: the agent sees the connection refused-like close.
                client.Close();
                server.Dispose();
                continue;
            }

            lock (open)
            {
                open.Add(client);
                open.Add(server);
                Accepted++;
            }

            _ = PumpAsync(client, server);
            _ = PumpAsync(server, client);
        }
    }

    private static async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, read));
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            from.Close();
            to.Close();
        }
    }
}
