using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>The tests' Prometheus text parser reads the format and refuses what a scraper would.</summary>
public sealed class PrometheusTextTests
{
    [Fact]
    public void A_well_formed_exposition_is_read_with_its_labels_escapes_and_histograms()
    {
        var text = PrometheusText.Parse(
            "# HELP c_total Things.\n# TYPE c_total counter\nc_total{a=\"x\\\"y\",b=\"1\\n2\"} 3\nc_total{a=\"z\",b=\"\"} 4.5e2\n" +
            "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.75\nh_count 2\nup 1 1700000000000\n");
        Assert.Equal(3, text.Value("c_total", ("a", "x\"y"), ("b", "1\n2")));
        Assert.Equal(450, text.Value("c_total", ("a", "z"), ("b", "")));
        Assert.Equal(2, text.Value("h_count"));
        Assert.Equal("histogram", text.FamilyTypes["h"]);
        Assert.Equal("Things.", text.Help["c_total"]);
        Assert.Throws<KeyNotFoundException>(() => text.Value("c_total", ("a", "z")));
    }

    [Theory]
    [InlineData("up 1", "does not end with a line feed")]
    [InlineData("up 1\nup 2\n", "the same series twice")]
    [InlineData("a 1\nb 1\na{x=\"1\"} 1\n", "not together")]
    [InlineData("up 1\n# TYPE up gauge\n", "TYPE after")]
    [InlineData("up{a=\"1\",a=\"2\"} 1\n", "label a twice")]
    [InlineData("up{a=\"\\t\"} 1\n", "escapes only")]
    [InlineData("9up 1\n", "not a metric name")]
    [InlineData("up one\n", "not a sample value")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "cumulative")]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n", "_count 2")]
    public void What_a_scraper_would_refuse_is_a_format_error(string exposition, string says)
    {
        var error = Assert.Throws<FormatException>(() => PrometheusText.Parse(exposition));
        Assert.Contains(says, error.Message, StringComparison.Ordinal);
    }
}
