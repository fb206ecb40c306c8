"""A real compute-agent (libvirt test:///default) and a real image service for the driver's tests.

The tests run under eventlet's monkey patching, as nova-compute does, so the
driver's gRPC-in-native-threads design is exercised the way Nova uses it.
"""

import eventlet

eventlet.monkey_patch()

import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import pytest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
BUILD = os.environ.get('NOVA_COMPUTE_AGENT_BUILD', os.path.join(HERE, '..', 'build'))
AGENT_DLL = os.path.join(REPO, 'src/ComputeAgent.Host/bin/Release/net10.0/compute-agent.dll')
CLI_DLL = os.path.join(REPO, 'src/ComputeAgent.Cli/bin/Release/net10.0/compute-agent-cli.dll')

import nova.virt  # noqa: E402

# The driver installs as nova/virt/compute_agent/; the staged build stands in for it.
nova.virt.__path__.insert(0, os.path.abspath(BUILD))

import nova.conf  # noqa: E402
from nova import objects  # noqa: E402

objects.register_all()
CONF = nova.conf.CONF
CONF([], project='nova', default_config_files=[])


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError('timed out waiting for ' + what)


class Agent(object):
    """The agent process, its image service and scratch folder."""

    def __init__(self):
        for path in (AGENT_DLL, CLI_DLL):
            if not os.path.exists(path):
                raise AssertionError('%s is missing: run src/nova-compute-agent/run-tests.sh' % path)
        self.scratch = tempfile.mkdtemp(prefix='nova-driver-tests-', dir='/var/tmp')
        os.chmod(self.scratch, 0o755)
        self.images_dir = os.path.join(self.scratch, 'images')
        os.mkdir(self.images_dir)
        # tiny: what the instances boot; rescue: another image for rescue_image_ref.
        for name, size in (('tiny.qcow2', '64M'), ('rescue.qcow2', '32M')):
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                            os.path.join(self.images_dir, name), size], check=True)
        self.socket_path = os.path.join(self.scratch, 'agent.sock')
        self.processes = []
        port = _free_port()
        self.image_url = 'http://127.0.0.1:%d' % port
        self.images_log = open(os.path.join(self.scratch, 'images.log'), 'w+')
        self.processes.append(subprocess.Popen(
            ['dotnet', CLI_DLL, 'demo', 'image-server', '--dir', self.images_dir,
             '--listen', '127.0.0.1:%d' % port],
            stdout=self.images_log, stderr=subprocess.STDOUT))
        _wait(lambda: 'serving' in self._read(self.images_log), 60, 'the image server')
        # One line per image: "ID  FILE  SIZE bytes".
        ids = dict(reversed(line.split()[:2]) for line in self._read(self.images_log).splitlines()
                   if line.endswith(' bytes'))
        self.image_id, self.rescue_image_id = ids['tiny.qcow2'], ids['rescue.qcow2']
        self.agent_log = open(os.path.join(self.scratch, 'agent.log'), 'w+')
        self.start_agent()

    def start_agent(self):
        # An empty settings file of the test's own: everything comes from the command line, never
        # from the host's /etc/compute-agent/agent.json (a missing named file is an error).
        config = os.path.join(self.scratch, 'agent.json')
        with open(config, 'w') as f:
            f.write('{}')
        env = dict(os.environ, COMPUTE_AGENT_CONFIG=config)
        settings = {
            'LibvirtUri': 'test:///default',
            'VirtType': 'qemu',
            'StateDirectory': os.path.join(self.scratch, 'state'),
            'InstancesDirectory': os.path.join(self.scratch, 'instances'),
            'UnixSocketPath': self.socket_path,
            'ImageServiceUrl': self.image_url,
            'LogTarget': 'console',
            'GracefulStopTimeoutSeconds': '5',
            # Nova reclaims soft-deleted instances itself.
            'ReclaimInstanceIntervalSeconds': '86400',
        }
        self.agent = subprocess.Popen(
            ['dotnet', AGENT_DLL] + ['--Agent:%s=%s' % kv for kv in settings.items()],
            stdout=self.agent_log, stderr=subprocess.STDOUT, env=env)
        self.processes.append(self.agent)
        _wait(lambda: os.path.exists(self.socket_path) or self.agent.poll() is not None,
              120, 'the agent socket')
        if self.agent.poll() is not None:
            raise AssertionError('the agent exited: ' + self._read(self.agent_log))

    @staticmethod
    def _read(log):
        log.flush()
        with open(log.name) as f:
            return f.read()

    def log(self):
        return self._read(self.agent_log)

    def create_image(self, name, disk_format='qcow2'):
        """POST /v2/images as Nova's API does before a snapshot: a queued image."""
        body = json.dumps({'name': name, 'disk_format': disk_format,
                           'container_format': 'bare'}).encode()
        request = urllib.request.Request(self.image_url + '/v2/images', data=body,
                                         headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)['id']

    def get_image(self, image_id):
        with urllib.request.urlopen('%s/v2/images/%s' % (self.image_url, image_id)) as answer:
            return json.load(answer)

    def list_images(self):
        with urllib.request.urlopen(self.image_url + '/v2/images') as answer:
            return [i['id'] for i in json.load(answer)['images']]

    def close(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture(scope='session')
def agent():
    running = Agent()
    try:
        yield running
    finally:
        running.close()


@contextlib.contextmanager
def started_driver(socket_path, **options):
    """A ComputeAgentDriver on socket_path with [compute_agent] options, init_host done, events collected."""
    from nova.virt import compute_agent
    options = dict({'socket_path': socket_path, 'task_timeout': 120}, **options)
    for name, value in options.items():
        CONF.set_override(name, value, group='compute_agent')
    CONF.set_override('host', 'nova-driver-test')
    compute_driver = compute_agent.ComputeAgentDriver(virtapi=None)
    compute_driver.events = []
    compute_driver.register_event_listener(compute_driver.events.append)
    try:
        compute_driver.init_host('nova-driver-test')
        yield compute_driver
    finally:
        compute_driver.cleanup_host('nova-driver-test')
        for name in options:
            CONF.clear_override(name, group='compute_agent')
        CONF.clear_override('host')


@pytest.fixture
def driver(agent):
    with started_driver(agent.socket_path) as compute_driver:
        yield compute_driver
