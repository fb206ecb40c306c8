using System.Globalization;

namespace ComputeAgent.Host.Callers;

/// <summary>The agent's own uid and a group's gid, read from /proc/self/status and /etc/group.</summary>
public static class LocalAccounts
{
    public static uint OwnUid()
    {
        // "Uid:\treal\teffective\tsaved\tfs": the effective one decides what the agent may do.
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        return uint.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2], CultureInfo.InvariantCulture);
    }

    /// <summary>The gid of the named group (getent's view of /etc/group), or null when there is none.</summary>
    public static uint? GroupId(string name, string groupFile = "/etc/group")
    {
        if (!File.Exists(groupFile))
        {
            return null;
        }

        foreach (var line in File.ReadLines(groupFile))
        {
            var fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == name && uint.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
            {
                return gid;
            }
        }

        return null;
    }
}
