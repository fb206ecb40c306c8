using System.Globalization;

namespace ComputeAgent.Testing;

/// <summary>
/// Everything a test controller needs kept across its restarts: its CA, its server certificate,
/// the certificate it issued the agent, its port and its ledger; and the agent's settings to reach it.
/// </summary>
public sealed class ControllerSite
{
    private readonly PemPair serverCertificate;

    private ControllerSite(string scratch)
    {
        Pki = TestCertificates.Create(scratch);
        serverCertificate = Pki.IssueServer("controller");
        AgentCertificate = Pki.IssueClient("agent-host-1");
        Port = TestController.FreePort();
    }

    public TestCertificates Pki { get; }

    public PemPair AgentCertificate { get; }

    public int Port { get; }

    public ControllerLedger Ledger { get; } = new();

    public static ControllerSite Create(string scratch) => new(scratch);

    /// <summary>Starts (or restarts) the controller on its port, with the same ledger.</summary>
    public Task<TestController> StartAsync() => TestController.StartAsync(Pki, serverCertificate, Ledger, Port);

    /// <summary>The agent's Controller:* settings (and these others) to dial the controller at this port (its own, or a proxy's).</summary>
    public Dictionary<string, string> AgentSettings(int port, double backoffSeconds, IReadOnlyDictionary<string, string> others)
    {
        var settings = new Dictionary<string, string>(others)
        {
            ["Controller:Address"] = $"https://127.0.0.1:{port}",
            ["Controller:CertificatePath"] = AgentCertificate.CertificatePath,
            ["Controller:KeyPath"] = AgentCertificate.KeyPath,
            ["Controller:CaPath"] = Pki.CaPath,
            ["Controller:MinBackoffSeconds"] = backoffSeconds.ToString(CultureInfo.InvariantCulture),
            ["Controller:MaxBackoffSeconds"] = (backoffSeconds * 5).ToString(CultureInfo.InvariantCulture),
        };
        return settings;
    }
}
