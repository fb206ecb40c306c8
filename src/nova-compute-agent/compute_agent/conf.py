"""The driver's nova.conf options, in group [compute_agent]."""

from oslo_config import cfg

compute_agent_group = cfg.OptGroup(
    'compute_agent',
    title='compute-agent driver options',
    help='How nova-compute reaches the local compute-agent (its gRPC Unix socket).')

compute_agent_opts = [
    cfg.StrOpt('socket_path',
               default='/run/compute-agent/agent.sock',
               help="The agent's gRPC Unix socket (its Agent:UnixSocketPath). "
                    "nova-compute must be root or in the agent's socket group."),
    cfg.IntOpt('call_timeout',
               default=30, min=1,
               help='Seconds one plain RPC may take.'),
    cfg.IntOpt('task_timeout',
               default=1800, min=1,
               help='Seconds a task (spawn, snapshot, resize, ...) may take '
                    'before the driver stops waiting and fails the operation.'),
    cfg.FloatOpt('reconnect_interval',
                 default=1.0, min=0.1,
                 help='Seconds between reconnects of the event stream '
                      '(WatchInstances) after the agent went away.'),
]


def register_opts(conf):
    conf.register_group(compute_agent_group)
    conf.register_opts(compute_agent_opts, group=compute_agent_group)


def list_opts():
    return {compute_agent_group: compute_agent_opts}
