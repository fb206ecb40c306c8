using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ComputeAgent.Host.Interop;

/// <summary>
/// The few libc calls .NET does not offer: for the journal protocol a sealed memfd and a datagram
/// carrying it as SCM_RIGHTS; chown for the socket's group. Every native pointer of the host
/// project stays in here.
/// </summary>
internal static unsafe partial class Libc
{
    private const uint MfdCloexec = 0x1;
    private const uint MfdAllowSealing = 0x2;
    private const int FAddSeals = 1033;
    private const int FGetSeals = 1034;
    private const int SolSocket = 1;
    private const int ScmRights = 1;
    private const ushort AfUnix = 1;
    private const int MsgNoSignal = 0x4000;

    /// <summary>F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE: what journald wants before it trusts a memfd.</summary>
    public const int AllSeals = 0x1 | 0x2 | 0x4 | 0x8;

    /// <summary>A memfd holding <paramref name="data"/>, sealed against every later change.</summary>
    public static SafeFileHandle CreateSealedMemfd(string name, ReadOnlySpan<byte> data)
    {
        var fd = memfd_create(name, MfdCloexec | MfdAllowSealing);
        if (fd < 0)
        {
            throw Failure("memfd_create");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            RandomAccess.Write(handle, data, 0);
            if (fcntl(handle, FAddSeals, AllSeals) < 0)
            {
                throw Failure("fcntl(F_ADD_SEALS)");
            }

            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The seals on a memfd (tests check that what arrives cannot change under the reader).</summary>
    public static int GetSeals(SafeFileHandle handle)
    {
        var seals = fcntl(handle, FGetSeals, 0);
        return seals < 0 ? throw Failure("fcntl(F_GET_SEALS)") : seals;
    }

    /// <summary>Sends an empty datagram to <paramref name="path"/> that carries <paramref name="descriptor"/> (SCM_RIGHTS).</summary>
    public static void SendDescriptor(SafeSocketHandle socket, string path, SafeFileHandle descriptor)
    {
        SocketAddressUnix address;
        address.Family = AfUnix;
        var pathBytes = Encoding.UTF8.GetBytes(path);
        if (pathBytes.Length >= 108)
        {
            throw new ArgumentException($"socket path '{path}' is longer than a Unix socket address allows (107 bytes)", nameof(path));
        }

        var added = false;
        descriptor.DangerousAddRef(ref added);
        try
        {
            pathBytes.CopyTo(new Span<byte>(address.Path, 108));
            address.Path[pathBytes.Length] = 0;

            // CMSG_SPACE(sizeof(int)) on x86_64 / arm64: a 16-byte header and the int, padded to 8.
            var control = stackalloc byte[24];
            new Span<byte>(control, 24).Clear();
            var header = (ControlHeader*)control;
            header->Length = 16 + sizeof(int);
            header->Level = SolSocket;
            header->Type = ScmRights;
            *(int*)(control + 16) = (int)descriptor.DangerousGetHandle();

            MessageHeader message = default;
            message.Name = &address;
            message.NameLength = (uint)(sizeof(ushort) + pathBytes.Length + 1);
            message.Control = control;
            message.ControlLength = 24;
            if (sendmsg(socket, &message, MsgNoSignal) < 0)
            {
                throw new SocketException(Marshal.GetLastPInvokeError());
            }
        }
        finally
        {
            if (added)
            {
                descriptor.DangerousRelease();
            }
        }
    }

    /// <summary>Gives <paramref name="path"/> the group <paramref name="gid"/>, its owner unchanged.</summary>
    public static void ChangeGroup(string path, uint gid)
    {
        if (chown(path, uint.MaxValue, gid) < 0)
        {
            throw Failure($"chown({path}, group {gid})");
        }
    }

    private static IOException Failure(string call) =>
        new($"{call} failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int memfd_create(string name, uint flags);

    // fcntl is variadic; on Linux x86_64 and arm64 an int after the fixed arguments travels as a fixed one would.
    // uid (uid_t)-1: the owner stays as it is.
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int chown(string path, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(SafeFileHandle fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendmsg(SafeSocketHandle socket, MessageHeader* message, int flags);

    [StructLayout(LayoutKind.Sequential)]
    private struct SocketAddressUnix
    {
        public ushort Family;
        public fixed byte Path[108];
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public void* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ControlHeader
    {
        public nuint Length;
        public int Level;
        public int Type;
    }
}
