using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ComputeAgent.Testing;

/// <summary>
/// A throw-away CA and the certificates it signs, written as PEM files the way an operator's
/// openssl commands would (packaging/operations.md: "Issuing the certificates"), for mutual TLS between agent, controller and callers.
/// </summary>
public sealed class TestCertificates
{
    private readonly string directory;

    private TestCertificates(string directory, string name)
    {
        this.directory = directory;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        Authority = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(30));
        CaPath = Path.Combine(directory, name.Replace(' ', '-') + ".pem");
        File.WriteAllText(CaPath, Authority.ExportCertificatePem());
    }

    public X509Certificate2 Authority { get; }

    /// <summary>The CA certificate (PEM).</summary>
    public string CaPath { get; }

    public static TestCertificates Create(string directory, string name = "test CA") => new(directory, name);

    /// <summary>A certificate for 127.0.0.1 / localhost that a TLS server presents.</summary>
    public PemPair IssueServer(string commonName) => Issue(commonName, server: true, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(10));

    /// <summary>A client certificate, valid now unless the dates say otherwise.</summary>
    public PemPair IssueClient(string commonName, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null) =>
        Issue(commonName, server: false, notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(10));

    /// <summary>A TLS client's settings: trusts only this CA's servers, presents <paramref name="client"/> when given.</summary>
    public SslClientAuthenticationOptions ClientOptions(PemPair? client)
    {
        var options = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(Authority);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return certificate is X509Certificate2 presented && chain.Build(presented);
            },
        };
        if (client is not null)
        {
            options.ClientCertificates = [client.Load()];
        }

        return options;
    }

    private PemPair Issue(string commonName, bool server, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        if (server)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName("localhost");
            names.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Authority, true, false));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var issued = request.Create(Authority, notBefore, notAfter, serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        var stem = Path.Combine(directory, $"{commonName}-{Convert.ToHexString(serial)[..8]}");
        File.WriteAllText(stem + ".pem", withKey.ExportCertificatePem());
        File.WriteAllText(stem + ".key", key.ExportPkcs8PrivateKeyPem());
        return new PemPair(stem + ".pem", stem + ".key");
    }
}

/// <summary>A certificate and its private key, as PEM files.</summary>
public sealed record PemPair(string CertificatePath, string KeyPath)
{
    public X509Certificate2 Load() => X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
}
