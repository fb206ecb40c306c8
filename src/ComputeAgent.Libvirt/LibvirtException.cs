using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt;

/// <summary>
/// Every failed libvirt call surfaces as this one type, carrying libvirt's own error code,
/// the part of libvirt that raised it and its message.
/// </summary>
public sealed class LibvirtException : Exception
{
    public LibvirtException(string operation, LibvirtErrorCode code, LibvirtErrorDomain errorDomain, string libvirtMessage)
        : base($"{operation} failed: {libvirtMessage} (libvirt error {code}, from {errorDomain})")
    {
        Operation = operation;
        Code = code;
        ErrorDomain = errorDomain;
        LibvirtMessage = libvirtMessage;
    }

    public LibvirtException()
        : this("libvirt call", LibvirtErrorCode.InternalError, LibvirtErrorDomain.None, "unknown error")
    {
    }

    public LibvirtException(string message)
        : this("libvirt call", LibvirtErrorCode.InternalError, LibvirtErrorDomain.None, message)
    {
    }

    public LibvirtException(string message, Exception innerException)
        : base(message, innerException)
    {
        Operation = "libvirt call";
        LibvirtMessage = message;
    }

    /// <summary>The libvirt function that failed, e.g. virDomainSuspend.</summary>
    public string Operation { get; }

    public LibvirtErrorCode Code { get; }

    public LibvirtErrorDomain ErrorDomain { get; }

    /// <summary>libvirt's message as it gave it, without our prefix.</summary>
    public string LibvirtMessage { get; }

    /// <summary>True when the error means the connection to libvirtd is gone (not the call's fault).</summary>
    public bool IsConnectionLost => Code is LibvirtErrorCode.NoConnect or LibvirtErrorCode.InvalidConn
        || (Code is LibvirtErrorCode.InternalError or LibvirtErrorCode.SystemError or LibvirtErrorCode.Rpc
            && ErrorDomain is LibvirtErrorDomain.Rpc or LibvirtErrorDomain.Remote);

    /// <summary>
    /// Reads libvirt's thread-local last error (set by the call that just failed on this thread) and
    /// clears it. Must run on the same thread, right after the failed call, with no await between.
    /// </summary>
    internal static unsafe LibvirtException FromLastError(string operation)
    {
        var error = Interop.Libvirt.virGetLastError();
        if (error == null)
        {
            return new LibvirtException(operation, LibvirtErrorCode.InternalError, LibvirtErrorDomain.None, "libvirt reported failure without an error");
        }

        var message = Marshal.PtrToStringUTF8((nint)error->Message) ?? "no message";
        var exception = new LibvirtException(operation, (LibvirtErrorCode)error->Code, (LibvirtErrorDomain)error->Domain, message);
        Interop.Libvirt.virResetLastError();
        return exception;
    }
}
