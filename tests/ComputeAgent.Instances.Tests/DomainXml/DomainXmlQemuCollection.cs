using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>Built domains booted on the host's libvirtd + QEMU (TCG): one at a time, the machine has 2 cores.</summary>
[CollectionDefinition(Name)]
public sealed class DomainXmlQemuCollection : ICollectionFixture<QemuHost>
{
    public const string Name = "domain XML booted on real libvirtd + QEMU";
}
