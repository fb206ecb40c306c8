using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// Every message of AgentOptions, ControllerLinkOptions and CallerOptions validation, each from one
/// bad value given to the real agent process on its command line: exit status 2, exactly that
/// message (naming the key) and no stack trace.
/// </summary>
public sealed class AgentSettingsValidationTests
{
    // A file that exists: the PEM / token checks only ask whether the named file is there.
    private const string Existing = "/etc/passwd";
    private const string Missing = "/nonexistent/compute-agent-test.pem";

    private static readonly string Long = new('x', 256);

    public static TheoryData<string[], string> Rows => new()
    {
        { ["LibvirtUri=not a uri"], "Agent:LibvirtUri 'not a uri' is not a URI (e.g. qemu:///system)" },
        { ["VirtType=xen"], "Agent:VirtType 'xen' must be kvm, qemu or auto" },
        { ["CpuMode=max"], "Agent:CpuMode 'max' must be host-model, host-passthrough, custom or none" },
        { ["CpuMode=custom"], "Agent:CpuMode custom needs Agent:CpuModels, e.g. [\"Haswell-noTSX\"] (virsh cpu-models x86_64 lists them)" },
        { ["CpuMode=host-model", "CpuModels:0=Haswell"], "Agent:CpuModels is only read with Agent:CpuMode custom (it is host-model): remove it or set CpuMode to custom" },
        { ["CpuMode=host-passthrough", "VirtType=qemu"], "Agent:CpuMode host-passthrough needs kvm, but Agent:VirtType is qemu: use host-model, custom or none" },
        { ["CpuMode=custom", "CpuModels:0=Has well"], "Agent:CpuModels 'Has well' must be a CPU model name of ASCII letters, digits, '.', '_' and '-' (virsh cpu-models x86_64 lists them)" },
        { ["StateDirectory=state"], "Agent:StateDirectory 'state' must be an absolute path" },
        { ["InstancesDirectory=instances"], "Agent:InstancesDirectory 'instances' must be an absolute path" },
        { ["UnixSocketPath=agent.sock"], "Agent:UnixSocketPath 'agent.sock' must be an absolute path" },
        { ["JournalSocketPath=journal.sock"], "Agent:JournalSocketPath 'journal.sock' must be an absolute path" },
        { ["BootIdPath=boot_id"], "Agent:BootIdPath 'boot_id' must be an absolute path" },
        { ["ImageServiceUrl=ftp://glance"], "Agent:ImageServiceUrl 'ftp://glance' must be an http(s) URL of the Glance v2 API" },
        {
            ["TcpListen=localhost", $"Callers:ServerCertificatePath={Existing}", $"Callers:ServerKeyPath={Existing}", $"Callers:ClientCaPath={Existing}"],
            "Agent:TcpListen 'localhost' must be ADDRESS:PORT, e.g. 127.0.0.1:50051"
        },
        { ["MetricsListen=localhost"], "Agent:MetricsListen 'localhost' must be ADDRESS:PORT, e.g. 127.0.0.1:9180" },
        { ["MetricsMutualTls=true"], "Agent:MetricsMutualTls is only read with Agent:MetricsListen: set the metrics listener's ADDRESS:PORT (e.g. 127.0.0.1:9180) or remove MetricsMutualTls" },
        {
            ["MetricsListen=127.0.0.1:9180", "MetricsMutualTls=true", $"Callers:ServerCertificatePath={Existing}", $"Callers:ServerKeyPath={Existing}"],
            "Agent:Callers:ClientCaPath '' must name a readable PEM file: Agent:MetricsMutualTls serves /metrics only over mutual TLS"
        },
        {
            ["TcpListen=0.0.0.0:50051", $"Callers:ServerCertificatePath={Existing}", $"Callers:ServerKeyPath={Existing}", $"Callers:ClientCaPath={Existing}", "MetricsListen=127.0.0.1:50051"],
            "Agent:MetricsListen '127.0.0.1:50051' is the address of Agent:TcpListen '0.0.0.0:50051': give the metrics listener a port of its own, e.g. 9180"
        },
        { ["ConfigDriveFormat=udf"], "Agent:ConfigDriveFormat 'udf' must be iso9660 or vfat" },
        { ["SysinfoManufacturer= "], "Agent:SysinfoManufacturer ' ' must be 1 to 255 printable characters" },
        { [$"SysinfoProduct={Long}"], $"Agent:SysinfoProduct '{Long}' must be 1 to 255 printable characters" },
        { ["SysinfoFamily=Virtual\tMachine"], "Agent:SysinfoFamily 'Virtual\tMachine' must be 1 to 255 printable characters" },
        { [$"SysinfoVersion={Long}"], $"Agent:SysinfoVersion '{Long}' must be at most 255 printable characters" },
        { ["MaxConcurrentBuilds=1001"], "Agent:MaxConcurrentBuilds 1001 must be between 1 and 1000" },
        { ["ReconcileIntervalSeconds=0"], "Agent:ReconcileIntervalSeconds 0 must be between 1 and 86400" },
        { ["ReclaimInstanceIntervalSeconds=-1"], "Agent:ReclaimInstanceIntervalSeconds -1 must be 0 (soft delete deletes at once) or more" },
        { ["GracefulStopTimeoutSeconds=3601"], "Agent:GracefulStopTimeoutSeconds 3601 must be between 0 and 3600" },
        { ["ImageCacheMaxUnusedHours=8761"], "Agent:ImageCacheMaxUnusedHours 8761 must be between 1 and 8760" },
        { ["AcceptedDiskFormats= , "], "Agent:AcceptedDiskFormats ' , ' must name at least one disk format, e.g. \"qcow2, raw, iso\"" },
        { ["AcceptedDiskFormats=qcow2, qed"], "Agent:AcceptedDiskFormats names 'qed', which is not a disk format this host can boot; allowed: ami, iso, ploop, qcow2, raw, vdi, vhd, vhdx, vmdk" },
        { ["LogTarget=syslog"], "Agent:LogTarget 'syslog' must be auto, journal or console" },
        { ["OnHostShutdown=hibernate"], "Agent:OnHostShutdown 'hibernate' must be shutdown, suspend or none" },
        { ["HostShutdownTimeoutSeconds=0"], "Agent:HostShutdownTimeoutSeconds 0 must be between 1 and 3600" },
        { ["SystemBusAddress=/run/dbus/system_bus_socket"], "Agent:SystemBusAddress '/run/dbus/system_bus_socket' is not a D-Bus address (e.g. unix:path=/run/dbus/system_bus_socket)" },
        {
            ["Controller:Address=http://controller:8443", .. ControllerFiles()],
            "Agent:Controller:Address 'http://controller:8443' must be the controller's https:// URL, e.g. https://controller.example:8443"
        },
        {
            ["Controller:Address=https://controller:8443", .. ControllerFiles(), $"Controller:CertificatePath={Missing}"],
            $"Agent:Controller:CertificatePath '{Missing}' must name a readable PEM file (the link uses mutual TLS)"
        },
        {
            ["Controller:Address=https://controller:8443", .. ControllerFiles(), $"Controller:KeyPath={Missing}"],
            $"Agent:Controller:KeyPath '{Missing}' must name a readable PEM file (the link uses mutual TLS)"
        },
        {
            ["Controller:Address=https://controller:8443", .. ControllerFiles(), $"Controller:CaPath={Missing}"],
            $"Agent:Controller:CaPath '{Missing}' must name a readable PEM file (the link uses mutual TLS)"
        },
        {
            ["Controller:Address=https://controller:8443", .. ControllerFiles(), "Controller:ReportIntervalSeconds=0"],
            "Agent:Controller:ReportIntervalSeconds 0 must be between 1 and 86400"
        },
        {
            ["Controller:Address=https://controller:8443", .. ControllerFiles(), "Controller:MinBackoffSeconds=10", "Controller:MaxBackoffSeconds=5"],
            "Agent:Controller:MinBackoffSeconds 10 / MaxBackoffSeconds 5 must satisfy 0 < min <= max <= 3600"
        },
        {
            ["TcpListen=127.0.0.1:50051", $"Callers:ServerKeyPath={Existing}", $"Callers:ClientCaPath={Existing}"],
            "Agent:Callers:ServerCertificatePath '' must name a readable PEM file: the TCP listener serves only mutual TLS"
        },
        {
            ["TcpListen=127.0.0.1:50051", $"Callers:ServerCertificatePath={Existing}", $"Callers:ServerKeyPath={Missing}", $"Callers:ClientCaPath={Existing}"],
            $"Agent:Callers:ServerKeyPath '{Missing}' must name a readable PEM file: the TCP listener serves only mutual TLS"
        },
        {
            ["TcpListen=127.0.0.1:50051", $"Callers:ServerCertificatePath={Existing}", $"Callers:ServerKeyPath={Existing}"],
            "Agent:Callers:ClientCaPath '' must name a readable PEM file: the TCP listener serves only mutual TLS"
        },
        { ["Callers:SocketGroup= "], "Agent:Callers:SocketGroup must name a group (default compute-agent)" },
        { [$"Callers:TokenFile={Missing}"], $"Agent:Callers:TokenFile '{Missing}' does not exist" },
        {
            ["Callers:KeystoneUrl=ftp://keystone:5000", $"Callers:KeystoneServiceTokenFile={Existing}"],
            "Agent:Callers:KeystoneUrl 'ftp://keystone:5000' must be the http(s) URL of Keystone, e.g. http://keystone:5000"
        },
        {
            ["Callers:KeystoneUrl=http://keystone:5000", $"Callers:KeystoneServiceTokenFile={Missing}"],
            $"Agent:Callers:KeystoneServiceTokenFile '{Missing}' must name the file holding the agent's own Keystone token"
        },
        {
            ["Callers:KeystoneUrl=http://keystone:5000", $"Callers:KeystoneServiceTokenFile={Existing}", $"Callers:TokenFile={Existing}"],
            "Agent:Callers:TokenFile and Agent:Callers:KeystoneUrl exclude each other: choose one"
        },
        { ["Callers:KeystoneCacheSeconds=86401"], "Agent:Callers:KeystoneCacheSeconds 86401 must be between 0 and 86400" },
        { ["Callers:MaxRequestBytes=1023"], "Agent:Callers:MaxRequestBytes 1023 must be between 1024 and 268435456" },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task One_bad_value_stops_the_start_with_exit_2_and_exactly_its_message(string[] settings, string message)
    {
        // test:///default unless the row sets LibvirtUri: a row the agent wrongly accepted would
        // start and serve instead of exiting, and fail on RunToExitAsync's bound.
        var arguments = new Dictionary<string, string>(StringComparer.Ordinal) { ["LibvirtUri"] = "test:///default" };
        foreach (var setting in settings)
        {
            var (key, value) = (setting[..setting.IndexOf('=', StringComparison.Ordinal)], setting[(setting.IndexOf('=', StringComparison.Ordinal) + 1)..]);
            arguments[key] = value;
        }

        var (exitCode, output) = await AgentProcess.RunToExitAsync(arguments);

        Assert.Equal(2, exitCode);
        Assert.Equal([message], Problems(output));
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
    }

    private static string[] ControllerFiles() =>
        [$"Controller:CertificatePath={Existing}", $"Controller:KeyPath={Existing}", $"Controller:CaPath={Existing}"];

    /// <summary>The lines under "the configuration is not valid:", as the agent prints them (two spaces in).</summary>
    private static string[] Problems(string output)
    {
        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        var heading = lines.IndexOf("compute-agent: the configuration is not valid:");
        Assert.True(heading >= 0, $"no configuration problems printed:\n{output}");
        return [.. lines.Skip(heading + 1).TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal)).Select(l => l[2..])];
    }
}
