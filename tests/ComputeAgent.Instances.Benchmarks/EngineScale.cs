using System.Xml.Linq;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Logging.Abstractions;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>
/// An engine over N agent domains on test:///default (half running), adopted at start: what the
/// reconcile and event benchmarks run against. Removes its domains and files when disposed.
/// </summary>
internal sealed class EngineScale : IAsyncDisposable
{
    public const string Uri = "test:///default";

    private readonly string directory = Path.Combine(Path.GetTempPath(), $"engine-bench-{Guid.NewGuid():N}");

    private EngineScale(LibvirtConnection connection, Guid[] uuids)
    {
        Connection = connection;
        Uuids = uuids;
    }

    public LibvirtConnection Connection { get; }

    public Guid[] Uuids { get; }

    public InstanceStore Store { get; private set; } = null!;

    public LibvirtSession Session { get; private set; } = null!;

    public InstanceEngine Engine { get; private set; } = null!;

    public static async Task<EngineScale> StartAsync(int domains)
    {
        var connection = LibvirtConnection.Open(Uri);
        var uuids = new Guid[domains];
        for (var i = 0; i < domains; i++)
        {
            uuids[i] = Guid.NewGuid();
            using var domain = connection.DefineXml(Samples.TestDriverDomainOfOurs(uuids[i]));
            if (i % 2 == 0)
            {
                domain.Create();
            }
        }

        var scale = new EngineScale(connection, uuids);
        Directory.CreateDirectory(scale.directory);
        scale.Store = await InstanceStore.OpenAsync(Path.Combine(scale.directory, "agent.db"));
        scale.Session = new LibvirtSession(new LibvirtSessionOptions { Uri = Uri }, NullLogger<LibvirtSession>.Instance);
        await scale.Session.ConnectAsync(CancellationToken.None);
        scale.Engine = new InstanceEngine(
            scale.Store,
            scale.Session,
            new DomainXmlBuilder(Samples.Host with { InstancesDirectory = Path.Combine(scale.directory, "instances") }),
            new EngineOptions { ReconcileInterval = TimeSpan.FromHours(1) },
            NullLogger<InstanceEngine>.Instance);
        await scale.Engine.StartAsync(CancellationToken.None);
        if (scale.Engine.List().Count < domains)
        {
            throw new InvalidOperationException($"the engine adopted {scale.Engine.List().Count} of {domains} domains");
        }

        return scale;
    }

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync();
        await Session.DisposeAsync();
        await Store.DisposeAsync();
        foreach (var uuid in Uuids)
        {
            using var domain = Connection.TryLookupByUuid(uuid);
            if (domain is not null)
            {
                if (domain.IsActive)
                {
                    domain.Destroy();
                }

                domain.Undefine();
            }
        }

        Connection.Dispose();
        Directory.Delete(directory, recursive: true);
    }
}
