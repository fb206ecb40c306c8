using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

[CollectionDefinition(Name)]
public sealed class QemuCollection : ICollectionFixture<QemuHost>
{
    public const string Name = "systemd-qemu";
}
