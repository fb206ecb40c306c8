extern alias host;

using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>What one datagram brought: its bytes, and the memfd it carried (SCM_RIGHTS), if any.</summary>
public sealed record JournalDatagram(byte[] Payload, byte[]? MemfdContent, int MemfdSeals)
{
    /// <summary>The entry's fields in order, decoded as journald does (both the KEY=value and the length-prefixed form).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Fields => JournalProtocol.Parse(MemfdContent ?? Payload);

    public string this[string name] => Fields.Single(f => f.Key == name).Value;

    public bool Has(string name) => Fields.Any(f => f.Key == name);
}

/// <summary>journald's native protocol, read back the way journald reads it.</summary>
public static class JournalProtocol
{
    public static IReadOnlyList<KeyValuePair<string, string>> Parse(ReadOnlySpan<byte> data)
    {
        var fields = new List<KeyValuePair<string, string>>();
        while (!data.IsEmpty)
        {
            var lineEnd = data.IndexOf((byte)'\n');
            if (lineEnd < 0)
            {
                throw new FormatException("an entry must end every field with a newline");
            }

            var line = data[..lineEnd];
            var equals = line.IndexOf((byte)'=');
            if (equals >= 0)
            {
                fields.Add(new(Encoding.UTF8.GetString(line[..equals]), Encoding.UTF8.GetString(line[(equals + 1)..])));
                data = data[(lineEnd + 1)..];
                continue;
            }

            var name = Encoding.UTF8.GetString(line);
            data = data[(lineEnd + 1)..];
            var length = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(data));
            var value = Encoding.UTF8.GetString(data.Slice(8, length));
            if (data[8 + length] != (byte)'\n')
            {
                throw new FormatException($"field {name}: the binary value must be followed by a newline");
            }

            fields.Add(new(name, value));
            data = data[(8 + length + 1)..];
        }

        return fields;
    }
}

/// <summary>
/// A real Unix datagram socket standing in for /run/systemd/journal/socket. A thread of its own
/// drains it at once, as journald does: a sender blocks while a datagram socket's queue is full.
/// </summary>
public sealed unsafe partial class JournalReceiver : IDisposable
{
    private readonly Socket socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly BlockingCollection<JournalDatagram> received = [];
    private readonly Thread reader;

    public JournalReceiver(string path)
    {
        Path = path;
        File.Delete(path);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        reader = new Thread(ReadAll) { IsBackground = true, Name = "journal-receiver" };
        reader.Start();
    }

    public string Path { get; }

    /// <summary>The next datagram (bounded at 30 s, for a hung test).</summary>
    public JournalDatagram Receive() =>
        received.TryTake(out var next, TimeSpan.FromSeconds(30)) ? next : throw new TimeoutException($"nothing arrived on {Path} within 30 s");

    private void ReadAll()
    {
        try
        {
            while (true)
            {
                var next = ReceiveOne();
                if (next.Payload.Length == 0 && next.MemfdContent is null)
                {
                    break; // shut down: the sink never sends an empty datagram without a memfd
                }

                received.Add(next);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        received.CompleteAdding();
    }

    private JournalDatagram ReceiveOne()
    {
        var buffer = new byte[512 * 1024];
        var control = stackalloc byte[64];
        int received;
        int descriptor = -1;
        fixed (byte* data = buffer)
        {
            IoVector vector = new() { Base = data, Length = (nuint)buffer.Length };
            MessageHeader message = new() { Iov = &vector, IovLength = 1, Control = control, ControlLength = 64 };
            received = (int)recvmsg(socket.SafeHandle, &message, 0);
            if (received < 0)
            {
                throw new SocketException(Marshal.GetLastPInvokeError());
            }

            if (message.ControlLength >= 20)
            {
                var level = *(int*)(control + 8);
                var type = *(int*)(control + 12);
                if (level == 1 && type == 1)
                {
                    descriptor = *(int*)(control + 16);
                }
            }
        }

        if (descriptor < 0)
        {
            return new JournalDatagram(buffer[..received], null, 0);
        }

        using var memfd = new SafeFileHandle(descriptor, ownsHandle: true);
        var seals = host::ComputeAgent.Host.Interop.Libc.GetSeals(memfd);
        var content = new byte[RandomAccess.GetLength(memfd)];
        RandomAccess.Read(memfd, content, 0);
        return new JournalDatagram(buffer[..received], content, seals);
    }

    /// <summary>Datagrams until one matches (others are passed over: the agent logs more than the test looks for).</summary>
    public JournalDatagram ReceiveUntil(Func<JournalDatagram, bool> match)
    {
        while (true)
        {
            var next = Receive();
            if (match(next))
            {
                return next;
            }
        }
    }

    public void Dispose()
    {
        // Closing the descriptor does not wake a thread blocked in recvmsg; shutdown does.
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }

        socket.Dispose();
        reader.Join(TimeSpan.FromSeconds(5));
        File.Delete(Path);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recvmsg(SafeSocketHandle socket, MessageHeader* message, int flags);

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVector
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVector* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }
}
