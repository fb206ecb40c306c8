using ComputeAgent.Api.V1;
using ComputeAgent.Instances.Store;
using Google.Protobuf.WellKnownTypes;
using Model = ComputeAgent.Instances.Model;
using States = ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Host;

/// <summary>Between the engine's types and the gRPC contract's (enum numbers differ: proto has UNSPECIFIED = 0).</summary>
internal static class ApiMapping
{
    public static VmState ToApi(this States.VmState state) => (VmState)((int)state + 1);

    public static TaskState ToApi(this States.TaskState state) => (TaskState)((int)state + 1);

    public static PowerState ToApi(this States.PowerState state) => state switch
    {
        States.PowerState.NoState => PowerState.Nostate,
        States.PowerState.Running => PowerState.Running,
        States.PowerState.Paused => PowerState.Paused,
        States.PowerState.Shutdown => PowerState.Shutdown,
        States.PowerState.Crashed => PowerState.Crashed,
        States.PowerState.Suspended => PowerState.Suspended,
        _ => PowerState.Unspecified,
    };

    public static States.VmState? FromApi(this VmState state) => state == VmState.Unspecified ? null : (States.VmState)((int)state - 1);

    public static Instance ToApi(this InstanceRecord record, FaultRecord? fault = null)
    {
        var instance = new Instance
        {
            Uuid = record.Uuid.ToString(),
            Name = record.Name,
            VmState = record.VmState.ToApi(),
            TaskState = record.TaskState.ToApi(),
            PowerState = record.PowerState.ToApi(),
            Flavor = record.Spec.Flavor.ToApi(),
            ImageId = record.Spec.Image.Id,
            ProjectId = record.Spec.Owner.ProjectId,
            UserId = record.Spec.Owner.UserId,
            CreatedAt = Timestamp.FromDateTimeOffset(record.CreatedAt),
            UpdatedAt = Timestamp.FromDateTimeOffset(record.UpdatedAt),
        };
        if (fault is not null)
        {
            instance.Fault = new Api.V1.Fault { Code = fault.Code, Message = fault.Message, CreatedAt = Timestamp.FromDateTimeOffset(fault.CreatedAt) };
        }

        return instance;
    }

    public static InstanceEvent ToApi(this EventRecord e) => new()
    {
        Sequence = e.Seq,
        InstanceUuid = e.Uuid.ToString(),
        OldVmState = e.OldVmState?.ToApi() ?? VmState.Unspecified,
        VmState = e.NewVmState.ToApi(),
        OldTaskState = e.OldTaskState?.ToApi() ?? TaskState.Unspecified,
        TaskState = e.NewTaskState.ToApi(),
        OldPowerState = e.OldPowerState?.ToApi() ?? PowerState.Unspecified,
        PowerState = e.NewPowerState.ToApi(),
        Cause = e.Cause,
        Time = Timestamp.FromDateTimeOffset(e.CreatedAt),
    };

    public static Flavor ToApi(this Model.Flavor flavor)
    {
        var api = new Flavor
        {
            Name = flavor.Name,
            Vcpus = flavor.Vcpus,
            RamMib = flavor.RamMiB,
            RootGib = flavor.RootGiB,
            EphemeralGib = flavor.EphemeralGiB,
            SwapGib = flavor.SwapGiB,
        };
        if (flavor.ExtraSpecs is not null)
        {
            foreach (var (key, value) in flavor.ExtraSpecs)
            {
                api.ExtraSpecs[key] = value;
            }
        }

        return api;
    }

    public static Model.Flavor FromApi(this Flavor flavor) =>
        new(flavor.Name, flavor.Vcpus, flavor.RamMib, flavor.RootGib, flavor.EphemeralGib, flavor.SwapGib, flavor.ExtraSpecs.ToDictionary(StringComparer.Ordinal));

    /// <summary>The spawn's boot data for the config drive; proto3's empty strings are "not given".</summary>
    public static Model.GuestData ToGuestData(this SpawnRequest request) => new()
    {
        KeyPair = request.KeyPair is { } key
            ? new Model.KeyPair(key.Name, key.PublicKey, string.IsNullOrEmpty(key.Type) ? "ssh" : key.Type)
            : null,
        UserData = request.UserData.IsEmpty ? null : request.UserData.ToByteArray(),
        Metadata = request.Metadata.ToDictionary(StringComparer.Ordinal),
        AdminPassword = string.IsNullOrEmpty(request.AdminPassword) ? null : request.AdminPassword,
        Hostname = string.IsNullOrEmpty(request.Hostname) ? null : request.Hostname,
        ConfigDrive = request.ConfigDrive,
        AvailabilityZone = string.IsNullOrEmpty(request.AvailabilityZone) ? null : request.AvailabilityZone,
    };
}
