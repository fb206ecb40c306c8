using ComputeAgent.Instances.Store;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// One instance inside the engine: its current record, the gate that serialises changes to it,
/// and its work queue, drained by one loop at a time so its operations run one at a time in arrival order.
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

    // The work queue exists only while there is work: an idle instance (most of them, most of the
    // time) holds no queue and no waiting loop, only these three fields.
    private readonly Lock queueGate = new();
    private Queue<Func<Task>>? queue;
    private bool closed;

    /// <summary>
    /// Queues <paramref name="work"/>; when nothing of this instance is running, starts
    /// <paramref name="drain"/> on the thread pool (as <see cref="Loop"/>), which takes the work
    /// with <see cref="TryTakeNext"/> until there is none. False once <see cref="Close"/> was called.
    /// </summary>
    public bool TryEnqueue(Func<Task> work, Func<InstanceSlot, Task> drain)
    {
        lock (queueGate)
        {
            if (closed)
            {
                return false;
            }

            var start = queue is null;
            (queue ??= new Queue<Func<Task>>(2)).Enqueue(work);
            if (start)
            {
                // The drain outlives the call that started it: it must not carry that call's
                // trace Activity and log scope (its request_id) into the work queued after it.
                using (ExecutionContext.SuppressFlow())
                {
                    Loop = Task.Run(() => drain(this), CancellationToken.None);
                }
            }

            return true;
        }
    }

    /// <summary>The next queued work, or null when there is none (then the drain ends, and the next work starts a new one).</summary>
    public Func<Task>? TryTakeNext()
    {
        lock (queueGate)
        {
            if (queue is { Count: > 0 })
            {
                return queue.Dequeue();
            }

            queue = null;
            return null;
        }
    }

    /// <summary>No more work is queued; what is queued already still runs.</summary>
    public void Close()
    {
        lock (queueGate)
        {
            closed = true;
        }
    }

    /// <summary>The running task's cancellation; delete cancels it at the task's next safe point.</summary>
    public CancellationTokenSource? Running { get; set; }

    /// <summary>What the running task has created so far (mirrors its journal entry).</summary>
    public Dictionary<string, string> Created { get; } = new(StringComparer.Ordinal);

    /// <summary>The running (or last) drain of the queue, for a stopping engine to wait for.</summary>
    public Task? Loop { get; private set; }
}
