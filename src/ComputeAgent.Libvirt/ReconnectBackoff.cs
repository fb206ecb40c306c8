namespace ComputeAgent.Libvirt;

/// <summary>
/// Exponential back-off with ±20 % jitter between reconnect attempts (libvirtd, the controller),
/// so that many agents that lost the same peer do not all retry at the same instant.
/// </summary>
public sealed class ReconnectBackoff
{
    private readonly TimeSpan min;
    private readonly TimeSpan max;
    private TimeSpan next;

    public ReconnectBackoff(TimeSpan min, TimeSpan max)
    {
        this.min = min;
        this.max = max;
        next = min;
    }

    /// <summary>The wait before the next attempt (before jitter), as logged.</summary>
    public TimeSpan Current => next;

    /// <summary>The jittered wait for this attempt; the one after is twice as long, up to the maximum.</summary>
    public TimeSpan Next()
    {
        var delay = TimeSpan.FromTicks((long)(next.Ticks * (0.8 + (0.4 * Random.Shared.NextDouble()))));
        next = TimeSpan.FromTicks(Math.Min(next.Ticks * 2, max.Ticks));
        return delay;
    }

    /// <summary>After a success: the next failure waits the minimum again.</summary>
    public void Reset() => next = min;
}
