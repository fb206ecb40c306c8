using System.CommandLine;
using System.Text.Json.Nodes;
using ComputeAgent.Api.V1;
using Grpc.Core;
using Grpc.Health.V1;

namespace ComputeAgent.Cli;

/// <summary>The commands that read the host and its instances: list, show, events, host, console-log, health.</summary>
internal static class InspectCommands
{
    public static IEnumerable<Command> All() => [List(), Show(), Events(), HostCommand(), ConsoleLog(), HealthCommand()];

    /// <summary>The UUID argument of every command about one instance.</summary>
    public static Argument<string> Uuid() => new("UUID") { Description = "The instance's UUID (compute-agent-cli list shows them)." };

    private static Command List()
    {
        var vmState = new Option<VmState?>("--vm-state")
        {
            Description = "Only instances in this vm_state (any case): " + string.Join(", ", Output.VmStateNames()) + ".",
            HelpName = "STATE",
            CustomParser = result =>
            {
                var text = result.Tokens.Single().Value;
                if (Output.ParseVmState(text) is { } state)
                {
                    return state;
                }

                result.AddError($"--vm-state '{text}' is not a vm_state; one of {string.Join(", ", Output.VmStateNames())}");
                return null;
            },
        };
        // The names as printed (ACTIVE), not the C# enum's (Active) the library would offer.
        vmState.CompletionSources.Clear();
        vmState.CompletionSources.Add(Output.VmStateNames().ToArray());
        var name = new Option<string?>("--name") { Description = "Only instances whose name contains this text (any case).", HelpName = "TEXT" };
        var project = new Option<string?>("--project") { Description = "Only this project's instances.", HelpName = "PROJECT_ID" };
        var uuids = new Option<bool>("--uuids") { Description = "Print only the UUIDs, one a line (tab completion reads them)." };
        return AgentSession.AgentCommand("list", "The host's instances (deleted ones left out): UUID, name, vm_state, task_state, power_state, flavor, age.", async (parse, agent, json, cancellationToken) =>
        {
            var request = new ListInstancesRequest { VmState = parse.GetValue(vmState) ?? VmState.Unspecified, ProjectId = parse.GetValue(project) ?? string.Empty, PageSize = 1000 };
            var instances = new List<Instance>();
            do
            {
                var page = await agent.Client.ListInstancesAsync(request, cancellationToken: cancellationToken);
                instances.AddRange(page.Instances);
                request.PageToken = page.NextPageToken;
            }
            while (request.PageToken.Length > 0);

            if (parse.GetValue(name) is { Length: > 0 } part)
            {
                instances.RemoveAll(i => !i.Name.Contains(part, StringComparison.OrdinalIgnoreCase));
            }

            if (parse.GetValue(uuids))
            {
                instances.ForEach(i => Console.Out.WriteLine(i.Uuid));
            }
            else if (json)
            {
                Output.WriteJson(new JsonArray([.. instances.Select(Output.Json)]));
            }
            else
            {
                var now = DateTimeOffset.UtcNow;
                Output.Table(
                    ["UUID", "NAME", "VM_STATE", "TASK_STATE", "POWER_STATE", "FLAVOR", "AGE"],
                    [.. instances.Select(i => new[] { i.Uuid, i.Name, Output.Name(i.VmState), Output.Name(i.TaskState), Output.Name(i.PowerState), i.Flavor?.Name ?? "-", Output.Age(i.CreatedAt, now) })]);
            }

            return 0;
        }, vmState, name, project, uuids);
    }

