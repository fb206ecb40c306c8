"""The agent's WatchInstances stream as Nova lifecycle events, emitted at once.

A real OS thread follows the stream (grpc blocks its thread) and resumes after
its last sequence number when the agent comes back. Under eventlet the events
cross into a greenthread through a queue and a pipe (as Nova's libvirt driver
hands over libvirt's events), because Nova's handlers must run on the hub.
Unlike the libvirt driver, a STOPPED event is not held back.
"""

import os

from oslo_log import log as logging

from nova.virt import event as virtevent

from .client import grpc, pb2, _eventlet_patched, green_thread, native_module, native_queue, native_thread

LOG = logging.getLogger(__name__)


def lifecycle_transition(instance_event):
    """The LifecycleEvent transition for a power-state change, or None for no change."""
    old, new = instance_event.old_power_state, instance_event.power_state
    if old == new:
        return None
    if new == pb2.POWER_STATE_RUNNING:
        return (virtevent.EVENT_LIFECYCLE_RESUMED if old == pb2.POWER_STATE_PAUSED
                else virtevent.EVENT_LIFECYCLE_STARTED)
    if new in (pb2.POWER_STATE_SHUTDOWN, pb2.POWER_STATE_CRASHED):
        return virtevent.EVENT_LIFECYCLE_STOPPED
    if new == pb2.POWER_STATE_PAUSED:
        return virtevent.EVENT_LIFECYCLE_PAUSED
    if new == pb2.POWER_STATE_SUSPENDED:
        return virtevent.EVENT_LIFECYCLE_SUSPENDED
    # NOSTATE: the domain is gone (deleted); Nova learns that from the delete itself.
    return None


def _native_sleep(seconds):
    native_module('time').sleep(seconds)


class InstanceEventWatch(object):
    """Follows WatchInstances and hands Nova a LifecycleEvent per power-state change."""

    def __init__(self, client, emit, reconnect_interval):
        self._client = client
        self._emit = emit
        self._reconnect_interval = reconnect_interval
        self._last_sequence = 0
        self._stopping = False
        self._call = None
        self._thread = None
        self._queue = None
        self._notify_send = None
        self._notify_recv = None

    @property
    def last_sequence(self):
        return self._last_sequence

    def start(self):
        if _eventlet_patched():
            from eventlet import greenio
            self._queue = native_queue()
            rpipe, wpipe = os.pipe()
            self._notify_send = greenio.GreenPipe(wpipe, 'wb', 0)
            self._notify_recv = greenio.GreenPipe(rpipe, 'rb', 0)
            green_thread(self._dispatch)
        self._thread = native_thread(self._follow, 'compute-agent-events')

    def stop(self):
        self._stopping = True
        call = self._call
        if call is not None:
            call.cancel()
        if self._notify_send is not None:
            self._notify_send.write(b' ')  # wakes the greenthread, which then ends
            self._notify_send.flush()

    # -- the native thread ---------------------------------------------------

    def _follow(self):
        first = True
        while not self._stopping:
            try:
                # The first connection asks for a snapshot to learn the current
                # sequence number; later ones resume after the last one seen.
                request = pb2.WatchInstancesRequest(
                    after_sequence=self._last_sequence, snapshot=first and self._last_sequence == 0)
                self._call = self._client.stub.WatchInstances(request)
                if not first:
                    self._log(logging.INFO, 'compute-agent event stream reconnected after '
                              'sequence %d', self._last_sequence)
                first = False
                for instance_event in self._call:
                    if instance_event.sequence > self._last_sequence:
                        self._last_sequence = instance_event.sequence
                    self._handle(instance_event)
            except grpc.RpcError as e:
                if self._stopping or e.code() == grpc.StatusCode.CANCELLED:
                    break
                self._log(logging.WARNING, 'compute-agent event stream at %s lost (%s: %s); '
                          'reconnecting in %.1f s from sequence %d', self._client.socket_path,
                          e.code().name, e.details(), self._reconnect_interval,
                          self._last_sequence)
            except Exception as e:
                self._log(logging.ERROR, 'compute-agent event stream failed (%r); '
                          'reconnecting', e)
            else:
                if self._stopping:
                    break
            _native_sleep(self._reconnect_interval)

    def _handle(self, instance_event):
        transition = lifecycle_transition(instance_event)
        if transition is None:
            return
        self._hand_over(virtevent.LifecycleEvent(instance_event.instance_uuid, transition))

    def _log(self, level, message, *args):
        # Logging takes eventlet's green locks: a native thread must not, so
        # the greenthread logs for it.
        self._hand_over((level, message, args))

    def _hand_over(self, item):
        if self._queue is None:
            self._deliver(item)
            return
        self._queue.put(item)
        self._notify_send.write(b' ')
        self._notify_send.flush()

    # -- the greenthread -----------------------------------------------------

    def _dispatch(self):
        while not self._stopping:
            self._notify_recv.read(1)
            while not self._queue.empty():
                self._deliver(self._queue.get())

    def _deliver(self, item):
        if isinstance(item, tuple):
            level, message, args = item
            LOG.log(level, message, *args)
            return
        try:
            self._emit(item)
        except Exception:
            LOG.exception('handling %s failed', item)
