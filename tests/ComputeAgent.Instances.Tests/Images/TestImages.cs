using System.Diagnostics;
using System.Security.Cryptography;
using ComputeAgent.Instances.Images;
using ComputeAgent.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace ComputeAgent.Instances.Tests.Images;

/// <summary>Tiny real images made with qemu-img, and a cache + client pointed at a fake Glance.</summary>
internal sealed class TestImages : IDisposable
{
    public const long VirtualSize = 16L << 20;

    public TestImages()
    {
        Scratch = Directory.CreateTempSubdirectory("compute-agent-images-").FullName;
        CacheDirectory = Path.Combine(Scratch, "_base");
    }

    public string Scratch { get; }

    public string CacheDirectory { get; }

    public static string NewId() => Guid.NewGuid().ToString();

    public static string Sha512(string path) => Convert.ToHexStringLower(SHA512.HashData(File.ReadAllBytes(path)));

    public static string Sha512(byte[] data) => Convert.ToHexStringLower(SHA512.HashData(data));

    public static async Task<string> QemuImgAsync(params string[] arguments) =>
        (await ProcessRunner.RunAsync("qemu-img", arguments, TimeSpan.FromSeconds(30))).EnsureSuccess($"qemu-img {arguments[0]}").StandardOutput;

    /// <summary>A 16 MiB qcow2 made by qemu-img create with <paramref name="options"/> (e.g. "-b", a backing file).</summary>
    public async Task<byte[]> Qcow2Async(params string[] options)
    {
        var path = Path.Combine(Scratch, $"{Guid.NewGuid():N}.qcow2");
        await QemuImgAsync(["create", "-q", "-f", "qcow2", .. options, path, VirtualSize.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        return await File.ReadAllBytesAsync(path);
    }

    /// <summary>A 16 MiB raw disk with recognisable data here and there (so a conversion that loses it shows).</summary>
    public static byte[] Raw()
    {
        var data = new byte[VirtualSize];
        var random = new Random(42);
        for (var offset = 0; offset < data.Length; offset += 1 << 20)
        {
            random.NextBytes(data.AsSpan(offset, 4096));
        }

        return data;
    }

    public ImageCache Cache(FakeGlance glance, HttpClient http, ImageCacheOptions? options = null, GlanceClientOptions? glanceOptions = null) =>
        new(new GlanceClient(http, glance.Endpoint, glanceOptions), options ?? Options(), NullLogger<ImageCache>.Instance);

    public ImageCacheOptions Options() => new() { Directory = CacheDirectory };

    /// <summary>Every file under the cache directory, temp files included, relative to it.</summary>
    public string[] CacheFiles() =>
        Directory.Exists(CacheDirectory)
            ? [.. Directory.EnumerateFiles(CacheDirectory, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(CacheDirectory, f)).Order(StringComparer.Ordinal)]
            : [];

    /// <summary>A file mode as chmod writes it, e.g. "644".</summary>
    public static UnixFileMode Octal(string mode) => (UnixFileMode)Convert.ToInt32(mode, 8);

    /// <summary>Polls a condition that something else makes true; 10 s bounds a hung test, it is not a speed check.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), "condition not reached within 10 s");
            await Task.Delay(10);
        }
    }

    public void Dispose() => Directory.Delete(Scratch, recursive: true);
}

