using System.Globalization;
using System.Xml;
using System.Xml.Linq;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.DomainXml;

/// <summary>The flavor as recorded in the domain (what it was when the domain was defined).</summary>
public sealed record FlavorSummary(string Name, int Vcpus, int RamMiB, int RootGiB, int EphemeralGiB, int SwapGiB);

/// <summary>
/// The agent's own &lt;metadata&gt; element: who the instance is, so the agent can rebuild its view
/// from libvirt alone after losing its database, as Nova does with its nova:instance element.
/// </summary>
public sealed record InstanceMetadata(Guid Uuid, string Name, DateTimeOffset CreatedAt, FlavorSummary Flavor, string ImageId, InstanceOwner Owner)
{
    /// <summary>The namespace; bump the trailing version when the element changes incompatibly.</summary>
    public const string Namespace = "https://compute-agent.dev/xmlns/instance/1";

    /// <summary>The prefix written; readers match the namespace, never the prefix.</summary>
    public const string Prefix = "agent";

    public const string ElementName = "instance";

    private static readonly XNamespace Ns = Namespace;

    public static InstanceMetadata From(InstanceSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var f = spec.Flavor;
        return new InstanceMetadata(spec.Uuid, spec.Name, spec.CreatedAt, new FlavorSummary(f.Name, f.Vcpus, f.RamMiB, f.RootGiB, f.EphemeralGiB, f.SwapGiB), spec.Image.Id, spec.Owner);
    }

    /// <summary>Writes &lt;agent:instance&gt; (inside &lt;metadata&gt;, which the caller opens).</summary>
    internal void WriteTo(XmlWriter writer)
    {
        writer.WriteStartElement(Prefix, ElementName, Namespace);
        writer.WriteElementString(Prefix, "uuid", Namespace, Uuid.ToString());
        writer.WriteElementString(Prefix, "name", Namespace, Name);
        writer.WriteElementString(Prefix, "creationTime", Namespace, CreatedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture));
        writer.WriteStartElement(Prefix, "flavor", Namespace);
        writer.WriteAttributeString("name", Flavor.Name);
        writer.WriteElementString(Prefix, "vcpus", Namespace, Text(Flavor.Vcpus));
        writer.WriteElementString(Prefix, "memory", Namespace, Text(Flavor.RamMiB));
        writer.WriteElementString(Prefix, "disk", Namespace, Text(Flavor.RootGiB));
        writer.WriteElementString(Prefix, "ephemeral", Namespace, Text(Flavor.EphemeralGiB));
        writer.WriteElementString(Prefix, "swap", Namespace, Text(Flavor.SwapGiB));
        writer.WriteEndElement();
        writer.WriteStartElement(Prefix, "image", Namespace);
        writer.WriteAttributeString("uuid", ImageId);
        writer.WriteEndElement();
        writer.WriteStartElement(Prefix, "owner", Namespace);
        writer.WriteStartElement(Prefix, "project", Namespace);
        writer.WriteAttributeString("uuid", Owner.ProjectId);
        writer.WriteEndElement();
        writer.WriteStartElement(Prefix, "user", Namespace);
        writer.WriteAttributeString("uuid", Owner.UserId);
        writer.WriteEndElement();
        writer.WriteEndElement();
        writer.WriteEndElement();
    }

    /// <summary>
    /// Reads the element back from a whole domain XML (virDomainGetXMLDesc) or from the element
    /// alone (virDomainGetMetadata). Null when the domain has none (not the agent's);
    /// <see cref="InvalidDataException"/> when it has one the agent cannot read.
    /// </summary>
    public static InstanceMetadata? Parse(string xml)
    {
        ArgumentNullException.ThrowIfNull(xml);
        XDocument document;
        try
        {
            document = XDocument.Parse(xml);
        }
        catch (XmlException e)
        {
            throw new InvalidDataException("the domain XML is not well-formed", e);
        }

        // virDomainGetMetadata hands the element back with its namespace stripped: <instance> alone.
        var root = document.Root!;
        var element = root.Name == Ns + ElementName || root.Name == XName.Get(ElementName)
            ? root
            : root.Element("metadata")?.Element(Ns + ElementName);
        if (element is null)
        {
            return null;
        }

        var ns = element.Name.Namespace;
        var flavor = Required(element.Element(ns + "flavor"), "flavor");
        var owner = Required(element.Element(ns + "owner"), "owner");
        return new InstanceMetadata(
            Guid.TryParse(Value(element, ns, "uuid"), out var uuid) ? uuid : throw new InvalidDataException("agent metadata: uuid is not a UUID"),
            Value(element, ns, "name"),
            DateTimeOffset.TryParse(Value(element, ns, "creationTime"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var created)
                ? created
                : throw new InvalidDataException("agent metadata: creationTime is not a time"),
            new FlavorSummary(
                Attribute(flavor, "name"),
                Number(flavor, ns, "vcpus"),
                Number(flavor, ns, "memory"),
                Number(flavor, ns, "disk"),
                Number(flavor, ns, "ephemeral"),
                Number(flavor, ns, "swap")),
            Attribute(Required(element.Element(ns + "image"), "image"), "uuid"),
            new InstanceOwner(
                Attribute(Required(owner.Element(ns + "project"), "owner/project"), "uuid"),
                Attribute(Required(owner.Element(ns + "user"), "owner/user"), "uuid")));
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static XElement Required(XElement? element, string what) => element ?? throw new InvalidDataException($"agent metadata: <{what}> is missing");

    private static string Value(XElement parent, XNamespace ns, string name) => Required(parent.Element(ns + name), name).Value;

    private static string Attribute(XElement element, string name) =>
        element.Attribute(name)?.Value ?? throw new InvalidDataException($"agent metadata: <{element.Name.LocalName} {name}> is missing");

    private static int Number(XElement parent, XNamespace ns, string name) =>
        int.TryParse(Value(parent, ns, name), NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new InvalidDataException($"agent metadata: <{name}> is not a number");
}
