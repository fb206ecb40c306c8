using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;

namespace ComputeAgent.Host.Callers;

/// <summary>
/// Who is on the other end of a Unix socket connection, as the kernel saw it at connect:
/// SO_PEERCRED (pid, uid, gid) and SO_PEERGROUPS (the supplementary groups).
/// </summary>
public sealed record UnixPeer(int Pid, uint Uid, uint Gid, IReadOnlyList<uint> Groups)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;
    private const int SoPeerGroups = 59;

    public static UnixPeer Read(Socket socket)
    {
        Span<byte> credentials = stackalloc byte[12];
        socket.GetRawSocketOption(SolSocket, SoPeerCred, credentials);
        var groups = new List<uint>();
        var buffer = new byte[4 * 256];
        try
        {
            var length = socket.GetRawSocketOption(SolSocket, SoPeerGroups, buffer);
            for (var i = 0; i + 4 <= length; i += 4)
            {
                groups.Add(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(i)));
            }
        }
        catch (SocketException)
        {
            // More than 256 groups or a kernel before 4.13: the primary group still counts.
        }

        return new UnixPeer(
            BinaryPrimitives.ReadInt32LittleEndian(credentials),
            BinaryPrimitives.ReadUInt32LittleEndian(credentials[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(credentials[8..]),
            groups);
    }

    public bool IsInGroup(uint gid) => Gid == gid || Groups.Contains(gid);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"unix:pid={Pid},uid={Uid},gid={Gid}");
}
