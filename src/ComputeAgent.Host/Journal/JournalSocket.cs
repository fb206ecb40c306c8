using System.Net.Sockets;
using ComputeAgent.Host.Interop;

namespace ComputeAgent.Host.Journal;

/// <summary>
/// journald's native socket: one datagram per entry; an entry too large for a datagram goes into
/// a sealed memfd passed as SCM_RIGHTS, as sd_journal_sendv does.
/// </summary>
public sealed class JournalSocket : IDisposable
{
    /// <summary>Where journald listens for native-protocol entries.</summary>
    public const string DefaultPath = "/run/systemd/journal/socket";

    private readonly Socket socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly UnixDomainSocketEndPoint endpoint;

    public JournalSocket(string path)
    {
        Path = path ?? throw new ArgumentNullException(nameof(path));
        endpoint = new UnixDomainSocketEndPoint(path);
    }

    public string Path { get; }

    /// <summary>Sends one entry; throws <see cref="SocketException"/> or <see cref="IOException"/> when journald cannot take it.</summary>
    public void Send(JournalEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        try
        {
            socket.SendTo(entry.Bytes, SocketFlags.None, endpoint);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.MessageSize or SocketError.NoBufferSpaceAvailable)
        {
            // Larger than the socket's send buffer: hand journald the bytes in a file instead.
            using var memfd = Libc.CreateSealedMemfd("journal-entry", entry.Bytes);
            Libc.SendDescriptor(socket.SafeHandle, Path, memfd);
        }
    }

    public void Dispose() => socket.Dispose();
}
