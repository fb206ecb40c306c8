using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>Every produced document passes libvirt's schema (virt-xml-validate) and virDomainDefineXML.</summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class DomainXmlLibvirtTests : IDisposable
{
    private readonly string scratch = Directory.CreateTempSubdirectory("domain-xml-").FullName;

    public void Dispose() => Directory.Delete(scratch, recursive: true);

    [Theory]
    [MemberData(nameof(DomainXmlCorpus.Names), MemberType = typeof(DomainXmlCorpus))]
    public async Task The_document_passes_virt_xml_validate(string name)
    {
        var xml = new DomainXmlBuilder(DomainXmlCorpus.HostFor(name)).Build(DomainXmlCorpus.Spec(name, Guid.NewGuid()));
        await AssertSchemaValid(xml);
    }

    [Theory]
    [MemberData(nameof(DomainXmlCorpus.Names), MemberType = typeof(DomainXmlCorpus))]
    public void The_document_is_accepted_by_define_xml_and_its_metadata_survives(string name)
    {
        var uuid = Guid.NewGuid();
        var spec = DomainXmlCorpus.Spec(name, uuid);
        var xml = new DomainXmlBuilder(DomainXmlCorpus.HostFor(name)).Build(spec);
        using var connection = LibvirtConnection.Open(DomainXmlLibvirtCollection.Uri);
        using var domain = connection.DefineXml(xml);
        try
        {
            Assert.Equal(uuid, domain.Uuid);
            Assert.Equal("instance-" + uuid, domain.Name);

            // What the engine will do after a restart: read its view back from libvirt alone.
            var described = domain.GetXmlDesc();
            Assert.True(InstanceMetadata.From(spec) == InstanceMetadata.Parse(described), described);
            var element = domain.GetMetadata(DomainMetadataType.Element, InstanceMetadata.Namespace);
            Assert.Equal(InstanceMetadata.From(spec), InstanceMetadata.Parse(element!));
        }
        finally
        {
            domain.Undefine();
        }
    }

    internal static async Task AssertSchemaValid(string xml, string? directory = null)
    {
        var file = Path.Combine(directory ?? Path.GetTempPath(), $"domain-{Guid.NewGuid():N}.xml");
        await File.WriteAllTextAsync(file, xml);
        try
        {
            var result = await ProcessRunner.RunAsync("virt-xml-validate", [file, "domain"], TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 0, $"virt-xml-validate failed: {result.StandardError}{result.StandardOutput}\n{xml}");
        }
        finally
        {
            File.Delete(file);
        }
    }
}
