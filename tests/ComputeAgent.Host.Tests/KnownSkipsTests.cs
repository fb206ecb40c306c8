using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// tests/host/check-skips.py, which test.sh runs on every TRX and JUnit file: under CI a skip whose
/// reason is not a known limit of these machines fails the run, so a host where libvirtd does not
/// answer cannot end green by skipping every QEMU test.
/// </summary>
public sealed class KnownSkipsTests : IDisposable
{
    private const string Listed = "SKIP  user compute-agent cannot reach polkit here (no system D-Bus / polkitd without systemd), so libvirtd cannot admit group libvirt";
    private const string Unlisted = "libvirtd was started but qemu:///system did not answer within 30 s";

    private readonly string scratch = RepositoryPaths.CreateScratch("known-skips");

    [Fact]
    public async Task Under_CI_a_skip_whose_reason_is_not_listed_fails_and_is_named_with_its_reason()
    {
        WriteTrx("a.trx", ("Install.Step2", Listed), ("Qemu.Boots", Unlisted));
        WriteJunit("b.xml", ("test_driver.test_spawn", "needs a Nova stack"));

        var result = await CheckAsync("CI=true");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("2 skipped test(s) whose reason is not a known limit", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"Qemu.Boots: {Unlisted}", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("test_driver.test_spawn: needs a Nova stack", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Install.Step2:", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"known skip: Install.Step2: {Listed}", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_developer_flag_is_as_strict_as_CI()
    {
        WriteTrx("a.trx", ("Qemu.Boots", Unlisted));

        var result = await CheckAsync("COMPUTE_AGENT_STRICT_SKIPS=1");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"Qemu.Boots: {Unlisted}", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Outside_CI_an_unlisted_skip_is_a_warning_and_the_status_stays_zero()
    {
        WriteTrx("a.trx", ("Qemu.Boots", Unlisted));

        var result = await CheckAsync();

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("warning: 1 skipped test(s)", result.StandardError, StringComparison.Ordinal);
        Assert.Contains($"Qemu.Boots: {Unlisted}", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Under_CI_only_listed_skips_pass()
    {
        WriteTrx("a.trx", ("Install.Step2", Listed), ("Install.Step3", $"SKIP  the agent runs with test:///default because {Listed}"));

        var result = await CheckAsync("CI=true");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(string.Empty, result.StandardError);
    }

    [Fact]
    public async Task A_reason_of_several_lines_is_known_only_when_every_line_is()
    {
        WriteTrx("a.trx", ("Install.Step1", $"{Listed}\nSKIP  systemd-analyze is not installed: unit not verified"));

        var result = await CheckAsync("CI=true");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("systemd-analyze is not installed", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_list_holds_only_the_limits_of_machines_without_systemd()
    {
        var entries = File.ReadAllLines(Path.Combine(RepositoryPaths.Root, "tests", "known-skips.txt"))
            .Where(l => l.Trim().Length > 0 && !l.TrimStart().StartsWith('#'));

        Assert.Equal(["no system D-Bus / polkitd without systemd"], entries);
    }

    public void Dispose() => RepositoryPaths.DeleteScratch(scratch);

    private Task<ProcessRunner.Result> CheckAsync(params string[] environment) =>
        ProcessRunner.RunAsync(
            "env",
            ["-u", "CI", "-u", "COMPUTE_AGENT_STRICT_SKIPS", .. environment, "/usr/bin/python3", Path.Combine(RepositoryPaths.Root, "tests", "host", "check-skips.py"), scratch],
            TimeSpan.FromSeconds(60));

    private void WriteTrx(string name, params (string Test, string Reason)[] skips)
    {
        var results = string.Concat(skips.Select(s => $"""
            <UnitTestResult testName="{s.Test}" outcome="NotExecuted"><Output><ErrorInfo><Message>{System.Security.SecurityElement.Escape(s.Reason)}</Message></ErrorInfo></Output></UnitTestResult>
            <UnitTestResult testName="{s.Test}.Passing" outcome="Passed" />
            """));
        File.WriteAllText(Path.Combine(scratch, name), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <TestRun xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010"><Results>{results}</Results></TestRun>
            """);
    }

    private void WriteJunit(string name, params (string Test, string Reason)[] skips)
    {
        var cases = string.Concat(skips.Select(s =>
        {
            var dot = s.Test.LastIndexOf('.');
            return $"""<testcase classname="{s.Test[..dot]}" name="{s.Test[(dot + 1)..]}"><skipped type="pytest.skip" message="{s.Reason}" /></testcase><testcase classname="x" name="passes" />""";
        }));
        File.WriteAllText(Path.Combine(scratch, name), $"""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="nova-compute-agent" tests="2" skipped="1">{cases}</testsuite></testsuites>""");
    }
}
