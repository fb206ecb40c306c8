using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// The one writer of a state database. Changes from every instance queue up; the writer takes
/// whatever is queued (up to the batch size, never waiting for more) and commits it in one
/// transaction, then completes each caller's task with its event sequence number. One transaction
/// per batch is what makes thousands of changes a second cheap; no waiting keeps a lone change fast.
/// </summary>
internal sealed class CommitWriter : IAsyncDisposable
{
    // Enough for every instance of a host to have a change queued; beyond it callers wait (back-pressure).
    private const int QueueCapacity = 16_384;

    private readonly Channel<PendingCommit> queue = Channel.CreateBounded<PendingCommit>(
        new BoundedChannelOptions(QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    private readonly SqliteConnection connection;
    private readonly CommitStatements statements;
    private readonly TimeProvider time;
    private readonly int maxBatchSize;
    private readonly Task loop;
    private long batchesCommitted;

    public CommitWriter(SqliteConnection connection, TimeProvider time, int maxBatchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, 1);
        this.connection = connection;
        this.time = time;
        this.maxBatchSize = maxBatchSize;
        statements = new CommitStatements(connection);
        loop = Task.Run(RunAsync);
    }

    /// <summary>Transactions committed so far (tests check that concurrent changes share them).</summary>
    public long BatchesCommitted => Interlocked.Read(ref batchesCommitted);

    /// <summary>
    /// Queues a change. Cancelling before the writer reaches it drops it (the task is cancelled,
    /// nothing written); once the writer has taken it, it commits and the task says so.
    /// </summary>
    public Task<long> CommitAsync(PreparedChange change, CancellationToken cancellationToken)
    {
        var pending = new PendingCommit(change, cancellationToken);
        return queue.Writer.TryWrite(pending) ? pending.Task : EnqueueSlowlyAsync(pending, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        // Whatever was queued before disposal still commits.
        queue.Writer.TryComplete();
        await loop.ConfigureAwait(false);
        statements.Dispose();
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    private async Task<long> EnqueueSlowlyAsync(PendingCommit pending, CancellationToken cancellationToken)
    {
        try
        {
            await queue.Writer.WriteAsync(pending, cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException e)
        {
            throw new ObjectDisposedException("the instance store is closed", e);
        }

        return await pending.Task.ConfigureAwait(false);
    }

    private async Task RunAsync()
    {
        var batch = new List<PendingCommit>(maxBatchSize);
        while (await queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < maxBatchSize && queue.Reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }

            await CommitBatchAsync(batch).ConfigureAwait(false);
            batch.Clear();
        }
    }

    private async Task CommitBatchAsync(List<PendingCommit> batch)
    {
        try
        {
            await CommitInOneTransactionAsync(batch).ConfigureAwait(false);
        }
        catch (Exception) when (batch.Count > 1)
        {
            // One change the database refuses must not fail the others queued with it: retry each alone.
            foreach (var pending in batch)
            {
                await CommitBatchAsync([pending]).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            batch[0].Fail(e);
        }
    }

    private async Task CommitInOneTransactionAsync(List<PendingCommit> batch)
    {
        var now = StoreText.Of(time.GetUtcNow());
        var outcomes = new Outcome[batch.Count];
        var transaction = (SqliteTransaction)await connection.BeginTransactionAsync().ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            statements.Enlist(transaction);
            for (var i = 0; i < batch.Count; i++)
            {
                outcomes[i] = batch[i].CancellationToken.IsCancellationRequested
                    ? Outcome.Cancelled
                    : await ApplyAsync(batch[i].Change, now).ConfigureAwait(false);
            }

            await transaction.CommitAsync().ConfigureAwait(false);
        }

        Interlocked.Increment(ref batchesCommitted);
        // Only now is every change durable: callers learn their outcome after the commit, never before.
        for (var i = 0; i < batch.Count; i++)
        {
            batch[i].Complete(outcomes[i]);
        }
    }

    private async Task<Outcome> ApplyAsync(PreparedChange change, string now)
    {
        var old = await statements.ReadStatesAsync(change).ConfigureAwait(false);
        if (old is null)
        {
            if (change.SpecJson is null)
            {
                // Detected before any write of this change, so the rest of the batch is unaffected.
                return Outcome.Failed(new InvalidOperationException(
                    $"instance {change.Uuid} has no record; the change that creates an instance must carry its spec"));
            }

            await statements.InsertInstanceAsync(change, now).ConfigureAwait(false);
        }
        else
        {
            await statements.UpdateInstanceAsync(change, now).ConfigureAwait(false);
        }

        switch (change.Journal)
        {
            case JournalAction.Set:
                await statements.SetJournalAsync(change, now).ConfigureAwait(false);
                break;
            case JournalAction.Clear:
                await statements.ClearJournalAsync(change).ConfigureAwait(false);
                break;
            case JournalAction.Keep when old is not null && old.TaskState != change.TaskState && change.HasTask:
                // The journal's step is the task_state the task has reached.
                await statements.StepJournalAsync(change).ConfigureAwait(false);
                break;
        }

        if (change.Fault is { } fault)
        {
            await statements.InsertFaultAsync(change, fault, now).ConfigureAwait(false);
        }

        return old is null || old.Differ(change)
            ? Outcome.Committed(await statements.AppendEventAsync(change, old, now).ConfigureAwait(false))
            : Outcome.Committed(0);
    }

    /// <summary>What became of one queued change.</summary>
    private readonly record struct Outcome(long Seq, Exception? Error, bool WasCancelled)
    {
        public static Outcome Cancelled => new(0, null, true);

        public static Outcome Committed(long seq) => new(seq, null, false);

        public static Outcome Failed(Exception error) => new(0, error, false);
    }

    private sealed class PendingCommit(PreparedChange change, CancellationToken cancellationToken)
    {
        // Callers' continuations must not run on (and stall) the writer.
        private readonly TaskCompletionSource<long> completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public PreparedChange Change { get; } = change;

        public CancellationToken CancellationToken { get; } = cancellationToken;

        public Task<long> Task => completion.Task;

        public void Complete(Outcome outcome)
        {
            if (outcome.WasCancelled)
            {
                completion.TrySetCanceled(CancellationToken);
            }
            else if (outcome.Error is { } error)
            {
                completion.TrySetException(error);
            }
            else
            {
                completion.TrySetResult(outcome.Seq);
            }
        }

        public void Fail(Exception error) => completion.TrySetException(error);
    }
}
