using BenchmarkDotNet.Attributes;

namespace ComputeAgent.Libvirt.Benchmarks;

/// <summary>
/// The five loops of native/libvirt-floor.c, through the managed wrapper. The method names are the
/// C loop names (the join key of native/bench-ratio.sh) and each body issues the same libvirt calls,
/// in the same order, as the C loop body; see the header comment of libvirt-floor.c.
/// Known differences that are the wrapper's own (not the harness's):
/// <list type="bullet">
/// <item>lookup_getstate: LookupByUuid(Guid) calls virDomainLookupByUUID with the 16 raw bytes;
/// C calls virDomainLookupByUUIDString, which parses the string and then does the same lookup.</item>
/// <item>define_undefine: DefineXml/Undefine call virDomainDefineXMLFlags(…, 0) and
/// virDomainUndefineFlags(…, 0), which the test driver's virDomainDefineXML/virDomainUndefine
/// forward to with flags 0.</item>
/// <item>get_xml_desc: GetXmlDesc decodes the char* into a string before freeing it; C only frees it.</item>
/// </list>
/// test:///default is one shared driver per process (state lives while any connection to it is
/// open); every benchmark opens its own connection in GlobalSetup, checks that only the stock
/// domain "test" exists, and closes it in GlobalCleanup, so no state leaks from one loop to the next.
/// Program runs it with <see cref="FloorConfig"/>.
/// </summary>
public class LibvirtFloorBenchmarks
{
    public const string Uri = "test:///default";
    public const string BaseDomainName = "test";
    public const int ExtraDomains = 1000;

    /// <summary>Byte for byte DEFINE_XML of libvirt-floor.c.</summary>
    public const string DefineXml =
        "<domain type='test'><name>floor-define</name>"
        + "<uuid>0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0</uuid>"
        + "<memory>8192</memory><os><type>hvm</type></os></domain>";

    private LibvirtConnection connection = null!;
    private LibvirtDomain domain = null!;
    private Guid uuid;
    private readonly List<LibvirtDomain> extra = [];

    /// <summary>LIST_XML_FMT of libvirt-floor.c: DEFINE_XML with this name and no uuid.</summary>
    public static string ListXml(int i) =>
        $"<domain type='test'><name>floor-list-{i:D4}</name><memory>8192</memory><os><type>hvm</type></os></domain>";

    [GlobalSetup]
    public void Setup()
    {
        connection = LibvirtConnection.Open(Uri);
        ExpectDomainCount(1, "at setup");
        domain = connection.LookupByName(BaseDomainName);
        uuid = domain.Uuid;
        var state = domain.GetState().State;
        if (state != DomainState.Running)
        {
            throw new InvalidOperationException($"domain '{BaseDomainName}' is not running ({state})");
        }
    }

    /// <summary>Untimed, like setup_extra_domains: ExtraDomains more, the even ones started.</summary>
    [GlobalSetup(Target = nameof(list_all_1000))]
    public void SetupListAll()
    {
        Setup();
        for (var i = 0; i < ExtraDomains; i++)
        {
            var d = connection.DefineXml(ListXml(i));
            extra.Add(d);
            if (i % 2 == 0)
            {
                d.Create();
            }
        }

        ExpectDomainCount(ExtraDomains + 1, "after defining the list_all domains");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        try
        {
            ExpectDomainCount(1, "at cleanup");
        }
        finally
        {
            domain.Dispose();
            connection.Dispose();
        }
    }

    /// <summary>Untimed, like teardown_extra_domains.</summary>
    [GlobalCleanup(Target = nameof(list_all_1000))]
    public void CleanupListAll()
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
        Cleanup();
    }

    /// <summary>virDomainLookupByUUID; virDomainGetState; virDomainFree.</summary>
    [Benchmark]
    public DomainState lookup_getstate()
    {
        using var d = connection.LookupByUuid(uuid);
        return d.GetState().State;
    }

    /// <summary>virDomainSuspend(test); virDomainResume(test).</summary>
    [Benchmark]
    public void suspend_resume()
    {
        domain.Suspend();
        domain.Resume();
    }

    /// <summary>virDomainDefineXMLFlags(DEFINE_XML, 0); virDomainUndefineFlags(d, 0); virDomainFree.</summary>
    [Benchmark]
    public void define_undefine()
    {
        using var d = connection.DefineXml(DefineXml);
        d.Undefine();
    }

    /// <summary>virConnectListAllDomains(0); virDomainFree each; free the array.</summary>
    [Benchmark]
    public int list_all_1000()
    {
        var domains = connection.ListAllDomains();
        var count = domains.Count;
        for (var i = 0; i < count; i++)
        {
            domains[i].Dispose();
        }

        return count;
    }

    /// <summary>virDomainGetXMLDesc(test, 0); free.</summary>
    [Benchmark]
    public string get_xml_desc() => domain.GetXmlDesc();

    private void ExpectDomainCount(int expected, string when)
    {
        var all = connection.ListAllDomains();
        var names = new List<string>(all.Count);
        foreach (var d in all)
        {
            names.Add(d.Name);
            d.Dispose();
        }

        if (names.Count != expected || !names.Contains(BaseDomainName))
        {
            var shown = string.Join(", ", names.Take(5)) + (names.Count > 5 ? ", ..." : string.Empty);
            throw new InvalidOperationException(
                $"{Uri} has {names.Count} domains {when} ({shown}), expected {expected} including '{BaseDomainName}': leftover state would skew the loops");
        }
    }
}
