namespace ComputeAgent.Testing;

/// <summary>The KEY=value files the guest build scripts write (guest.env, cloud-image.env).</summary>
public static class EnvFile
{
    public static Dictionary<string, string> Read(string path) =>
        File.ReadAllLines(path)
            .Where(l => l.Contains('=', StringComparison.Ordinal) && !l.StartsWith('#'))
            .Select(l => l.Split('=', 2))
            .ToDictionary(p => p[0].Trim(), p => p[1].Trim().Trim('"', '\''), StringComparer.Ordinal);
}
