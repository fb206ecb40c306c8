using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>
/// The domain XML tests that define domains on libvirt's test:///default, one shared in-process
/// hypervisor: they run one after another, with unique names and UUIDs, and undefine what they define.
/// </summary>
[CollectionDefinition(Name)]
public sealed class DomainXmlLibvirtCollection
{
    public const string Name = "domain XML on libvirt test:///default";
    public const string Uri = "test:///default";
}
