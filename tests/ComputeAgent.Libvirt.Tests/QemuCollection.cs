using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

/// <summary>
/// The tests that boot real QEMU guests (TCG) under the host's libvirtd. One collection: they run
/// one at a time (2 cores), and the libvirtd restart test must not pull the daemon from under another.
/// </summary>
[CollectionDefinition(Name)]
public sealed class QemuCollection : ICollectionFixture<QemuHost>
{
    public const string Name = "real libvirtd + QEMU";
}

/// <summary>A guest booted for one test, destroyed and undefined (with its files) whatever the test's outcome.</summary>
public sealed class BootedGuest : IAsyncDisposable
{
    private readonly string scratch;

    private BootedGuest(LibvirtConnection connection, GuestInstance instance, LibvirtDomain domain, string scratch)
    {
        Connection = connection;
        Instance = instance;
        Domain = domain;
        this.scratch = scratch;
    }

    public LibvirtConnection Connection { get; }

    public GuestInstance Instance { get; }

    public LibvirtDomain Domain { get; }

    /// <summary>Defines the test guest; <paramref name="editXml"/> changes its domain XML first (given the instance, for its paths).</summary>
    public static async Task<BootedGuest> DefineAsync(QemuHost host, LibvirtConnection connection, string purpose, Func<GuestInstance, string>? editXml = null)
    {
        var scratch = RepositoryPaths.CreateScratch(purpose);
        var uuid = Guid.NewGuid();
        var instance = await host.Guest.CreateInstanceAsync(scratch, $"ca-test-{purpose}-{uuid:N}", uuid);
        return new BootedGuest(connection, instance, connection.DefineXml(editXml?.Invoke(instance) ?? instance.Xml), scratch);
    }

    public async ValueTask DisposeAsync()
    {
        // Look the domain up afresh: the handle in Domain may belong to a connection that a
        // libvirtd restart has closed.
        DomainCleanup.Remove(QemuHost.Uri, Instance.Uuid);
        Domain.Dispose();
        await Task.Run(() => Directory.Delete(scratch, recursive: true));
    }
}
