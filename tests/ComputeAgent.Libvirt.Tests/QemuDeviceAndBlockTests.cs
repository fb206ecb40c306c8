using System.Threading.Channels;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

[Collection(QemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class QemuDeviceAndBlockTests(QemuHost host)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task Hot_plug_a_disk_snapshot_the_root_disk_and_pull_it_back_with_a_block_job()
    {
        host.SkipIfUnavailable();
        using var connection = LibvirtConnection.Open(QemuHost.Uri);
        var events = Channel.CreateUnbounded<DomainEvent>();
        connection.SubscribeDomainEvents(events.Writer);
        await using var guest = await BootedGuest.DefineAsync(host, connection, "blocks");
        var domain = guest.Domain;
        var scratch = Path.GetDirectoryName(guest.Instance.DiskPath)!;
        domain.Create();
        await EventWaits.WaitForConsoleLineAsync(guest.Instance.ConsoleLogPath, host.Guest.ReadyLine, Bound);

        Assert.Contains("<domainCapabilities>", connection.GetDomainCapabilities(virtType: "qemu"), StringComparison.Ordinal);

        // Hot-plug and unplug a second virtio disk on the live guest.
        var extra = Path.Combine(scratch, "extra.qcow2");
        (await ProcessRunner.RunAsync("qemu-img", ["create", "-q", "-f", "qcow2", extra, "16M"], Bound)).EnsureSuccess("qemu-img create");
        var diskXml = $"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{extra}'/><target dev='vdb' bus='virtio'/></disk>";
        domain.AttachDevice(diskXml, DomainModificationFlags.Live);
        Assert.Contains("dev='vdb'", domain.GetXmlDesc(), StringComparison.Ordinal);
        Assert.Equal(0, domain.GetBlockStats("vdb").WriteRequests);

        // A disk-only external snapshot: the root disk now writes to a new overlay on top of the old one.
        var top = Path.Combine(scratch, "snapshot-top.qcow2");
        using (var snapshot = domain.CreateSnapshot(
            $"<domainsnapshot><name>before-pull</name><disks><disk name='vda' snapshot='external'><source file='{top}'/></disk><disk name='vdb' snapshot='no'/></disks></domainsnapshot>",
            SnapshotCreateFlags.DiskOnly | SnapshotCreateFlags.Atomic | SnapshotCreateFlags.NoMetadata))
        {
            Assert.Equal("before-pull", snapshot.Name);
        }

        Assert.Contains(top, domain.GetXmlDesc(), StringComparison.Ordinal);

        // Pull the old layers into the new top: a block job the wrapper can watch to the end.
        domain.BlockRebase("vda", baseImage: null);
        var deadline = DateTime.UtcNow + Bound;
        while (domain.GetBlockJobInfo("vda") is { } job && job.Current < job.End && DateTime.UtcNow < deadline)
        {
            Assert.True(job.End > 0);
            await Task.Delay(100);
        }

        // The finished pull leaves a standalone top image with no backing file.
        if (domain.GetBlockJobInfo("vda") is not null)
        {
            domain.BlockJobAbort("vda");
        }

        var info = (await ProcessRunner.RunAsync("qemu-img", ["info", "--force-share", "--output=json", top], Bound)).EnsureSuccess("qemu-img info");
        Assert.DoesNotContain("backing-filename", info.StandardOutput, StringComparison.Ordinal);

        domain.DetachDevice(diskXml, DomainModificationFlags.Live);

        // No guest agent in this guest: freezing file systems is refused with a typed error.
        var noAgent = Assert.Throws<LibvirtException>(() => domain.FsFreeze());
        Assert.Equal("virDomainFSFreeze", noAgent.Operation);
        Assert.Contains("agent", noAgent.LibvirtMessage, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(DomainState.Running, domain.GetState().State);
    }
}
