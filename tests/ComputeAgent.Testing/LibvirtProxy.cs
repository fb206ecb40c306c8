using System.Buffers.Binary;
using System.Net.Sockets;

namespace ComputeAgent.Testing;

/// <summary>libvirt's remote procedure numbers (src/remote/remote_protocol.x, append-only) of the calls a test holds.</summary>
public enum LibvirtProcedure
{
    DomainManagedSave = 182,
    DomainCreateWithFlags = 196,
    DomainUndefineFlags = 231,
    DomainBlockJobAbort = 237,
    DomainDefineXmlFlags = 350,
}

/// <summary>
/// A Unix socket in front of libvirtd's own (qemu+unix:///system?socket=…) that holds a chosen
/// call: the agent's call of that procedure is read but never sent to libvirtd, so the agent
/// waits inside it for as long as the test wants, and a SIGKILL then lands at exactly that step.
/// Everything else (replies, events, keepalives) is passed through unchanged.
/// </summary>
public sealed class LibvirtProxy : IAsyncDisposable
{
    // The monolithic libvirtd's socket (what test.sh starts), else the modular QEMU daemon's.
    private static readonly string LibvirtdSocket = File.Exists("/var/run/libvirt/libvirt-sock") ? "/var/run/libvirt/libvirt-sock" : "/var/run/libvirt/virtqemud-sock";
    private const uint RemoteProgram = 0x20008086;
    private const int CallType = 0;
    private readonly Socket listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly List<Socket> open = [];
    private readonly Task accepting;
    private readonly string path;
    private readonly TaskCompletionSource<LibvirtProcedure> held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int armed = -1;

    public LibvirtProxy()
    {
        // Unix socket paths are short (108 bytes): not under the scratch folder.
        path = Path.Combine(Path.GetTempPath(), $"libvirt-proxy-{Guid.NewGuid():N}.sock");
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        accepting = Task.Run(AcceptAsync);
    }

    /// <summary>The URI that reaches qemu:///system through this proxy.</summary>
    public string Uri => $"qemu+unix:///system?socket={path}";

    /// <summary>The next call of <paramref name="procedure"/> (from now on) is held, not sent to libvirtd.</summary>
    public void Hold(LibvirtProcedure procedure) => Volatile.Write(ref armed, (int)procedure);

    /// <summary>Completes once the agent is waiting inside the held call (a hang bound, not a speed check).</summary>
    public async Task WaitHeldAsync(TimeSpan bound) => await held.Task.WaitAsync(bound);

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            var server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await server.ConnectAsync(new UnixDomainSocketEndPoint(LibvirtdSocket));
            lock (open)
            {
                open.Add(client);
                open.Add(server);
            }

            _ = Task.Run(() => PumpCallsAsync(client, server));
            _ = Task.Run(() => CopyAsync(server, client));
        }
    }

    /// <summary>Client to libvirtd, one packet at a time: a held call stops the stream there for good.</summary>
    private async Task PumpCallsAsync(Socket client, Socket server)
    {
        try
        {
            var length = new byte[4];
            while (await ReadExactlyAsync(client, length))
            {
                var packet = new byte[BinaryPrimitives.ReadInt32BigEndian(length)];
                length.CopyTo(packet, 0);
                if (!await ReadExactlyAsync(client, packet.AsMemory(4)))
                {
                    break;
                }

                // Header after the length: program, version, procedure, type, serial, status.
                if (packet.Length >= 28 && BinaryPrimitives.ReadUInt32BigEndian(packet.AsSpan(4)) == RemoteProgram
                    && BinaryPrimitives.ReadInt32BigEndian(packet.AsSpan(16)) == CallType)
                {
                    var procedure = BinaryPrimitives.ReadInt32BigEndian(packet.AsSpan(12));
                    if (procedure == Volatile.Read(ref armed) && Interlocked.CompareExchange(ref armed, -1, procedure) == procedure)
                    {
                        // Never sent: libvirtd does not know of it; the caller waits for its reply.
                        held.TrySetResult((LibvirtProcedure)procedure);
                        return;
                    }
                }

                await server.SendAsync(packet, SocketFlags.None);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        Close(server);
    }

    private static async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        Close(to);
    }

    private static async Task<bool> ReadExactlyAsync(Socket socket, Memory<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (read == 0)
            {
                return false;
            }

            buffer = buffer[read..];
        }

        return true;
    }

    private static void Close(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        socket.Close();
    }

    /// <summary>Closes every connection: a held call is dropped, libvirtd never sees it.</summary>
    public async ValueTask DisposeAsync()
    {
        listener.Close();
        await accepting;
        lock (open)
        {
            foreach (var socket in open)
            {
                Close(socket);
            }

            open.Clear();
        }

        File.Delete(path);
    }
}
