using Grpc.Core;

namespace ComputeAgent.Host.Callers;

/// <summary>Why a call is refused before it reaches any service: the status and what the caller should do.</summary>
public sealed record Refusal(StatusCode Code, string Message)
{
    public static Refusal Unauthenticated(string message) => new(StatusCode.Unauthenticated, message);

    public static Refusal PermissionDenied(string message) => new(StatusCode.PermissionDenied, message);
}
