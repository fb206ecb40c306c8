using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace ComputeAgent.Libvirt.Benchmarks;

/// <summary>
/// Diagnostic, not part of the ratio table (Program's --breakdown): for the loops where the
/// managed side costs more, each C loop body issued through raw P/Invoke (nint handles, no
/// SafeHandle, no string) next to the wrapper, in the same process, so the wrapper's own share
/// is told apart from what any .NET caller pays (BenchmarkDotNet's in-process thread, the
/// runtime's threads and heap).
/// </summary>
public unsafe partial class WrapperBreakdownBenchmarks
{
    private const string Library = "libvirt.so.0";

    private readonly List<LibvirtDomain> extra = [];
    private LibvirtConnection connection = null!;
    private LibvirtDomain testDomain = null!;
    private nint conn;
    private nint domain;
    private Guid uuid;
    private byte* uuidString;
    private byte* uuidBytes;
    private byte* xmlCopy;

    [GlobalSetup]
    public void Setup()
    {
        connection = LibvirtConnection.Open(LibvirtFloorBenchmarks.Uri);
        conn = connection.Handle.DangerousGetHandle();
        testDomain = connection.LookupByName(LibvirtFloorBenchmarks.BaseDomainName);
        fixed (byte* name = "test"u8)
        {
            domain = LookupByName(conn, name);
        }

        uuid = testDomain.Uuid;
        uuidBytes = (byte*)NativeMemory.Alloc(16);
        uuid.TryWriteBytes(new Span<byte>(uuidBytes, 16), bigEndian: true, out _);
        uuidString = (byte*)Marshal.StringToCoTaskMemUTF8(uuid.ToString());
        xmlCopy = (byte*)Marshal.StringToCoTaskMemUTF8(testDomain.GetXmlDesc());
    }

    [GlobalSetup(Targets = [nameof(raw_list_all_1000), nameof(wrapper_list_all_1000)])]
    public void SetupListAll()
    {
        Setup();
        for (var i = 0; i < LibvirtFloorBenchmarks.ExtraDomains; i++)
        {
            var d = connection.DefineXml(LibvirtFloorBenchmarks.ListXml(i));
            extra.Add(d);
            if (i % 2 == 0)
            {
                d.Create();
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        for (var i = 0; i < extra.Count; i++)
        {
            if (i % 2 == 0)
            {
                extra[i].Destroy();
            }

            extra[i].Undefine();
            extra[i].Dispose();
        }

        extra.Clear();
        Marshal.FreeCoTaskMem((nint)uuidString);
        Marshal.FreeCoTaskMem((nint)xmlCopy);
        NativeMemory.Free(uuidBytes);
        _ = Free(domain);
        testDomain.Dispose();
        connection.Dispose();
    }

    /// <summary>The C lookup_getstate body exactly (LookupByUUIDString), through nint P/Invoke.</summary>
    [Benchmark]
    public int raw_lookup_uuid_string()
    {
        var d = LookupByUuidString(conn, uuidString);
        _ = GetState(d, out var state, out _, 0);
        _ = Free(d);
        return state;
    }

    /// <summary>As the wrapper calls it (LookupByUUID with the 16 raw bytes), through nint P/Invoke.</summary>
    [Benchmark]
    public int raw_lookup_uuid_bytes()
    {
        var d = LookupByUuid(conn, uuidBytes);
        _ = GetState(d, out var state, out _, 0);
        _ = Free(d);
        return state;
    }

    /// <summary>The wrapper's interop layer only: SafeDomainHandle returned, marshalled and disposed.</summary>
    [Benchmark]
    public int safehandle_lookup()
    {
        byte* bytes = stackalloc byte[16];
        uuid.TryWriteBytes(new Span<byte>(bytes, 16), bigEndian: true, out _);
        using var d = Interop.Libvirt.virDomainLookupByUUID(connection.Handle, bytes);
        _ = Interop.Libvirt.virDomainGetState(d, out var state, out _, 0);
        return state;
    }

    /// <summary>= LibvirtFloorBenchmarks.lookup_getstate.</summary>
    [Benchmark]
    public DomainState wrapper_lookup()
    {
        using var d = connection.LookupByUuid(uuid);
        return d.GetState().State;
    }

    /// <summary>The C get_xml_desc body through nint P/Invoke: the string is never read.</summary>
    [Benchmark]
    public nint raw_xml_desc()
    {
        var xml = GetXmlDesc(domain, 0);
        NativeMemory.Free(xml);
        return (nint)xml;
    }

    /// <summary>= LibvirtFloorBenchmarks.get_xml_desc (decodes the XML into a string, then frees it).</summary>
    [Benchmark]
    public string wrapper_xml_desc() => testDomain.GetXmlDesc();

    /// <summary>The wrapper's share of get_xml_desc alone: decoding a copy of the XML (no libvirt call).</summary>
    [Benchmark]
    public string decode_xml_only() => Marshal.PtrToStringUTF8((nint)xmlCopy)!;

    /// <summary>A cheaper alternative to decoding: copying the UTF-8 bytes out.</summary>
    [Benchmark]
    public byte[] copy_xml_utf8_only() => MemoryMarshal.CreateReadOnlySpanFromNullTerminated(xmlCopy).ToArray();

    /// <summary>The C list_all_1000 body through nint P/Invoke.</summary>
    [Benchmark]
    public int raw_list_all_1000()
    {
        nint* doms = null;
        var n = ListAllDomains(conn, &doms, 0);
        for (var i = 0; i < n; i++)
        {
            _ = Free(doms[i]);
        }

        NativeMemory.Free(doms);
        return n;
    }

    /// <summary>= LibvirtFloorBenchmarks.list_all_1000.</summary>
    [Benchmark]
    public int wrapper_list_all_1000()
    {
        var domains = connection.ListAllDomains();
        var count = domains.Count;
        for (var i = 0; i < count; i++)
        {
            domains[i].Dispose();
        }

        return count;
    }

    [LibraryImport(Library, EntryPoint = "virDomainLookupByName")]
    private static partial nint LookupByName(nint conn, byte* name);

    [LibraryImport(Library, EntryPoint = "virDomainLookupByUUIDString")]
    private static partial nint LookupByUuidString(nint conn, byte* uuid);

    [LibraryImport(Library, EntryPoint = "virDomainLookupByUUID")]
    private static partial nint LookupByUuid(nint conn, byte* uuid);

    [LibraryImport(Library, EntryPoint = "virDomainGetState")]
    private static partial int GetState(nint domain, out int state, out int reason, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainGetXMLDesc")]
    private static partial byte* GetXmlDesc(nint domain, uint flags);

    [LibraryImport(Library, EntryPoint = "virConnectListAllDomains")]
    private static partial int ListAllDomains(nint conn, nint** domains, uint flags);

    [LibraryImport(Library, EntryPoint = "virDomainFree")]
    private static partial int Free(nint domain);
}
