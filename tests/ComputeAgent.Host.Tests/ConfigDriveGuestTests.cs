using System.Text;
using System.Text.Json;
using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Google.Protobuf;
using Grpc.Core;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// A key pair, metadata and binary user data given to Spawn reach a real guest: the test guest
/// mounts its config drive and prints the files base64-encoded on its serial console, and the test
/// compares them byte for byte with what it sent.
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class ConfigDriveGuestTests(QemuHost host)
{
    private const string Marker = "COMPUTE-AGENT-GUEST CONFIG-DRIVE";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [SkippableFact]
    public async Task Key_pair_metadata_and_user_data_arrive_in_the_guest_byte_for_byte_and_the_drive_survives_rescue()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("config-drive");
        var images = await ImageService.StartAsync(host.Guest, scratch);
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
        }, scratch);
        var uuid = Guid.NewGuid();
        try
        {
            await SpawnAndCheckAsync(agent, images, scratch, uuid);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            await agent.DisposeAsync();
            await images.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static async Task SpawnAndCheckAsync(AgentProcess agent, ImageService images, string scratch, Guid uuid)
    {

        // Hostile on purpose: quotes, backslashes, newlines, "../", non-ASCII; user data that is not UTF-8.
        var userData = new byte[] { 0xff, 0xfe, 0x00, 0x80, (byte)'#', (byte)'!', 0x0a, 0xc3, 0x28, 0x7f, 0x1b, (byte)'"' };
        var metadata = new Dictionary<string, string>
        {
            ["role"] = "web \"frontend\"",
            ["../../../etc/passwd"] = "line one\nline two\\",
            ["ünïcødé"] = "値 ✓",
        };
        const string keyName = "ops \"key\" ../x";
        const string publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsPq4jUJ8xT9Zb0Yb5fQ3tVvT2m7VfQzJ3kqzXyZ0aB test@compute-agent";
        var request = new SpawnRequest
        {
            InstanceUuid = uuid.ToString(),
            Name = "Config Drive_1",
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
            ImageId = images.ImageId,
            ProjectId = "p1",
            UserId = "u1",
            KeyPair = new KeyPair { Name = keyName, PublicKey = publicKey },
            UserData = ByteString.CopyFrom(userData),
            AdminPassword = "s3cret \"pass\"",
            ConfigDrive = true,
        };
        request.Metadata.Add(metadata);
        await agent.Client.SpawnAsync(request);
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow + Bound);

        var console = Path.Combine(scratch, "instances", uuid.ToString(), "console.log");
        await EventWaits.WaitForConsoleLineAsync(console, Marker + " DONE", Bound);
        var files = ReadDriveFiles(console);

        Assert.Equal(userData, files["user_data"]);
        using var meta = JsonDocument.Parse(files["meta_data.json"]);
        var root = meta.RootElement;
        Assert.Equal(uuid.ToString(), root.GetProperty("uuid").GetString());
        Assert.Equal("Config Drive_1", root.GetProperty("name").GetString());
        Assert.Equal("config-drive-1", root.GetProperty("hostname").GetString());
        Assert.Equal("p1", root.GetProperty("project_id").GetString());
        Assert.Equal(publicKey, root.GetProperty("public_keys").GetProperty(keyName).GetString());
        var key = Assert.Single(root.GetProperty("keys").EnumerateArray());
        Assert.Equal(keyName, key.GetProperty("name").GetString());
        Assert.Equal("ssh", key.GetProperty("type").GetString());
        Assert.Equal(publicKey, key.GetProperty("data").GetString());
        Assert.Equal(metadata, root.GetProperty("meta").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!));
        Assert.Equal("s3cret \"pass\"", root.GetProperty("admin_pass").GetString());

        // Delivered, the password is kept nowhere by the agent: not in agent.db nor its WAL.
        var database = Path.Combine(scratch, "state", "agent.db");
        foreach (var file in new[] { database, database + "-wal" }.Where(File.Exists))
        {
            Assert.DoesNotContain("s3cret", Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file)), StringComparison.Ordinal);
        }
        using var network = JsonDocument.Parse(files["network_data.json"]);
        Assert.Equal(0, network.RootElement.GetProperty("links").GetArrayLength());

        // Rebuild writes the password of its own request to the new drive (as Nova's rebuild), and keeps it nowhere either.
        await agent.Client.RebuildAsync(new RebuildRequest { InstanceUuid = uuid.ToString(), ImageId = images.ImageId, AdminPassword = "n3w-rebuilt" });
        var rebuilt = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow + Bound);
        Assert.Equal(VmState.Active, rebuilt.VmState);
        var extracted = Path.Combine(scratch, "rebuilt-drive");
        (await ProcessRunner.RunAsync("xorriso", ["-osirrox", "on", "-indev", Path.Combine(scratch, "instances", uuid.ToString(), "disk.config"), "-extract", "/openstack/latest", extracted], Bound)).EnsureSuccess("xorriso -extract");
        using (var rebuiltMeta = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(extracted, "meta_data.json"))))
        {
            Assert.Equal("n3w-rebuilt", rebuiltMeta.RootElement.GetProperty("admin_pass").GetString());
        }

        Directory.Delete(extracted, recursive: true);
        foreach (var file in new[] { database, database + "-wal" }.Where(File.Exists))
        {
            Assert.DoesNotContain("n3w-rebuilt", Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file)), StringComparison.Ordinal);
        }

        // Nothing named after the input was created anywhere: the instance folder holds the agent's own files.
        var instanceDir = Path.Combine(scratch, "instances", uuid.ToString());
        Assert.Equal(["console.log", "disk", "disk.config"], Directory.GetFileSystemEntries(instanceDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // Rescue keeps the drive attached (Nova's rescue domain has it too).
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        await agent.Client.RescueAsync(new RescueRequest { InstanceUuid = uuid.ToString() });
        var rescued = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow + Bound);
        Assert.Equal(VmState.Rescued, rescued.VmState);
        using (var domain = libvirt.LookupByUuid(uuid))
        {
            Assert.Contains(Path.Combine(instanceDir, "disk.config"), domain.GetXmlDesc(DomainXmlFlags.None), StringComparison.Ordinal);
        }

        await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow + Bound);
        Assert.False(Directory.Exists(instanceDir));
    }

    [SkippableFact]
    public async Task Oversize_user_data_and_a_key_name_with_a_newline_are_refused_naming_the_field_and_create_nothing()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("config-drive-refused");
        var images = await ImageService.StartAsync(host.Guest, scratch);
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
        }, scratch);

        SpawnRequest Request() => new()
        {
            InstanceUuid = Guid.NewGuid().ToString(),
            Name = "refused",
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
            ImageId = images.ImageId,
            ProjectId = "p1",
            UserId = "u1",
            ConfigDrive = true,
        };

        var oversize = Request();
        oversize.UserData = ByteString.CopyFrom(new byte[65_536]);
        var tooLong = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SpawnAsync(oversize).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, tooLong.StatusCode);
        Assert.Contains("user_data", tooLong.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("65535", tooLong.Status.Detail.Replace(",", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);

        var newline = Request();
        newline.KeyPair = new KeyPair { Name = "evil\nname", PublicKey = "ssh-ed25519 AAAA" };
        var badKey = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SpawnAsync(newline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badKey.StatusCode);
        Assert.Contains("key_pair.name", badKey.Status.Detail, StringComparison.Ordinal);

        // The shared libvirtd may hold other agents' guests, which this agent adopts: ask for these two only.
        foreach (var refused in new[] { oversize, newline })
        {
            var lookup = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = refused.InstanceUuid }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, lookup.StatusCode);
        }

        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(scratch, "instances")));
        await agent.DisposeAsync();
        await images.DisposeAsync();
        Directory.Delete(scratch, recursive: true);
    }

    /// <summary>The files the guest printed between BEGIN/END lines, base64-decoded.</summary>
    private static Dictionary<string, byte[]> ReadDriveFiles(string consoleLog)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string? current = null;
        var body = new StringBuilder();
        foreach (var raw in File.ReadAllLines(consoleLog))
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith(Marker + " BEGIN ", StringComparison.Ordinal))
            {
                current = line[(Marker.Length + 7)..];
                body.Clear();
            }
            else if (current is not null && line == Marker + " END " + current)
            {
                files[current] = Convert.FromBase64String(body.ToString());
                current = null;
            }
            else if (current is not null)
            {
                body.Append(line.Trim());
            }
        }

        return files;
    }
}
