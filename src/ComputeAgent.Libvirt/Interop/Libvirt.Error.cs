using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt.Interop;

internal static partial class Libvirt
{
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct VirError
    {
        public int Code;
        public int Domain;
        public byte* Message;
        public int Level;
        public nint Conn;
        public nint Dom;
        public byte* Str1;
        public byte* Str2;
        public byte* Str3;
        public int Int1;
        public int Int2;
        public nint Net;
    }

    [LibraryImport(LibraryName)]
    internal static unsafe partial VirError* virGetLastError();

    [LibraryImport(LibraryName)]
    internal static partial void virResetLastError();

    [LibraryImport(LibraryName)]
    internal static unsafe partial void virSetErrorFunc(nint userData, delegate* unmanaged<nint, VirError*, void> handler);

    /// <summary>libvirt calls this for every error; printing is the default, we stay silent and read virGetLastError.</summary>
    [UnmanagedCallersOnly]
    internal static unsafe void SilentErrorHandler(nint userData, VirError* error)
    {
    }
}
