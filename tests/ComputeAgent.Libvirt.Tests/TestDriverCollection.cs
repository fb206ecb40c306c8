using Xunit;

namespace ComputeAgent.Libvirt.Tests;

/// <summary>
/// test:///default is one shared in-process hypervisor: every connection of this process sees the
/// same domains and events, so the classes that use it run one after another.
/// </summary>
[CollectionDefinition(Name)]
public sealed class TestDriverCollection
{
    public const string Name = "libvirt test:///default driver";
    public const string Uri = "test:///default";

    public static string DomainXml(string name, Guid uuid, int memoryMiB = 64) =>
        $"<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>{memoryMiB}</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>";
}
