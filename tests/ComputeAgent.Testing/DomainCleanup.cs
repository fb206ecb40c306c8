using ComputeAgent.Libvirt;

namespace ComputeAgent.Testing;

/// <summary>Whatever a test left running or defined goes, so no domain outlives the test that made it.</summary>
public static class DomainCleanup
{
    /// <summary>Destroys (when running) and undefines, with its managed-save image and snapshot metadata, the domain of each UUID that still exists.</summary>
    public static void Remove(string uri, params Guid[] uuids)
    {
        using var connection = LibvirtConnection.Open(uri);
        foreach (var uuid in uuids)
        {
            using var domain = connection.TryLookupByUuid(uuid);
            if (domain is null)
            {
                continue;
            }

            if (domain.IsActive)
            {
                domain.Destroy();
            }

            domain.Undefine(DomainUndefineFlags.ManagedSave | DomainUndefineFlags.SnapshotsMetadata);
        }
    }
}
