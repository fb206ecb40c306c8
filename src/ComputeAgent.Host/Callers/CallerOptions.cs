namespace ComputeAgent.Host.Callers;

/// <summary>Agent:Callers: who may call the agent, on the Unix socket and on TCP.</summary>
public sealed class CallerOptions
{
    /// <summary>The TCP listener's server certificate (PEM); required with Agent:TcpListen.</summary>
    public string? ServerCertificatePath { get; set; }

    public string? ServerKeyPath { get; set; }

    /// <summary>The CA (PEM) that TCP clients' certificates must chain to; required with Agent:TcpListen.</summary>
    public string? ClientCaPath { get; set; }

    /// <summary>When not empty, a TCP client's certificate subject must be one of these (e.g. "CN=controller").</summary>
    public List<string> AllowedSubjects { get; set; } = [];

    /// <summary>On the Unix socket: besides root and the agent's own user, members of this group may call.</summary>
    public string SocketGroup { get; set; } = "compute-agent";

    /// <summary>Optional: a file holding the one bearer token every call must carry.</summary>
    public string? TokenFile { get; set; }

    /// <summary>Optional: Keystone v3 (e.g. http://keystone:5000); calls must carry a token it validates.</summary>
    public string? KeystoneUrl { get; set; }

    /// <summary>The agent's own Keystone token (X-Auth-Token of the validation request), from a file.</summary>
    public string? KeystoneServiceTokenFile { get; set; }

    /// <summary>How long a token Keystone accepted is trusted without asking again (never past its expiry).</summary>
    public int KeystoneCacheSeconds { get; set; } = 300;

    /// <summary>The largest request message accepted; larger ones are refused with RESOURCE_EXHAUSTED.</summary>
    public int MaxRequestBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>The server certificate, its key and the client CA, each a file that exists; <paramref name="why"/> ends each message.</summary>
    public IEnumerable<string> ValidateCertificateFiles(string why)
    {
        foreach (var (key, path) in new[] { ("ServerCertificatePath", ServerCertificatePath), ("ServerKeyPath", ServerKeyPath), ("ClientCaPath", ClientCaPath) })
        {
            if (string.IsNullOrEmpty(path) || !File.Exists(path))
            {
                yield return $"Agent:Callers:{key} '{path}' must name a readable PEM file: {why}";
            }
        }
    }

    public IEnumerable<string> Validate(bool tcpListener)
    {
        if (tcpListener)
        {
            foreach (var problem in ValidateCertificateFiles("the TCP listener serves only mutual TLS"))
            {
                yield return problem;
            }
        }

        if (string.IsNullOrWhiteSpace(SocketGroup))
        {
            yield return "Agent:Callers:SocketGroup must name a group (default compute-agent)";
        }

        if (TokenFile is { Length: > 0 } token && !File.Exists(token))
        {
            yield return $"Agent:Callers:TokenFile '{token}' does not exist";
        }

        if (KeystoneUrl is { Length: > 0 } keystone)
        {
            if (!(Uri.TryCreate(keystone, UriKind.Absolute, out var url) && url.Scheme is "http" or "https"))
            {
                yield return $"Agent:Callers:KeystoneUrl '{keystone}' must be the http(s) URL of Keystone, e.g. http://keystone:5000";
            }

            if (string.IsNullOrEmpty(KeystoneServiceTokenFile) || !File.Exists(KeystoneServiceTokenFile))
            {
                yield return $"Agent:Callers:KeystoneServiceTokenFile '{KeystoneServiceTokenFile}' must name the file holding the agent's own Keystone token";
            }

            if (!string.IsNullOrEmpty(TokenFile))
            {
                yield return "Agent:Callers:TokenFile and Agent:Callers:KeystoneUrl exclude each other: choose one";
            }
        }

        if (KeystoneCacheSeconds is < 0 or > 86_400)
        {
            yield return $"Agent:Callers:KeystoneCacheSeconds {KeystoneCacheSeconds} must be between 0 and 86400";
        }

        if (MaxRequestBytes is < 1024 or > 256 * 1024 * 1024)
        {
            yield return $"Agent:Callers:MaxRequestBytes {MaxRequestBytes} must be between 1024 and 268435456";
        }
    }
}
