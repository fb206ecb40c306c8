namespace ComputeAgent.Testing;

/// <summary>A clock the test sets (timers still run on the system's). Safe to read from other threads while the test moves it.</summary>
public sealed class ManualTime(DateTimeOffset now) : TimeProvider
{
    private long ticks = now.UtcTicks;

    public DateTimeOffset Now
    {
        get => new(Interlocked.Read(ref ticks), TimeSpan.Zero);
        set => Interlocked.Exchange(ref ticks, value.UtcTicks);
    }

    public override DateTimeOffset GetUtcNow() => Now;
}