    private static Command Show()
    {
        var uuid = Uuid();
        var events = new Option<int>("--events")
        {
            Description = "How many of the instance's last state changes to show (0: none).",
            HelpName = "N",
            DefaultValueFactory = _ => 10,
        };
        var xml = new Option<bool>("--xml") { Description = "Also print the libvirt domain XML: the live one of a running guest, else the definition." };
        var inactive = new Option<bool>("--inactive") { Description = "With --xml: the persistent definition (what the next start uses), not the live XML." };
        return AgentSession.AgentCommand("show", "Everything the agent knows of one instance: states, flavor, image, owner, times, the latest fault, the last state changes, optionally the domain XML.", async (parse, agent, json, cancellationToken) =>
        {
            var id = parse.GetRequiredValue(uuid);
            var instance = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = id }, cancellationToken: cancellationToken);
            var last = new Queue<InstanceEvent>();
            var keep = Math.Max(0, parse.GetValue(events));
            if (keep > 0)
            {
                await foreach (var e in EventLog.ReadAsync(agent.Client, id, 0, follow: false, cancellationToken))
                {
                    last.Enqueue(e);
                    if (last.Count > keep)
                    {
                        last.Dequeue();
                    }
                }
            }

            DomainXml? domain = null;
            string? noDomain = null;
            if (parse.GetValue(xml))
            {
                try
                {
                    domain = await agent.Client.GetDomainXmlAsync(new GetDomainXmlRequest { InstanceUuid = id, Inactive = parse.GetValue(inactive) }, cancellationToken: cancellationToken);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
                {
                    noDomain = e.Status.Detail;
                }
            }

            if (json)
            {
                var document = new JsonObject
                {
                    ["instance"] = Output.Json(instance),
                    ["last_events"] = new JsonArray([.. last.Select(Output.Json)]),
                };
                if (parse.GetValue(xml))
                {
                    document["domain_xml"] = domain is null ? null : Output.Json(domain);
                }

                Output.WriteJson(document);
                return 0;
            }

            var fields = new List<(string, string)>
            {
                ("uuid", instance.Uuid),
                ("name", instance.Name),
                ("vm_state", Output.Name(instance.VmState)),
                ("task_state", Output.Name(instance.TaskState)),
                ("power_state", Output.Name(instance.PowerState)),
                ("flavor", Output.Describe(instance.Flavor)),
            };
            if (instance.Flavor is { ExtraSpecs.Count: > 0 } flavor)
            {
                fields.Add(("extra_specs", string.Join(", ", flavor.ExtraSpecs.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key}={s.Value}"))));
            }

            fields.AddRange(
            [
                ("image_id", instance.ImageId),
                ("project_id", instance.ProjectId),
                ("user_id", instance.UserId),
                ("created_at", $"{Output.Time(instance.CreatedAt)} ({Output.Age(instance.CreatedAt, DateTimeOffset.UtcNow)} ago)"),
                ("updated_at", Output.Time(instance.UpdatedAt)),
                ("fault", instance.Fault is { } fault ? $"{fault.Code} at {Output.Time(fault.CreatedAt)}: {fault.Message}" : "none"),
            ]);
            Output.Fields(fields);
            if (keep > 0)
            {
                Console.Out.WriteLine();
                Console.Out.WriteLine($"last state changes (compute-agent-cli events {id} --follow for new ones):");
                Console.Out.WriteLine(Output.EventHeader);
                foreach (var e in last)
                {
                    Console.Out.WriteLine(Output.EventLine(e));
                }
            }

            if (parse.GetValue(xml))
            {
                Console.Out.WriteLine();
                Console.Out.WriteLine(domain is null ? $"domain XML: none ({noDomain})" : $"domain XML ({(domain.Active && !parse.GetValue(inactive) ? "live" : "definition")}):");
                if (domain is not null)
                {
                    Console.Out.WriteLine(domain.Xml.TrimEnd());
                }
            }

            return 0;
        }, uuid, events, xml, inactive);
    }

    private static Command Events()
    {
        var uuid = new Argument<string?>("UUID") { Description = "Only this instance's changes; none: every instance's.", Arity = ArgumentArity.ZeroOrOne };
        var after = new Option<long>("--after")
        {
            Description = "Start after this sequence number (the first column): a follower that stopped resumes with the last one it printed and misses nothing. "
                + "Default: the whole log, or with --follow only new changes.",
            HelpName = "SEQ",
        };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new changes as the agent commits them, until Ctrl-C." };
        return AgentSession.AgentCommand("events", "The agent's state changes as lines: sequence number, time, instance, vm_state, task_state, power_state, cause.", async (parse, agent, json, cancellationToken) =>
        {
            var last = parse.GetValue(after);
            if (last < 0)
            {
                throw new CliException(CliException.BadCommandLine, $"--after {last}: a sequence number is 0 or more");
            }

            if (!json)
            {
                Console.Out.WriteLine(Output.EventHeader);
            }

            var received = false;
            try
            {
                await foreach (var e in EventLog.ReadAsync(agent.Client, parse.GetValue(uuid), last, parse.GetValue(follow), cancellationToken))
                {
                    if (json)
                    {
                        Output.WriteJsonLine(e);
                    }
                    else
                    {
                        Console.Out.WriteLine(Output.EventLine(e));
                    }

                    last = e.Sequence;
                    received = true;
                }
            }
            catch (Exception e) when (cancellationToken.IsCancellationRequested && e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled })
            {
                // Ctrl-C ends a follow: not a failure.
                return 0;
            }
            catch (RpcException e) when (received)
            {
                // The agent ended the stream (a follower too far behind, an agent stopping): say where to resume.
                throw new CliException(CliException.Failed, $"the agent ended the stream ({AgentSession.CodeName(e.StatusCode)}: {e.Status.Detail}); resume with --after {last}");
            }

            return 0;
        }, uuid, after, follow);
    }

