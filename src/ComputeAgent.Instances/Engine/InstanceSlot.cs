using System.Threading.Channels;
using ComputeAgent.Instances.Store;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// One instance inside the engine: its current record, the gate that serialises changes to it,
/// and its work queue, drained by one loop so its operations run one at a time in arrival order.
/// </summary>
internal sealed class InstanceSlot
{
    public InstanceSlot(Guid uuid, InstanceRecord? record)
    {
        Uuid = uuid;
        Record = record;
    }

    public Guid Uuid { get; }

    /// <summary>The committed record; changed only while holding <see cref="Gate"/>.</summary>
    public InstanceRecord? Record { get; set; }

    /// <summary>
    /// Counts the record's commits. A libvirt read taken when the version was V may only change the
    /// record while it is still V: a commit after the read (a task that just ended) is newer than it.
    /// </summary>
    public long Version => Volatile.Read(ref version);

    /// <summary>The record is in ERROR because power sync put it there (not a failed task): libvirt showing the guest running again heals it.</summary>
    public bool ErrorFromPowerSync { get; set; }

    private long version;

    /// <summary>Called with <see cref="Gate"/> held, once per commit.</summary>
    public void Committed() => Interlocked.Increment(ref version);

    /// <summary>Serialises commits of this instance (a SemaphoreSlim: commits are awaited).</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    public Channel<Func<Task>> Work { get; } = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>The running task's cancellation; delete cancels it at the task's next safe point.</summary>
    public CancellationTokenSource? Running { get; set; }

    /// <summary>What the running task has created so far (mirrors its journal entry).</summary>
    public Dictionary<string, string> Created { get; } = new(StringComparer.Ordinal);

    public Task? Loop { get; set; }
}
