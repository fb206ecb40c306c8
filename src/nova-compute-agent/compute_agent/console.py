"""Nova's serial console on compute-agent: a TCP port per instance, a connection an AttachConsole.

get_serial_console hands Nova host:port; nova-serialproxy checks the port again
(validate_console_port calls get_serial_console a second time and compares), so an
instance keeps its port while its listener lives: from the first call until the
instance is destroyed or nova-compute stops. Ports come from
[serial_console] port_range through Nova's own allocator (nova.console.serial), as
the libvirt driver's do, and the listener binds [serial_console] proxyclient_address.

Each connection is bridged to one AttachConsole stream. Under eventlet the socket
is served by greenthreads, and the stream by a real OS thread (grpc blocks its
thread): the guest's bytes reach the connection's greenthread through a pipe (whose
buffer also holds the stream back while the client reads slowly), keystrokes go the
other way through a native queue that grpc's own request thread drains.
"""

import errno
import os
import socket
import threading
import time

from oslo_log import log as logging

import nova.conf
from nova.console import serial as nova_serial

from . import errors
from .client import _eventlet_patched, grpc, green_thread, native_module, native_queue, native_thread, pb2

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# Bytes read from the client's socket at a time (the agent takes at most 64 KiB a message).
READ_SIZE = 4096
# Seconds between the last bytes and the end of the connection: nova-serialproxy (websockify)
# drops the last bytes when the end comes right behind them (seen 3 times in 8 without the pause).
FORWARD_SECONDS = 0.5


class SerialConsoles(object):
    """The console listeners of this host's instances, by instance UUID."""

    def __init__(self, client):
        self._client = client
        self._listeners = {}
        # get_serial_console and validate_console_port may ask at once: one listener each.
        self._lock = threading.Lock()

    def port(self, instance_uuid):
        """The instance's console port; listens on a new one on the first call."""
        with self._lock:
            listener = self._listeners.get(instance_uuid)
            if listener is None:
                listener = ConsoleListener(self._client, instance_uuid,
                                           CONF.serial_console.proxyclient_address)
                self._listeners[instance_uuid] = listener
                LOG.info('serial console of instance %(uuid)s listens on %(host)s:%(port)d',
                         {'uuid': instance_uuid, 'host': listener.host, 'port': listener.port})
            return listener.port

    def close(self, instance_uuid):
        """Ends the instance's console sessions and releases its port (nothing when it has none)."""
        with self._lock:
            listener = self._listeners.pop(instance_uuid, None)
        if listener is not None:
            listener.close()
            LOG.info('serial console of instance %(uuid)s closed (port %(port)d released)',
                     {'uuid': instance_uuid, 'port': listener.port})

    def close_all(self):
        for instance_uuid in list(self._listeners):
            self.close(instance_uuid)


class ConsoleListener(object):
    """A TCP port whose every connection is a console session of one instance."""

    def __init__(self, client, instance_uuid, host):
        self._client = client
        self._instance_uuid = instance_uuid
        self.host = host
        self.port = nova_serial.acquire_port(host)
        try:
            self._server = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
            self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._server.bind((host, self.port))
            self._server.listen(8)
        except OSError:
            self._server.close()
            nova_serial.release_port(host, self.port)
            raise
        self._sessions = set()
        self._closed = False
        green_thread(self._accept)

    def _accept(self):
        while not self._closed:
            try:
                connection, _address = self._server.accept()
            except (OSError, EOFError):  # EOFError: eventlet's word for a socket closed meanwhile
                if self._closed:
                    return
                LOG.exception('serial console of instance %s: accept failed', self._instance_uuid)
                continue
            session = ConsoleSession(self._client, self._instance_uuid, connection,
                                     self._sessions.discard)
            self._sessions.add(session)
            session.start()

    def close(self):
        self._closed = True
        self._server.close()
        for session in list(self._sessions):
            session.close()
        nova_serial.release_port(self.host, self.port)


