extern alias host;

using System.Text.Json;
using ComputeAgent.Testing;
using host::ComputeAgent.Host;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>packaging/agent.json, the conffile: every setting of the agent, with its default, each with a comment.</summary>
public sealed class PackagedSettingsTests
{
    // What a setting is: the writable properties (a section's computed ones, such as Enabled, are not).
    private static readonly JsonSerializerOptions SettingsOnly = new() { IgnoreReadOnlyProperties = true };

    [Fact]
    public void The_conffile_lists_every_setting_with_its_default_and_a_comment_and_passes_validation()
    {
        var path = Path.Combine(RepositoryPaths.Root, "packaging", "agent.json");
        var lines = File.ReadAllLines(path);
        using var json = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip });
        var section = json.RootElement.GetProperty(AgentOptions.Section);
        var defaults = new AgentOptions();
        foreach (var property in typeof(AgentOptions).GetProperties().Where(p => p.CanWrite))
        {
            Assert.True(section.TryGetProperty(property.Name, out var value), $"{property.Name} is missing from {path}");
            var expected = property.GetValue(defaults);
            // Written compactly (comments and layout dropped), so nested sections compare too.
            Assert.Equal(expected is null ? "null" : JsonSerializer.Serialize(expected, SettingsOnly), JsonSerializer.Serialize(value));
            var at = Array.FindIndex(lines, l => l.TrimStart().StartsWith($"\"{property.Name}\":", StringComparison.Ordinal));
            Assert.True(at > 0 && lines[at - 1].TrimStart().StartsWith("//", StringComparison.Ordinal), $"{property.Name} has no comment above it");
        }

        Assert.Empty(defaults.Validate());
    }

    [Fact]
    public void Bad_cpu_settings_are_each_named()
    {
        Assert.Equal(["Agent:CpuMode 'host' must be host-model, host-passthrough, custom or none"], new AgentOptions { CpuMode = "host" }.Validate());
        Assert.Equal(
            ["Agent:CpuMode custom needs Agent:CpuModels, e.g. [\"Haswell-noTSX\"] (virsh cpu-models x86_64 lists them)"],
            new AgentOptions { CpuMode = "custom" }.Validate());
        Assert.Equal(
            ["Agent:CpuModels is only read with Agent:CpuMode custom (it is host-model): remove it or set CpuMode to custom"],
            new AgentOptions { CpuModels = ["Haswell-noTSX"] }.Validate());
        Assert.Equal(
            ["Agent:CpuMode host-passthrough needs kvm, but Agent:VirtType is qemu: use host-model, custom or none"],
            new AgentOptions { CpuMode = "host-passthrough", VirtType = "qemu" }.Validate());
        Assert.Equal(
            ["Agent:CpuModels 'Haswell noTSX' must be a CPU model name of ASCII letters, digits, '.', '_' and '-' (virsh cpu-models x86_64 lists them)"],
            new AgentOptions { CpuMode = "custom", CpuModels = ["Haswell noTSX"] }.Validate());
        Assert.Empty(new AgentOptions { CpuMode = "host-passthrough", VirtType = "auto" }.Validate());
        Assert.Empty(new AgentOptions { CpuMode = "none" }.Validate());
    }

    [Theory]
    [InlineData("host-model", null, "HostModel", null)]
    [InlineData("host-passthrough", null, "HostPassthrough", null)]
    [InlineData("none", null, "None", null)]
    [InlineData("custom", "Haswell-noTSX,qemu64", "Custom", "Haswell-noTSX")]
    public void The_cpu_settings_become_the_guests_cpu_mode_and_model(string mode, string? models, string expectedMode, string? expectedModel)
    {
        var options = new AgentOptions { CpuMode = mode, CpuModels = models?.Split(',').ToList() ?? [] };
        Assert.Empty(options.Validate());
        var settings = options.ToHostSettings(kvmUsable: true);
        Assert.Equal(expectedMode, settings.CpuMode.ToString());
        Assert.Equal(expectedModel, settings.CpuModel);
        settings.Validate();
    }

    [Fact]
    public void Bad_host_shutdown_and_log_settings_are_each_named()
    {
        var problems = new AgentOptions
        {
            OnHostShutdown = "hibernate",
            HostShutdownTimeoutSeconds = 0,
            LogTarget = "syslog",
            JournalSocketPath = "journal.sock",
            BootIdPath = "boot_id",
            SystemBusAddress = "/run/dbus/system_bus_socket",
        }.Validate();

        Assert.Equal(
            [
                "Agent:JournalSocketPath 'journal.sock' must be an absolute path",
                "Agent:BootIdPath 'boot_id' must be an absolute path",
                "Agent:LogTarget 'syslog' must be auto, journal or console",
                "Agent:OnHostShutdown 'hibernate' must be shutdown, suspend or none",
                "Agent:HostShutdownTimeoutSeconds 0 must be between 1 and 3600",
                "Agent:SystemBusAddress '/run/dbus/system_bus_socket' is not a D-Bus address (e.g. unix:path=/run/dbus/system_bus_socket)",
            ],
            problems);
    }

    [Fact]
    public void Accepted_disk_formats_reach_the_image_cache_and_unknown_names_are_each_named()
    {
        var vmdk = new AgentOptions { AcceptedDiskFormats = "qcow2, vmdk" };
        Assert.Empty(vmdk.Validate());
        Assert.Equal(["qcow2", "vmdk"], vmdk.ToImageCacheOptions().AcceptedDiskFormats);
        Assert.Equal(["qcow2", "raw", "iso"], new AgentOptions().ToImageCacheOptions().AcceptedDiskFormats);

        var problems = new AgentOptions { AcceptedDiskFormats = "qcow2, tar, aki" }.Validate();
        Assert.Equal(2, problems.Count);
        Assert.StartsWith("Agent:AcceptedDiskFormats names 'tar', which is not a disk format this host can boot; allowed: ami, iso, ploop, qcow2, raw, vdi, vhd, vhdx, vmdk", problems[0], StringComparison.Ordinal);
        Assert.StartsWith("Agent:AcceptedDiskFormats names 'aki'", problems[1], StringComparison.Ordinal);
        Assert.Equal(["Agent:AcceptedDiskFormats ' , ' must name at least one disk format, e.g. \"qcow2, raw, iso\""], new AgentOptions { AcceptedDiskFormats = " , " }.Validate());
    }
}
