using ComputeAgent.Libvirt;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

public sealed class ReconnectBackoffTests
{
    [Fact]
    public void Each_wait_doubles_up_to_the_maximum_within_twenty_percent_jitter_and_a_reset_starts_again()
    {
        var backoff = new ReconnectBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8));
        double[] expected = [1, 2, 4, 8, 8, 8];
        foreach (var seconds in expected)
        {
            Assert.Equal(seconds, backoff.Current.TotalSeconds);
            var wait = backoff.Next().TotalSeconds;
            Assert.InRange(wait, seconds * 0.8, seconds * 1.2);
        }

        backoff.Reset();
        Assert.Equal(1, backoff.Current.TotalSeconds);
    }

    [Fact]
    public void The_jitter_spreads_the_waits_of_agents_that_lost_the_same_peer()
    {
        var waits = Enumerable.Range(0, 100).Select(_ => new ReconnectBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)).Next()).Distinct().Count();
        Assert.True(waits > 50, $"{waits} distinct waits of 100");
    }
}