class ConsoleSession(object):
    """One client connection bridged to one AttachConsole stream; either end closes both."""

    def __init__(self, client, instance_uuid, connection, on_end):
        self._client = client
        self._instance_uuid = instance_uuid
        self._connection = connection
        self._on_end = on_end
        self._keys = native_queue()
        self._output_read, self._output_write = os.pipe()
        self._call = None
        self._ended_by = None  # the agent's status when it ended the stream
        self._closing = False

    def start(self):
        if _eventlet_patched():
            os.set_blocking(self._output_read, False)  # eventlet's os.read waits on the hub
        native_thread(self._follow, 'compute-agent-console')
        green_thread(self._send_keys)
        green_thread(self._send_output)

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._keys.put(None)
        call = self._call
        if call is not None:
            call.cancel()  # the agent frees the console at once (no wait for a half-close)
        try:
            self._connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._connection.close()
        self._on_end(self)

    # -- the native thread: the stream ---------------------------------------

    def _requests(self):
        # force: a connection reaches this port only through nova-serialproxy, after Nova checked
        # the user's token, so the newest session is the operator's; a stale one (a proxy that
        # kept its TCP connection) must not lock the console until nova-compute restarts.
        yield pb2.ConsoleInput(attach=pb2.ConsoleAttach(instance_uuid=self._instance_uuid,
                                                        force=True))
        while True:
            data = self._keys.get()
            if data is None:
                return
            yield pb2.ConsoleInput(data=data)

    def _follow(self):
        # No logging here: oslo.log takes eventlet's green locks; _send_output reports for it.
        # os.write as it is: eventlet's green one would wait on the hub from a native thread.
        write = native_module('os').write
        try:
            self._call = self._client.stub.AttachConsole(self._requests())
            if self._closing:
                self._call.cancel()
            for message in self._call:
                data = memoryview(message.data)
                while data:
                    data = data[write(self._output_write, data):]
        except grpc.RpcError as e:
            self._ended_by = e
        except OSError as e:
            if e.errno != errno.EPIPE:  # EPIPE: the client side is gone and closed the pipe
                self._ended_by = e
        finally:
            os.close(self._output_write)

    # -- greenthreads: the client's socket -----------------------------------

    def _send_keys(self):
        try:
            while True:
                data = self._connection.recv(READ_SIZE)
                if not data:
                    break
                self._keys.put(data)
        except (OSError, EOFError):  # EOFError: eventlet's word for a socket closed meanwhile
            pass
        finally:
            self.close()

    def _send_output(self):
        try:
            while True:
                data = os.read(self._output_read, 65536)
                if not data:
                    break
                self._connection.sendall(data)
            # The stream ended: tell the client why before closing its connection.
            reason = self._reason()
            if reason is not None:
                LOG.warning('serial console of instance %(uuid)s ended: %(reason)s',
                            {'uuid': self._instance_uuid, 'reason': reason})
                self._connection.sendall(('\r\n[compute-agent] %s\r\n' % reason).encode())
            if not self._closing:
                time.sleep(FORWARD_SECONDS)
        except (OSError, EOFError):
            pass
        finally:
            os.close(self._output_read)
            self.close()

    def _reason(self):
        """Why the agent ended the stream, as Nova would say it; None when this side ended it."""
        error = self._ended_by
        if self._closing or error is None:
            return None
        if isinstance(error, grpc.RpcError):
            if error.code() == grpc.StatusCode.CANCELLED:
                return None
            if error.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE):
                # The agent's own words for a session it ended (taken over, the guest's console
                # closed, the agent stopping) or grpc's for an unreachable socket: either says it.
                return error.details() or error.code().name
            return errors.from_rpc(error, self._instance_uuid, errors.console_unavailable,
                                   self._client.socket_path,
                                   refused=errors.console_unavailable).format_message()
        return 'the console stream failed: %s' % error
