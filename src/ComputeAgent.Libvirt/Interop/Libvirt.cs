using System.Reflection;
using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt.Interop;

/// <summary>
/// Raw libvirt entry points, grouped per header like dotnet/runtime's Interop folders.
/// Nothing here is public: the managed wrappers are the only callers.
/// </summary>
internal static partial class Libvirt
{
    internal const string LibraryName = "libvirt.so.0";

    // Development machines often have only the unversioned name (libvirt-dev) or only the
    // soname (libvirt0); try both before giving up with libvirt's own loader error.
    private static readonly string[] Candidates = ["libvirt.so.0", "libvirt.so"];

    internal static void EnsureResolver() => ResolverInstalled.Value.ToString();

    private static readonly Lazy<bool> ResolverInstalled = new(() =>
    {
        NativeLibrary.SetDllImportResolver(typeof(Libvirt).Assembly, Resolve);
        return true;
    });

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName != LibraryName)
        {
            return 0;
        }

        foreach (var candidate in Candidates)
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle))
            {
                return handle;
            }
        }

        throw new DllNotFoundException(
            "libvirt is not installed: neither libvirt.so.0 nor libvirt.so could be loaded. " +
            "Install Debian's libvirt0 package (apt-get install libvirt0).");
    }

    /// <summary>Reads and frees a char* that libvirt allocated and the caller owns.</summary>
    internal static unsafe string? TakeString(byte* value)
    {
        if (value == null)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8((nint)value);
        }
        finally
        {
            NativeMemory.Free(value);
        }
    }
}
