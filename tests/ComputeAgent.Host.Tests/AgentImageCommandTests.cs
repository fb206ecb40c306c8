using System.Net;
using System.Text.Json;
using ComputeAgent.Api.V1;
using ComputeAgent.Instances.Images;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Grpc.Core;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// The seed's remaining commands through gRPC on a real guest: snapshot and backup (checked in the
/// image service, the snapshot booted as a new instance), rebuild, soft delete / restore / force
/// delete and the reclaim pass, and set admin password's refusals.
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class AgentImageCommandTests(QemuHost host)
{
    private static readonly TimeSpan Bound = InstanceWalk.Bound;

    [SkippableFact]
    public async Task A_snapshot_of_a_running_guest_boots_as_a_new_instance_and_backups_rotate()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-snapshot");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
        }, scratch);
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        using var http = new HttpClient { BaseAddress = new Uri(images.Url) };
        var uuid = Guid.NewGuid();
        var copy = Guid.NewGuid();
        try
        {
            using var walk = new InstanceWalk(agent, libvirt, uuid);
            await walk.SpawnAsync(images.ImageId);
            await walk.BootedAsync(host.Guest.ReadyLine);

            // Live snapshot: the guest keeps running, the image arrives standalone with the properties.
            SnapshotReply? snapshot = null;
            await walk.ExpectAsync(
                async () => (snapshot = await agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid.ToString(), Name = "snap-1", Metadata = { ["purpose"] = "test" } })).Instance,
                [(VmState.Active, TaskState.ImageSnapshot), (VmState.Active, TaskState.ImagePendingUpload), (VmState.Active, TaskState.ImageUploading), (VmState.Active, TaskState.None)],
                DomainState.Running);
            var image = await GetImageAsync(http, snapshot!.ImageId);
            Assert.Equal(("active", "snapshot", uuid.ToString(), "test", images.ImageId), (Text(image, "status"), Text(image, "image_type"), Text(image, "instance_uuid"), Text(image, "purpose"), Text(image, "base_image_ref")));
            var uploaded = Path.Combine(images.Directory, $"{snapshot.ImageId}.qcow2");
            using (var info = JsonDocument.Parse(await QemuImg.InfoJsonAsync(uploaded, CancellationToken.None)))
            {
                Assert.False(info.RootElement.TryGetProperty("backing-filename", out _), "the snapshot is flattened: no backing file");
            }

            Assert.False(File.Exists(Path.Combine(scratch, "instances", uuid.ToString(), "snapshot.qcow2")), "the local copy is removed after the upload");

            // The snapshot is a bootable image: a new instance from it reaches the guest's ready line.
            using var fromSnapshot = new InstanceWalk(agent, libvirt, copy);
            await fromSnapshot.SpawnAsync(snapshot.ImageId);
            await fromSnapshot.BootedAsync(host.Guest.ReadyLine);
            await fromSnapshot.ExpectAsync(async () => (await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = copy.ToString() })).Instance, [(VmState.Active, TaskState.Deleting), (VmState.Deleted, TaskState.None)], null);

            // Backups with rotation 2: after three, the two newest are left and the first is gone.
            var backups = new List<string>();
            for (var i = 1; i <= 3; i++)
            {
                SnapshotReply? backup = null;
                await walk.ExpectAsync(
                    async () => (backup = await agent.Client.BackupAsync(new BackupRequest { InstanceUuid = uuid.ToString(), Name = $"daily-{i}", BackupType = "daily", Rotation = 2 })).Instance,
                    [(VmState.Active, TaskState.ImageBackup), (VmState.Active, TaskState.None)],
                    DomainState.Running);
                backups.Add(backup!.ImageId);
            }

            var kept = await ListImagesAsync(http, $"image_type=backup&backup_type=daily&instance_uuid={uuid}");
            Assert.Equal(backups.Skip(1).Reverse(), kept);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/v2/images/{backups[0]}")).StatusCode);
            Assert.Equal("snapshot", Text(await GetImageAsync(http, snapshot.ImageId), "image_type"));

            // A stopped guest is snapshotted from its disk and stays stopped.
            await walk.ExpectAsync(async () => (await agent.Client.StopAsync(new StopRequest { InstanceUuid = uuid.ToString() })).Instance, [(VmState.Active, TaskState.PoweringOff), (VmState.Stopped, TaskState.None)], DomainState.Shutoff);
            await walk.ExpectAsync(
                async () => (snapshot = await agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid.ToString(), Name = "snap-stopped" })).Instance,
                [(VmState.Stopped, TaskState.ImageSnapshot), (VmState.Stopped, TaskState.ImagePendingUpload), (VmState.Stopped, TaskState.ImageUploading), (VmState.Stopped, TaskState.None)],
                DomainState.Shutoff);
            Assert.Equal("active", Text(await GetImageAsync(http, snapshot!.ImageId), "status"));

            // Refused in a state the table does not allow, and no image record is left behind.
            await agent.Client.PauseAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow.Add(Bound));
            var before = await ListImagesAsync(http, "image_type=snapshot");
            var refused = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid.ToString(), Name = "snap-paused" }).ResponseAsync);
            Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
            Assert.Contains("PAUSED", refused.Status.Detail, StringComparison.Ordinal);
            Assert.Equal(before, await ListImagesAsync(http, "image_type=snapshot"));
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            DomainCleanup.Remove(QemuHost.Uri, copy);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task Set_admin_password_reaches_the_guest_through_its_guest_agent_and_a_snapshot_freezes_through_it()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-password");
        var withAgent = new Dictionary<string, ImageVariant> { ["guest-with-agent"] = new(new Dictionary<string, string> { ["hw_qemu_guest_agent"] = "yes" }) };
        await using var images = await ImageService.StartAsync(host.Guest, scratch, withAgent);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
        }, scratch);
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var uuid = Guid.NewGuid();
        try
        {
            using var walk = new InstanceWalk(agent, libvirt, uuid);
            await walk.SpawnAsync(ImageService.IdOf("guest-with-agent"));
            await walk.BootedAsync(host.Guest.ReadyLine);

            // Quotes, a colon and non-ASCII: what the guest's chpasswd receives is hashed there and compared here.
            const string password = "Correct \"horse\": battery staple \u00e9";
            var reply = await agent.Client.SetAdminPasswordAsync(new SetAdminPasswordRequest { InstanceUuid = uuid.ToString(), AdminPassword = password }, deadline: DateTime.UtcNow.Add(Bound));
            Assert.Equal((VmState.Active, TaskState.None), (reply.Instance.VmState, reply.Instance.TaskState));
            var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(password)));
            await EventWaits.WaitForConsoleLineAsync(Path.Combine(scratch, "instances", uuid.ToString(), "console.log"), $"{host.Guest.PasswordLinePrefix} root {sha}", Bound);
            walk.Skip(2);

            // With a guest agent the live snapshot freezes the guest's file systems around the cut:
            // the guest agent's fsfreeze hook prints freeze, then thaw, once each.
            var console = Path.Combine(scratch, "instances", uuid.ToString(), "console.log");
            await walk.ExpectAsync(
                async () => (await agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid.ToString(), Name = "snap-quiesced" })).Instance,
                [(VmState.Active, TaskState.ImageSnapshot), (VmState.Active, TaskState.ImagePendingUpload), (VmState.Active, TaskState.ImageUploading), (VmState.Active, TaskState.None)],
                DomainState.Running);
            await EventWaits.WaitForConsoleLineAsync(console, $"{host.Guest.FsFreezeLinePrefix} thaw", Bound);
            var hookLines = File.ReadAllLines(console).Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith(host.Guest.FsFreezeLinePrefix, StringComparison.Ordinal));
            Assert.Equal([$"{host.Guest.FsFreezeLinePrefix} freeze", $"{host.Guest.FsFreezeLinePrefix} thaw"], hookLines);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task Rebuild_soft_delete_restore_and_force_delete_walk_the_state_table()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-rebuild");
        var silentAgent = new Dictionary<string, ImageVariant> { ["silent-agent"] = new(new Dictionary<string, string> { ["hw_qemu_guest_agent"] = "yes" }, host.Guest.DiskWithoutGuestAgent) };
        await using var images = await ImageService.StartAsync(host.Guest, scratch, silentAgent);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
            ["ReclaimInstanceIntervalSeconds"] = "3600",
        }, scratch);
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var uuid = Guid.NewGuid();
        var request = new InstanceRequest { InstanceUuid = uuid.ToString() };
        var directory = Path.Combine(scratch, "instances", uuid.ToString());
        try
        {
            using var walk = new InstanceWalk(agent, libvirt, uuid);
            await walk.SpawnAsync(images.ImageId);
            await walk.BootedAsync(host.Guest.ReadyLine);

            // The image declares no guest agent: refused at once, nothing changes.
            var noAgent = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SetAdminPasswordAsync(new SetAdminPasswordRequest { InstanceUuid = uuid.ToString(), AdminPassword = "s3cret" }).ResponseAsync);
            Assert.Equal(StatusCode.FailedPrecondition, noAgent.StatusCode);
            Assert.Contains("hw_qemu_guest_agent", noAgent.Status.Detail, StringComparison.Ordinal);
            var unchanged = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Active, TaskState.None), (unchanged.VmState, unchanged.TaskState));

            // Rebuild onto an image that declares a guest agent: the domain is regenerated from its metadata.
            var agentImage = ImageService.IdOf("silent-agent");
            var oldBase = BackingFile(Path.Combine(directory, "disk"));
            await walk.ExpectAsync(
                async () => (await agent.Client.RebuildAsync(new RebuildRequest { InstanceUuid = uuid.ToString(), ImageId = agentImage })).Instance,
                [(VmState.Active, TaskState.Rebuilding), (VmState.Active, TaskState.RebuildSpawning), (VmState.Active, TaskState.None)],
                DomainState.Running);
            Assert.Equal(agentImage, (await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() })).ImageId);
            using (var domain = libvirt.LookupByUuid(uuid))
            {
                Assert.Contains("org.qemu.guest_agent.0", domain.GetXmlDesc(), StringComparison.Ordinal);
            }

            Assert.NotEqual(oldBase, BackingFile(Path.Combine(directory, "disk")));
            Assert.False(File.Exists(Path.Combine(directory, "disk.pre-rebuild")), "the old disk goes once the new guest runs");
            await walk.BootedAsync(host.Guest.ReadyLine);

            // A guest agent is declared but none answers in this guest: UNAVAILABLE, and the instance stays ACTIVE.
            var silent = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SetAdminPasswordAsync(new SetAdminPasswordRequest { InstanceUuid = uuid.ToString(), AdminPassword = "s3cret" }, deadline: DateTime.UtcNow.Add(Bound)).ResponseAsync);
            Assert.Equal(StatusCode.Unavailable, silent.StatusCode);
            var still = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (still.VmState, still.TaskState, still.PowerState));
            walk.Skip(2); // the attempt's UPDATING_PASSWORD and its rollback

            // Soft delete keeps everything, restore boots it again.
            await walk.ExpectAsync(async () => (await agent.Client.SoftDeleteAsync(request)).Instance, [(VmState.Active, TaskState.SoftDeleting), (VmState.SoftDeleted, TaskState.None)], DomainState.Shutoff);
            Assert.True(File.Exists(Path.Combine(directory, "disk")));
            await walk.ExpectAsync(async () => (await agent.Client.RestoreAsync(request)).Instance, [(VmState.SoftDeleted, TaskState.Restoring), (VmState.Active, TaskState.None)], DomainState.Running);
            await walk.BootedAsync(host.Guest.ReadyLine);

            // Force delete only from SOFT_DELETED.
            var notSoftDeleted = await Assert.ThrowsAsync<RpcException>(() => agent.Client.ForceDeleteAsync(request).ResponseAsync);
            Assert.Equal(StatusCode.FailedPrecondition, notSoftDeleted.StatusCode);
            await walk.ExpectAsync(async () => (await agent.Client.SoftDeleteAsync(request)).Instance, [(VmState.Active, TaskState.SoftDeleting), (VmState.SoftDeleted, TaskState.None)], DomainState.Shutoff);
            await walk.ExpectAsync(async () => (await agent.Client.ForceDeleteAsync(request)).Instance, [(VmState.SoftDeleted, TaskState.Deleting), (VmState.Deleted, TaskState.None)], null);
            Assert.False(Directory.Exists(directory));
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task A_rebuild_that_libvirt_refuses_ends_in_error_with_the_old_disk_kept()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-rebuild-fail");
        var bogus = new Dictionary<string, ImageVariant> { ["no-such-machine"] = new(new Dictionary<string, string> { ["hw_machine_type"] = "pc-no-such-machine-9.9" }) };
        await using var images = await ImageService.StartAsync(host.Guest, scratch, bogus);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
        }, scratch);
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var uuid = Guid.NewGuid();
        var directory = Path.Combine(scratch, "instances", uuid.ToString());
        try
        {
            using var walk = new InstanceWalk(agent, libvirt, uuid);
            await walk.SpawnAsync(images.ImageId);
            await walk.BootedAsync(host.Guest.ReadyLine);
            var oldDisk = await File.ReadAllBytesAsync(Path.Combine(directory, "disk"));

            // An unknown image refuses at once, nothing changed.
            var missing = await Assert.ThrowsAsync<RpcException>(() => agent.Client.RebuildAsync(new RebuildRequest { InstanceUuid = uuid.ToString(), ImageId = Guid.NewGuid().ToString() }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, missing.StatusCode);

            await walk.ExpectAsync(
                async () => (await agent.Client.RebuildAsync(new RebuildRequest { InstanceUuid = uuid.ToString(), ImageId = ImageService.IdOf("no-such-machine") })).Instance,
                [(VmState.Active, TaskState.Rebuilding), (VmState.Active, TaskState.RebuildSpawning), (VmState.Error, TaskState.None)],
                DomainState.Shutoff);
            var failed = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Contains("old root disk is kept at", failed.Fault.Message, StringComparison.Ordinal);
            Assert.Equal(oldDisk, await File.ReadAllBytesAsync(Path.Combine(directory, "disk.pre-rebuild")));
            Assert.Equal(images.ImageId, failed.ImageId);

            // Delete still cleans everything up from ERROR.
            await walk.ExpectAsync(async () => (await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() })).Instance, [(VmState.Error, TaskState.Deleting), (VmState.Deleted, TaskState.None)], null);
            Assert.False(Directory.Exists(directory));
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task The_reclaim_pass_deletes_soft_deleted_instances_past_the_interval_and_survives_a_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-reclaim");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        var settings = new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
            ["ReclaimInstanceIntervalSeconds"] = "4",
        };
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var uuid = Guid.NewGuid();
        var request = new InstanceRequest { InstanceUuid = uuid.ToString() };
        try
        {
            var agent = await AgentProcess.StartAsync(settings, scratch);
            using var walk = new InstanceWalk(agent, libvirt, uuid);
            await walk.SpawnAsync(images.ImageId);
            await walk.BootedAsync(host.Guest.ReadyLine);

            // Killed right after the soft delete is accepted: the restart finishes it.
            await agent.Client.SoftDeleteAsync(request);
            await agent.KillAsync();
            await agent.DisposeAsync();
            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var first = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.True(first.VmState is VmState.SoftDeleted or VmState.Deleted, $"soft delete finished by the restart, got {first.VmState}");

            // Then the reclaim pass deletes it: domain, files, record.
            var reclaimed = await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.Add(Bound));
            Assert.Equal(VmState.Deleted, reclaimed.VmState);
            Assert.Null(libvirt.TryLookupByUuid(uuid));
            Assert.False(Directory.Exists(Path.Combine(scratch, "instances", uuid.ToString())));
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task Restore_and_force_delete_interrupted_by_an_agent_kill_are_finished_on_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-restore-crash");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);

        // Zero: stops destroy at once, so no stop waits for a guest to boot far enough to see ACPI.
        var settings = new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "0",
            ["ReclaimInstanceIntervalSeconds"] = "3600",
        };
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var uuid = Guid.NewGuid();
        var request = new InstanceRequest { InstanceUuid = uuid.ToString() };
        var get = new GetInstanceRequest { InstanceUuid = uuid.ToString() };
        var directory = Path.Combine(scratch, "instances", uuid.ToString());
        try
        {
            // Restore held at the guest's start (libvirtd never gets it), the agent killed there.
            await using (var proxy = new LibvirtProxy())
            {
                var agent = await AgentProcess.StartAsync(new Dictionary<string, string>(settings) { ["LibvirtUri"] = proxy.Uri }, scratch);
                using (var walk = new InstanceWalk(agent, libvirt, uuid))
                {
                    await walk.SpawnAsync(images.ImageId);
                    await walk.ExpectAsync(async () => (await agent.Client.SoftDeleteAsync(request)).Instance, [(VmState.Active, TaskState.SoftDeleting), (VmState.SoftDeleted, TaskState.None)], DomainState.Shutoff);
                }

                proxy.Hold(LibvirtProcedure.DomainCreateWithFlags);
                Assert.Equal(TaskState.Restoring, (await agent.Client.RestoreAsync(request)).Instance.TaskState);
                await proxy.WaitHeldAsync(Bound);
                await agent.KillAsync();
                await agent.DisposeAsync();
            }

            using (var domain = libvirt.LookupByUuid(uuid))
            {
                Assert.Equal(DomainState.Shutoff, domain.GetState().State);
            }

            // Force delete held at the undefine, the agent killed there.
            await using (var proxy = new LibvirtProxy())
            {
                var agent = await AgentProcess.StartAsync(new Dictionary<string, string>(settings) { ["LibvirtUri"] = proxy.Uri }, scratch);
                var restored = await agent.Client.GetInstanceAsync(get);
                Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (restored.VmState, restored.TaskState, restored.PowerState));
                Assert.Equal(("interrupted", "the agent stopped during restore; it was finished: the instance is ACTIVE"), (restored.Fault.Code, restored.Fault.Message));
                using (var domain = libvirt.LookupByUuid(uuid))
                {
                    Assert.Equal(DomainState.Running, domain.GetState().State);
                }

                await agent.Client.SoftDeleteAsync(request);
                Assert.Equal(VmState.SoftDeleted, (await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.SoftDeleted }, deadline: DateTime.UtcNow.Add(Bound))).VmState);
                proxy.Hold(LibvirtProcedure.DomainUndefineFlags);
                Assert.Equal(TaskState.Deleting, (await agent.Client.ForceDeleteAsync(request)).Instance.TaskState);
                await proxy.WaitHeldAsync(Bound);
                await agent.KillAsync();
                await agent.DisposeAsync();
            }

            Assert.NotNull(libvirt.TryLookupByUuid(uuid));
            Assert.True(Directory.Exists(directory));
            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var deleted = await restarted.Client.GetInstanceAsync(get);
            Assert.Equal((VmState.Deleted, TaskState.None, PowerState.Nostate), (deleted.VmState, deleted.TaskState, deleted.PowerState));
            Assert.Null(libvirt.TryLookupByUuid(uuid));
            Assert.False(Directory.Exists(directory));
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static string? BackingFile(string image)
    {
        var info = QemuImg.InfoJsonAsync(image, CancellationToken.None).GetAwaiter().GetResult();
        using var document = JsonDocument.Parse(info);
        return document.RootElement.TryGetProperty("backing-filename", out var backing) ? backing.GetString() : null;
    }

    private static async Task<JsonElement> GetImageAsync(HttpClient http, string id)
    {
        using var document = JsonDocument.Parse(await http.GetStringAsync($"/v2/images/{id}"));
        return document.RootElement.Clone();
    }

    private static async Task<List<string>> ListImagesAsync(HttpClient http, string query)
    {
        using var document = JsonDocument.Parse(await http.GetStringAsync($"/v2/images?{query}&sort_key=created_at&sort_dir=desc"));
        return [.. document.RootElement.GetProperty("images").EnumerateArray().Select(i => i.GetProperty("id").GetString()!)];
    }

    private static string? Text(JsonElement image, string key) => image.TryGetProperty(key, out var value) ? value.GetString() : null;
}
