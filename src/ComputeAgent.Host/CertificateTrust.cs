using System.Security.Cryptography.X509Certificates;

namespace ComputeAgent.Host;

/// <summary>
/// A certificate checked against one CA of our own, not the system's store: the controller's
/// server certificate (agent dialing out) and a TCP caller's client certificate (agent serving).
/// </summary>
public sealed class CertificateTrust(X509Certificate2Collection authorities)
{
    public static CertificateTrust FromPemFile(string caPath)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(caPath);
        return authorities.Count == 0
            ? throw new InvalidOperationException($"{caPath} holds no PEM certificate; it must hold the CA certificate")
            : new CertificateTrust(authorities);
    }

    /// <summary>Null when the certificate chains to the CA and is within its validity; else why not, in words.</summary>
    public string? Problem(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = DateTime.Now;
        if (chain.Build(certificate))
        {
            return null;
        }

        var reasons = chain.ChainStatus.Select(s => s.Status).Distinct().Select(s => s switch
        {
            X509ChainStatusFlags.NotTimeValid => $"it is outside its validity ({certificate.NotBefore:u} to {certificate.NotAfter:u})",
            X509ChainStatusFlags.UntrustedRoot or X509ChainStatusFlags.PartialChain => "it is not signed by the configured CA",
            _ => s.ToString(),
        });
        return string.Join("; ", reasons);
    }
}
