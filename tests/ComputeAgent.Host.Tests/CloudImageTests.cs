using System.Text;
using System.Text.Json;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Google.Protobuf;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// The real thing: a Debian 12 image with cloud-init, booted by direct kernel boot from its image
/// properties (kernel_id, ramdisk_id, os_command_line), finds its config drive, writes the key pair
/// into authorized_keys and runs the user-data script, as the serial console shows.
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class CloudImageTests(QemuHost host)
{
    private const string KernelId = "c0ffee00-0000-4000-8000-00000000000a";
    private const string RamdiskId = "c0ffee00-0000-4000-8000-00000000000b";
    private const string PublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8jZ0cJ5xYtR8m1Nw3vQe7s2L4kP9aHf6dUo1bTc3X cloud-test@compute-agent";

    // Bounds for a hung boot, not speed assertions: systemd + cloud-init under TCG take minutes.
    private static readonly TimeSpan BootBound = TimeSpan.FromMinutes(8);

    [SkippableFact]
    public async Task Cloud_init_finds_the_config_drive_writes_the_key_and_runs_the_user_data_script()
    {
        host.SkipIfUnavailable();
        Skip.If(CloudImage.UnavailableReason is not null, CloudImage.UnavailableReason);
        var image = await CloudImage.LoadOrBuildAsync();
        var scratch = RepositoryPaths.CreateScratch("cloud-image");
        var served = Path.Combine(scratch, "images");
        Directory.CreateDirectory(served);
        File.CreateSymbolicLink(Path.Combine(served, "debian-12-cloud.qcow2"), image.Disk);
        File.CreateSymbolicLink(Path.Combine(served, "debian-12-cloud-kernel.aki"), image.Kernel);
        File.CreateSymbolicLink(Path.Combine(served, "debian-12-cloud-ramdisk.ari"), image.Initrd);
        await File.WriteAllTextAsync(Path.Combine(served, "debian-12-cloud-kernel.aki.json"), JsonSerializer.Serialize(new { id = KernelId }));
        await File.WriteAllTextAsync(Path.Combine(served, "debian-12-cloud-ramdisk.ari.json"), JsonSerializer.Serialize(new { id = RamdiskId }));
        await File.WriteAllTextAsync(Path.Combine(served, "debian-12-cloud.qcow2.json"), JsonSerializer.Serialize(new
        {
            properties = new Dictionary<string, string> { ["kernel_id"] = KernelId, ["ramdisk_id"] = RamdiskId, ["os_command_line"] = image.CommandLine },
        }));
        var images = await ImageService.StartAsync(served);
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "5",
        }, scratch);

        var uuid = Guid.NewGuid();
        try
        {
            await BootAndCheckAsync(agent, images, image, scratch, uuid);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            await agent.DisposeAsync();
            await images.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static async Task BootAndCheckAsync(AgentProcess agent, ImageService images, CloudImage image, string scratch, Guid uuid)
    {
        // The script writes straight to the serial port: what it prints is the test's evidence.
        // Each line opens the port anew, retrying: serial-getty starting on ttyS0 at the same time
        // hangs the port up (vhangup), and a descriptor opened before that only gets EIO.
        const string script = """
            #!/bin/sh
            say() { for i in 1 2 3 4 5 6 7 8 9 10; do printf '%s\n' "$1" >/dev/ttyS0 2>/dev/null && return 0; sleep 1; done; return 1; }
            say "CLOUD-TEST DATASOURCE $(grep -o '"datasource": "[^"]*"' /run/cloud-init/status.json | head -n1)"
            say "CLOUD-TEST AUTHORIZED-KEYS BEGIN"
            cat /home/*/.ssh/authorized_keys | while IFS= read -r key; do say "$key"; done
            say "CLOUD-TEST AUTHORIZED-KEYS END"
            say "CLOUD-TEST USER-DATA RAN as $(id -un)"
            """;
        var request = new SpawnRequest
        {
            InstanceUuid = uuid.ToString(),
            Name = "cloud-test",
            Flavor = new Flavor { Name = "m1.small", Vcpus = 1, RamMib = 512, RootGib = 2 },
            ImageId = images.Ids["debian-12-cloud.qcow2"],
            ProjectId = "p1",
            UserId = "u1",
            KeyPair = new KeyPair { Name = "cloud-test", PublicKey = PublicKey },
            UserData = ByteString.CopyFrom(Encoding.UTF8.GetBytes(script.Replace("\r\n", "\n", StringComparison.Ordinal) + "\n")),
            ConfigDrive = true,
        };
        await agent.Client.SpawnAsync(request);
        var spawned = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow + TimeSpan.FromMinutes(5));
        Assert.True(spawned.VmState == VmState.Active, $"spawn ended {spawned.VmState}: {spawned.Fault?.Message}\n{agent.Output}");

        var console = Path.Combine(scratch, "instances", uuid.ToString(), "console.log");
        // Cloud-init's last word comes after the user-data script: wait for it, then look.
        await EventWaits.WaitForConsoleAsync(console, l => l.Contains("Cloud-init v.", StringComparison.Ordinal) && l.Contains("finished at", StringComparison.Ordinal), "cloud-init's 'finished at' line", BootBound);
        // getty's login prompt on the same serial port can land at the start of any of the script's
        // lines (both write to ttyS0 at once): take it off before matching.
        var lines = (await File.ReadAllLinesAsync(console)).Select(l => l.TrimEnd('\r').Replace("cloud-test login: ", string.Empty, StringComparison.Ordinal)).ToList();
        Assert.True(lines.Contains("CLOUD-TEST USER-DATA RAN as root"), $"the user-data script did not run to its end as root; console:\n{string.Join('\n', lines.TakeLast(60))}");
        var datasource = Assert.Single(lines, l => l.Contains("CLOUD-TEST DATASOURCE", StringComparison.Ordinal));
        Assert.Contains("DataSourceConfigDrive", datasource, StringComparison.Ordinal);
        var begin = lines.IndexOf("CLOUD-TEST AUTHORIZED-KEYS BEGIN");
        var end = lines.IndexOf("CLOUD-TEST AUTHORIZED-KEYS END");
        Assert.InRange(begin, 0, end - 1);
        Assert.Contains(PublicKey, lines.Skip(begin + 1).Take(end - begin - 1));

        await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow + TimeSpan.FromMinutes(2));
        Assert.False(Directory.Exists(Path.Combine(scratch, "instances", uuid.ToString())));
    }
}
