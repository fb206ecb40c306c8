using ComputeAgent.Host.Interop;

namespace ComputeAgent.Host.Callers;

/// <summary>
/// Who may open the Unix socket at all: its owner (the agent) and Agent:Callers:SocketGroup,
/// mode 0660. The kernel refuses everyone else at connect; <see cref="CallerCheck"/> still checks
/// each call's peer should the mode ever be widened.
/// </summary>
public static class SocketAccess
{
    private const UnixFileMode OwnerAndGroup = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    /// <summary>Gives the bound socket its group and mode; returns what is wrong (the agent cannot start), or null.</summary>
    public static string? Restrict(string socketPath, string group)
    {
        // A group that does not exist: CallerCheck logs it, and the socket keeps the agent's own group.
        if (LocalAccounts.GroupId(group) is { } gid)
        {
            try
            {
                Libc.ChangeGroup(socketPath, gid);
            }
            catch (IOException ex)
            {
                return $"cannot give {socketPath} the group '{group}' (Agent:Callers:SocketGroup): {ex.Message}; the agent's user must be a member of that group (usermod -aG {group} compute-agent)";
            }
        }

        File.SetUnixFileMode(socketPath, OwnerAndGroup);
        return null;
    }
}
