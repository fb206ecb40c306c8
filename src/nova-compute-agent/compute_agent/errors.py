"""Agent answers (gRPC statuses) as the Nova exceptions the compute manager expects."""

from nova import exception

from .client import grpc


def console_unavailable(message):
    """Nova's libvirt driver's exception for a console nothing listens on (a guest not running).

    The compute manager expects it from get_serial_console and the API answers 400 with the message.
    """
    return exception.ConsoleTypeUnavailable(console_type='serial', message=message)


def from_rpc(error, instance_uuid, failure, socket_path, not_found=None, refused=None):
    """The Nova exception for a refused or failed RPC, carrying the agent's message.

    failure(message) builds the operation's own exception (InstancePowerOffFailure,
    InstanceDeployFailure, ...) for what has no better match; not_found(message)
    the one for NOT_FOUND where the missing thing is not the instance (the image of
    a spawn or rebuild); refused(message) the one for FAILED_PRECONDITION where Nova
    expects another than InstanceInvalidState (a console of a guest that is not running).
    """
    code = error.code()
    message = error.details() or str(code)
    if code == grpc.StatusCode.NOT_FOUND:
        if not_found is not None:
            return not_found(message)
        return exception.InstanceNotFound(instance_id=instance_uuid)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        if refused is not None:
            return refused(message)
        # A refused command changed nothing; the agent's message names the
        # states and the commands allowed now.
        return exception.InstanceInvalidState(message=message)
    if code == grpc.StatusCode.UNAVAILABLE:
        return exception.HypervisorUnavailable(
            message='compute-agent at %s is unavailable: %s '
                    '(check that the compute-agent service runs)' % (socket_path, message))
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return exception.Invalid(message=message)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return failure('compute-agent at %s does not implement this call (%s); install the '
                       'compute-agent that matches this driver' % (socket_path, message))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return failure('compute-agent did not finish in time: %s '
                       '(raise [compute_agent] task_timeout or call_timeout)' % message)
    return failure(message)
