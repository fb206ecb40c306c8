using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace ComputeAgent.Host;

/// <summary>Every failure of a call leaves as one clear gRPC status whose message says what to do.</summary>
public sealed partial class ErrorMapping(ILogger<ErrorMapping> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ToStatus(ex) is { } status)
        {
            LogRefused(logger, context.Method, context.Peer, status.StatusCode.ToString(), status.Detail);
            throw new RpcException(status);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ToStatus(ex) is { } status)
        {
            LogRefused(logger, context.Method, context.Peer, status.StatusCode.ToString(), status.Detail);
            throw new RpcException(status);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ToStatus(ex) is { } status)
        {
            LogRefused(logger, context.Method, context.Peer, status.StatusCode.ToString(), status.Detail);
            throw new RpcException(status);
        }
    }

    internal static Status? ToStatus(Exception error) => error switch
    {
        RpcException => null,
        InstanceCommandRefusedException refused => new Status(StatusCode.FailedPrecondition, refused.Message),
        InstanceNotFoundException missing => new Status(StatusCode.NotFound, missing.Message),
        CommandNotSupportedException unsupported => new Status(StatusCode.Unimplemented, unsupported.Message),
        InvalidInstanceSpecException invalid => new Status(StatusCode.InvalidArgument, invalid.Message),
        FlavorDiskSmallerThanImageException tooSmall => new Status(StatusCode.InvalidArgument, tooSmall.Message),
        ArgumentException argument => new Status(StatusCode.InvalidArgument, argument.Message),
        ImageServiceException image => new Status(
            image.Kind switch
            {
                ImageServiceErrorKind.NotFound => StatusCode.NotFound,
                ImageServiceErrorKind.Unauthorized => StatusCode.Unauthenticated,
                ImageServiceErrorKind.Forbidden => StatusCode.PermissionDenied,
                ImageServiceErrorKind.Unavailable or ImageServiceErrorKind.Timeout => StatusCode.Unavailable,
                ImageServiceErrorKind.NotActive => StatusCode.FailedPrecondition,
                ImageServiceErrorKind.NoSpace => StatusCode.ResourceExhausted,
                _ => StatusCode.InvalidArgument,
            },
            image.Message),
        AgentNotReadyException notReady => new Status(StatusCode.Unavailable, notReady.Message),
        ObjectDisposedException => new Status(StatusCode.Unavailable, "the agent is stopping; retry against it once it is back"),
        _ => null,
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "{GrpcMethod} from {Peer}: {StatusCode} {StatusDetail}")]
    private static partial void LogRefused(ILogger logger, string grpcMethod, string peer, string statusCode, string statusDetail);
}

/// <summary>The agent has not finished starting (recovery, libvirt connection); gRPC UNAVAILABLE.</summary>
public sealed class AgentNotReadyException : Exception
{
    public AgentNotReadyException()
        : base("the agent is starting (recovering instances, connecting to libvirt); retry in a few seconds")
    {
    }

    public AgentNotReadyException(string message)
        : base(message)
    {
    }

    public AgentNotReadyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
