using System.Net.Sockets;
using System.Text;

namespace ComputeAgent.Testing;

/// <summary>
/// A Unix datagram socket standing in for systemd's NOTIFY_SOCKET: collects what the agent
/// sends (READY=1, STOPPING=1, WATCHDOG=1).
/// </summary>
public sealed class NotifySocket : IDisposable
{
    private readonly Socket socket;
    private readonly List<string> messages = [];
    private readonly Task receiving;

    public NotifySocket(string path)
    {
        Path = path;
        File.Delete(path);
        socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        // The agent runs as compute-agent; systemd's own socket accepts every sender too.
        File.SetUnixFileMode(path, (UnixFileMode)0b110_110_110);
        receiving = Task.Run(ReceiveAsync);
    }

    public string Path { get; }

    public IReadOnlyList<string> Messages
    {
        get
        {
            lock (messages)
            {
                return [.. messages];
            }
        }
    }

    public async Task<bool> WaitForAsync(string message, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Messages.Any(m => m.Split('\n').Contains(message)))
            {
                return true;
            }

            await Task.Delay(50);
        }

        return false;
    }

    public void Dispose()
    {
        socket.Dispose();
        try
        {
            receiving.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }

        File.Delete(Path);
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[4096];
        while (true)
        {
            int count;
            try
            {
                count = await socket.ReceiveAsync(buffer, SocketFlags.None);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (messages)
            {
                messages.Add(Encoding.UTF8.GetString(buffer, 0, count));
            }
        }
    }
}
