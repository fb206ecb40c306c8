namespace ComputeAgent.Instances.Images;

/// <summary>
/// The body of <c>/v2/images/{id}/file</c>, read-only and forward-only. Every read must deliver
/// within the stall timeout, so a Glance or network that stops sending fails the download instead
/// of hanging a spawn; the response is released with the stream.
/// </summary>
internal sealed class ImageDataStream : Stream
{
    private readonly string imageId;
    private readonly HttpResponseMessage response;
    private readonly Stream content;
    private readonly TimeSpan stallTimeout;
    private readonly TimeProvider time;
    private long received;

    public ImageDataStream(string imageId, HttpResponseMessage response, Stream content, TimeSpan stallTimeout, TimeProvider time)
    {
        this.time = time;
        this.imageId = imageId;
        this.response = response;
        this.content = content;
        this.stallTimeout = stallTimeout;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    /// <summary>Bytes read so far.</summary>
    public override long Position
    {
        get => received;
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        using var timer = new CancellationTokenSource(stallTimeout, time);
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            var read = await content.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
            received += read;
            return read;
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.Timeout,
                imageId,
                $"the download stalled: no data for {stallTimeout.TotalSeconds:0.###} s after {received} bytes; the image service or the network is stuck, retry later",
                e);
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.Unavailable,
                imageId,
                $"the download broke off after {received} bytes ({e.Message}); retry when the image service is healthy",
                e);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    // Only asynchronous reads can be bounded by the stall timeout.
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read image data with ReadAsync");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            content.Dispose();
            response.Dispose();
        }

        base.Dispose(disposing);
    }
}
