namespace ComputeAgent.Host.Controller;

/// <summary>Agent:Controller: where the controller is and the certificates the agent dials it with.</summary>
public sealed class ControllerLinkOptions
{
    /// <summary>The controller's https:// URL; empty: no controller link.</summary>
    public string? Address { get; set; }

    /// <summary>The agent's client certificate (PEM), signed by a CA the controller trusts.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>The private key of <see cref="CertificatePath"/> (PEM).</summary>
    public string? KeyPath { get; set; }

    /// <summary>The CA (PEM) the controller's server certificate must chain to.</summary>
    public string? CaPath { get; set; }

    /// <summary>The name the agent reports itself under; empty: libvirt's hostname.</summary>
    public string? HostId { get; set; }

    public int ReportIntervalSeconds { get; set; } = 60;

    /// <summary>The first wait after a failed dial; it doubles (with jitter) up to <see cref="MaxBackoffSeconds"/>.</summary>
    public double MinBackoffSeconds { get; set; } = 1;

    public double MaxBackoffSeconds { get; set; } = 30;

    public bool Enabled => !string.IsNullOrEmpty(Address);

    public IEnumerable<string> Validate()
    {
        if (!Enabled)
        {
            yield break;
        }

        if (!(Uri.TryCreate(Address, UriKind.Absolute, out var address) && address.Scheme == "https"))
        {
            yield return $"Agent:Controller:Address '{Address}' must be the controller's https:// URL, e.g. https://controller.example:8443";
        }

        foreach (var (key, path) in new[] { ("CertificatePath", CertificatePath), ("KeyPath", KeyPath), ("CaPath", CaPath) })
        {
            if (string.IsNullOrEmpty(path) || !File.Exists(path))
            {
                yield return $"Agent:Controller:{key} '{path}' must name a readable PEM file (the link uses mutual TLS)";
            }
        }

        if (ReportIntervalSeconds is < 1 or > 86_400)
        {
            yield return $"Agent:Controller:ReportIntervalSeconds {ReportIntervalSeconds} must be between 1 and 86400";
        }

        if (MinBackoffSeconds is <= 0 or > 3_600 || MaxBackoffSeconds < MinBackoffSeconds || MaxBackoffSeconds > 3_600)
        {
            yield return $"Agent:Controller:MinBackoffSeconds {MinBackoffSeconds} / MaxBackoffSeconds {MaxBackoffSeconds} must satisfy 0 < min <= max <= 3600";
        }
    }
}