    private static Command HostCommand() => AgentSession.AgentCommand("host", "The hypervisor host (GetHost): libvirt and QEMU versions, CPUs, memory, the instances directory's disk, instance counts.", async (_, agent, json, cancellationToken) =>
    {
        var host = await agent.Client.GetHostAsync(new GetHostRequest(), cancellationToken: cancellationToken);
        if (json)
        {
            Output.WriteJson(Output.Json(host));
            return 0;
        }

        Output.Fields(
        [
            ("hostname", host.Hostname),
            ("hypervisor", $"{host.HypervisorType} {host.HypervisorVersion}"),
            ("libvirt", host.LibvirtVersion),
            ("cpu_model", host.CpuModel),
            ("cpus", $"{host.Cpus} ({host.Sockets} sockets x {host.CoresPerSocket} cores x {host.ThreadsPerCore} threads, {host.NumaNodes} NUMA nodes)"),
            ("memory", $"{host.MemoryMib} MiB, {host.FreeMemoryMib} MiB free"),
            ("instances_disk", $"{host.InstancesDiskTotalGib} GiB, {host.InstancesDiskFreeGib} GiB free"),
            ("instances", host.InstanceCount + (host.InstancesByVmState.Count == 0 ? string.Empty
                : " (" + string.Join(", ", host.InstancesByVmState.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key} {s.Value}")) + ")")),
        ]);
        return 0;
    });

    private static Command ConsoleLog()
    {
        var uuid = Uuid();
        var lines = new Option<int>("--lines", "-n")
        {
            Description = "How many lines from the end (1 to 10,000).",
            HelpName = "N",
            DefaultValueFactory = _ => 100,
        };
        return AgentSession.AgentCommand("console-log", "The tail of the instance's serial console log, as nova console-log shows it.", async (parse, agent, json, cancellationToken) =>
        {
            var output = await agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { InstanceUuid = parse.GetRequiredValue(uuid), Lines = parse.GetValue(lines) }, cancellationToken: cancellationToken);
            if (json)
            {
                Output.WriteJson(Output.Json(output));
            }
            else if (output.Output.Length > 0)
            {
                Console.Out.WriteLine(output.Output.TrimEnd('\n'));
            }

            return 0;
        }, uuid, lines);
    }

    private static Command HealthCommand() => AgentSession.AgentCommand("health", "The agent's gRPC health: SERVING (exit 0) once it has recovered its instances and holds a libvirt connection, else NOT_SERVING (exit 1).", async (_, agent, json, cancellationToken) =>
    {
        var answer = await new Health.HealthClient(agent.Channel).CheckAsync(new HealthCheckRequest(), cancellationToken: cancellationToken);
        if (json)
        {
            Output.WriteJson(Output.Json(answer));
        }
        else
        {
            Console.Out.WriteLine(answer.Status == HealthCheckResponse.Types.ServingStatus.Serving ? "SERVING" : "NOT_SERVING");
        }

        return answer.Status == HealthCheckResponse.Types.ServingStatus.Serving ? 0 : CliException.Failed;
    });
}
