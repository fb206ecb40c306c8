using System.Xml;
using System.Xml.Linq;
using System.Xml.XPath;
using ComputeAgent.Instances.DomainXml;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>XPath assertions on a built domain; prefix "a" is the agent's metadata namespace.</summary>
public static class DomainXmlAssertions
{
    public static XmlNamespaceManager Namespaces { get; } = CreateNamespaces();

    public static XElement One(this XDocument document, string xpath)
    {
        var found = document.XPathSelectElements(xpath, Namespaces).ToList();
        Assert.True(found.Count == 1, $"expected exactly one {xpath}, found {found.Count} in\n{document}");
        return found[0];
    }

    public static IReadOnlyList<XElement> All(this XDocument document, string xpath) => document.XPathSelectElements(xpath, Namespaces).ToList();

    public static void None(this XDocument document, string xpath) =>
        Assert.True(!document.XPathSelectElements(xpath, Namespaces).Any(), $"expected no {xpath} in\n{document}");

    public static string Value(this XDocument document, string xpath) =>
        document.XPathEvaluate($"string({xpath})", Namespaces) as string ?? string.Empty;

    private static XmlNamespaceManager CreateNamespaces()
    {
        var manager = new XmlNamespaceManager(new NameTable());
        manager.AddNamespace("a", InstanceMetadata.Namespace);
        return manager;
    }
}
