using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// README stays a page a newcomer reads in minutes, its links lead somewhere, the documents it
/// links are the ones whose commands are run (<see cref="ReadmeGrpcurlTests"/>), the operations
/// guide's certificate recipe works as written, and the API reference, the proto's comments,
/// covers every message, field, rpc and enum value.
/// </summary>
public sealed partial class DocumentationTests
{
    [Fact]
    public void Readme_is_at_most_250_lines()
    {
        var lines = File.ReadAllLines(Documents.PathOf("README.md")).Length;
        Assert.True(lines <= 250, $"README.md has {lines} lines; move detail to the documents it links (src/README.md, tests/README.md, packaging/operations.md)");
    }

    [Theory]
    [InlineData("README.md")]
    [InlineData("src/README.md")]
    [InlineData("tests/README.md")]
    [InlineData("packaging/operations.md")]
    public void Every_relative_link_and_repository_path_a_document_names_exists(string document)
    {
        var text = File.ReadAllText(Documents.PathOf(document));
        var missing = new List<string>();

        // [text](target): relative to the document, as a Markdown viewer resolves it.
        foreach (Match link in MarkdownLink().Matches(text))
        {
            var target = link.Groups["target"].Value.Split('#')[0];
            if (target.Length == 0 || target.Contains("://", StringComparison.Ordinal) || target.StartsWith("mailto:", StringComparison.Ordinal))
            {
                continue;
            }

            var path = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Documents.PathOf(document))!, target));
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                missing.Add($"link {target}");
            }
        }

        // `src/...`, `tests/...`, `./main.sh`: the repository's own paths, from its root.
        foreach (Match code in RepositoryPath().Matches(text))
        {
            var path = code.Groups["path"].Value.TrimEnd('/');
            if (path.StartsWith("packaging/build", StringComparison.Ordinal))
            {
                continue; // build-deb.sh's output, not in a fresh clone
            }

            var full = Path.Combine(RepositoryPaths.Root, path.StartsWith("./", StringComparison.Ordinal) ? path[2..] : path);
            if (!File.Exists(full) && !Directory.Exists(full))
            {
                missing.Add($"path {path}");
            }
        }

        Assert.True(missing.Count == 0, $"{document} names what the repository does not have:\n  " + string.Join("\n  ", missing.Distinct()));
    }

    [Fact]
    public void Every_markdown_document_readme_links_has_its_commands_run()
    {
        var linked = MarkdownLink().Matches(File.ReadAllText(Documents.PathOf("README.md")))
            .Select(m => m.Groups["target"].Value.Split('#')[0])
            .Where(t => t.EndsWith(".md", StringComparison.Ordinal) && !t.Contains("://", StringComparison.Ordinal))
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToList();

        // The Nova driver's README documents a Python package with its own tests.
        var run = Documents.Markdown.Append("src/nova-compute-agent/README.md").ToHashSet(StringComparer.Ordinal);
        Assert.Equal(["packaging/operations.md", "src/README.md", "src/nova-compute-agent/README.md", "tests/README.md"], linked);
        Assert.All(linked, l => Assert.Contains(l, run));
    }

    [Fact]
    public void Readme_links_every_man_page_and_the_package_installs_the_shipped_ones()
    {
        var readme = File.ReadAllText(Documents.PathOf("README.md"));
        var build = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "packaging", "build-deb.sh"));
        foreach (var page in Documents.ManPages)
        {
            Assert.Contains($"]({page})", readme, StringComparison.Ordinal);
        }

        // The package ships the agent and compute-agent-cli, so every man page goes in.
        foreach (var page in Documents.ManPages.Append("packaging/operations.md"))
        {
            Assert.Contains($"\"$here/{Path.GetFileName(page)}\"", build, StringComparison.Ordinal);
        }

        Assert.Contains("usr/share/man/man1/compute-agent-cli.1.gz", build, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_operations_guides_certificate_recipe_runs_as_written_and_makes_a_host_certificate_for_both_ends()
    {
        var guide = File.ReadAllLines(Documents.PathOf("packaging/operations.md"));
        var heading = Array.FindIndex(guide, l => l.StartsWith("## Issuing the certificates", StringComparison.Ordinal));
        Assert.True(heading > 0, "packaging/operations.md has no section \"Issuing the certificates\"");
        var open = Array.FindIndex(guide, heading, l => l == "```sh");
        var close = Array.FindIndex(guide, open + 1, l => l == "```");
        var shownOutput = guide[(close + 2)..Array.FindIndex(guide, close + 2, l => l == "```")];
        Assert.Equal("```", guide[close + 1]);

        var scratch = RepositoryPaths.CreateScratch("certificate-recipe");
        try
        {
            var script = $"cd '{scratch}'\n" + string.Join('\n', guide[(open + 1)..close]) + "\n";
            var run = await ProcessRunner.RunAsync("bash", ["-euo", "pipefail", "-c", script], TimeSpan.FromMinutes(1));
            Assert.True(run.ExitCode == 0, $"the recipe failed: {run.StandardError}");
            Assert.Equal(shownOutput, run.StandardOutput.TrimEnd('\n').Split('\n'));

            // One host certificate is the link's client certificate and the TCP listener's server certificate.
            using var ca = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(scratch, "ca.pem")));
            using var agent = X509Certificate2.CreateFromPemFile(Path.Combine(scratch, "agent.pem"), Path.Combine(scratch, "agent.key"));
            var usages = agent.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value);
            Assert.Equal(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], usages.Order(StringComparer.Ordinal));
            Assert.True(agent.MatchesHostname("host-1.example"));
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            Assert.True(chain.Build(agent), string.Join("; ", chain.ChainStatus.Select(c => c.StatusInformation)));
        }
        finally
        {
            RepositoryPaths.DeleteScratch(scratch);
        }
    }

    [Theory]
    [InlineData("proto/computeagent/v1/compute_agent.proto")]
    [InlineData("proto/computeagent/v1/controller.proto")]
    public void Every_message_field_rpc_and_enum_value_of_the_proto_has_a_comment(string proto)
    {
        var undocumented = ProtoDeclarations.Undocumented(File.ReadAllLines(Path.Combine(RepositoryPaths.Root, proto)));
        Assert.True(undocumented.Count == 0, $"{proto}: these have no comment (a // line above or at the end of the line):\n  " + string.Join("\n  ", undocumented));
    }

    [Fact]
    public void The_proto_check_finds_each_kind_of_undocumented_declaration()
    {
        string[] proto =
        [
            "syntax = \"proto3\";",
            "// A service.",
            "service S {",
            "  rpc Bare(A) returns (A);",
            "  // Documented.",
            "  rpc Told(A) returns (A);",
            "}",
            "message A {",
            "  string bare = 1;",
            "  int32 told = 2; // units",
            "  map<string, string> labels = 3;",
            "  oneof choice {",
            "    // Documented.",
            "    string one = 4;",
            "  }",
            "  // Documented.",
            "  message Inner {",
            "    repeated A items = 1;",
            "  }",
            "}",
            "// Documented.",
            "enum E {",
            "  // Documented.",
            "  E_UNSPECIFIED = 0;",
            "  E_BARE = 1;",
            "}",
        ];

        Assert.Equal(
            ["rpc Bare (line 4)", "message A (line 8)", "field A.bare (line 9)", "field A.labels (line 11)", "field A.Inner.items (line 18)", "enum value E.E_BARE (line 25)"],
            ProtoDeclarations.Undocumented(proto));
    }

    [GeneratedRegex(@"\]\((?<target>[^)\s]+)\)")]
    private static partial Regex MarkdownLink();

    [GeneratedRegex(@"`(?<path>(?:\./)?(?:src|tests|packaging|proto|systemd|native)/[A-Za-z0-9_./-]+|\./main\.sh|\./test\.sh)`")]
    private static partial Regex RepositoryPath();
}
