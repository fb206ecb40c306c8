"""The agent's gRPC API over its Unix socket, usable from eventlet's nova-compute.

nova-compute runs under eventlet's monkey patching, and grpcio does not mix with
it: grpc's C core blocks the OS thread it is called on (the one eventlet's hub
runs on), and its Python layer starts helper threads with the threading module
it imported. So grpc is imported with the original (unpatched) threading and
time modules, and every call runs in a real OS thread (eventlet.tpool), leaving
the hub free while a call or a task waits.
"""

import importlib
import sys
import uuid

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_NATIVE_MODULES = ('threading', 'time', 'queue')


def _eventlet_patched():
    try:
        from eventlet import patcher
    except ImportError:
        return False
    return patcher.is_monkey_patched('thread')


def _import_grpc():
    """Imports grpc and the stubs; under eventlet with native threading underneath."""
    if 'grpc' in sys.modules or not _eventlet_patched():
        import grpc
        from .api import compute_agent_pb2, compute_agent_pb2_grpc
        return grpc, compute_agent_pb2, compute_agent_pb2_grpc
    from eventlet import patcher
    saved = {name: sys.modules.get(name) for name in _NATIVE_MODULES}
    # All originals first: patcher.original() puts the patched modules back when it returns.
    originals = {name: patcher.original(name) for name in _NATIVE_MODULES}
    try:
        sys.modules.update(originals)
        import grpc
        from .api import compute_agent_pb2, compute_agent_pb2_grpc
        import grpc._channel
        if grpc._channel.threading is not originals['threading']:
            LOG.warning('grpc was imported with eventlet\'s green threading: '
                        'its calls may block nova-compute')
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return grpc, compute_agent_pb2, compute_agent_pb2_grpc


grpc, pb2, pb2_grpc = _import_grpc()


def native(fn, *args, **kwargs):
    """Runs fn in a real OS thread when eventlet patched threads (grpc blocks its thread)."""
    if _eventlet_patched():
        from eventlet import tpool
        return tpool.execute(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def native_module(name):
    """The standard module as it was before eventlet's monkey patching (the module itself when unpatched).

    What it blocks on blocks a real OS thread, not eventlet's hub: for the threads grpc runs on.
    """
    if _eventlet_patched():
        from eventlet import patcher
        return patcher.original(name)
    return importlib.import_module(name)


def native_thread(target, name):
    """Starts target in a real OS thread: what blocks on grpc must not run on eventlet's hub."""
    thread = native_module('threading').Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def native_queue():
    """A queue.Queue whose get() blocks a real OS thread (not a greenthread)."""
    return native_module('queue').Queue()


def green_thread(fn, *args):
    """Runs fn in a greenthread under eventlet (it may use green sockets); else an OS thread."""
    if _eventlet_patched():
        import eventlet
        eventlet.spawn_n(fn, *args)
    else:
        import threading
        threading.Thread(target=fn, args=args, daemon=True).start()


class TaskFailed(Exception):
    """The agent accepted a command but its task ended without reaching its goal."""

    def __init__(self, instance, message):
        super().__init__(message)
        self.instance = instance


class AgentClient(object):
    """One channel to the agent; thread-safe (grpc channels are)."""

    def __init__(self, socket_path, call_timeout, task_timeout):
        self.socket_path = socket_path
        self.target = 'unix:' + socket_path
        self.call_timeout = call_timeout
        self.task_timeout = task_timeout
        # Reconnect within seconds after the agent restarts (grpc's default backoff grows to 120 s).
        self._channel = grpc.insecure_channel(self.target, options=[
            ('grpc.initial_reconnect_backoff_ms', 250),
            ('grpc.min_reconnect_backoff_ms', 250),
            ('grpc.max_reconnect_backoff_ms', 2000),
        ])
        self.stub = pb2_grpc.ComputeAgentStub(self._channel)

    def close(self):
        self._channel.close()

    def call(self, method, request, timeout=None):
        """A unary RPC in a native thread; raises grpc.RpcError as the agent answered."""
        rpc = getattr(self.stub, method)
        return native(rpc, request, timeout=timeout or self.call_timeout)

    @staticmethod
    def request_id():
        """A fresh idempotency key for one driver call (kept across its retries)."""
        return str(uuid.uuid4())

    def run_task(self, method, request, goal_vm_states, after_accept=None):
        """Calls a mutating RPC, then WaitInstance until its task ends.

        Returns the instance as the task left it. Raises TaskFailed when the
        task recorded a fault or ended outside goal_vm_states (None: the
        vm_state it had when accepted), i.e. the agent rolled back or put the
        instance in ERROR; grpc.RpcError when the command was refused or the
        agent was unreachable. after_accept(instance) runs between the two.
        """
        reply = self.call(method, request)
        accepted = reply.instance
        if goal_vm_states is None:
            goal_vm_states = (accepted.vm_state,)
        if after_accept is not None:
            after_accept(accepted)
        LOG.debug('compute-agent accepted %s for %s (vm_state %s, task_state %s)',
                  method, accepted.uuid,
                  pb2.VmState.Name(accepted.vm_state),
                  pb2.TaskState.Name(accepted.task_state))
        done = self.wait(accepted.uuid)
        fault = done.fault if done.HasField('fault') else None
        new_fault = (fault is not None and
                     _not_before(fault.created_at, accepted.updated_at))
        if new_fault or done.vm_state not in goal_vm_states:
            message = (fault.message if fault is not None and fault.message
                       else '%s ended with vm_state %s' % (
                           method, pb2.VmState.Name(done.vm_state)))
            raise TaskFailed(done, message)
        return done

    def wait(self, instance_uuid, vm_state=0):
        return self.call(
            'WaitInstance',
            pb2.WaitInstanceRequest(instance_uuid=instance_uuid, vm_state=vm_state),
            timeout=self.task_timeout)


def _not_before(a, b):
    return (a.seconds, a.nanos) >= (b.seconds, b.nanos)
