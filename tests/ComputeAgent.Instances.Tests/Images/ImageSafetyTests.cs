using ComputeAgent.Instances.Images;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Images;

/// <summary>
/// The base-image cache's safety limits, each reached with real files and the real qemu-img: the
/// inspect and convert timeouts, a qcow2 marked corrupt, the vmdk create types, the virtual-size
/// limit and the free-space pre-check. Each refusal names its cause and leaves no file behind.
/// </summary>
public sealed class ImageSafetyTests : IAsyncLifetime
{
    private readonly HttpClient http = new();
    private readonly TestImages images = new();
    private FakeGlance glance = null!;

    public async Task InitializeAsync() => glance = await FakeGlance.StartAsync();

    public async Task DisposeAsync()
    {
        http.Dispose();
        await glance.DisposeAsync();
        images.Dispose();
    }

    [Fact]
    public async Task A_qemu_img_info_that_hangs_is_killed_at_the_inspect_timeout_and_the_download_removed()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });
        var (program, pidFile) = QemuImgHangingOn("info");
        var cache = images.Cache(glance, http, images.Options() with { QemuImgProgram = program, InspectTimeout = TimeSpan.FromSeconds(1) });

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.Unsafe, error.Kind);
        Assert.Equal($"image {image.Id}: refused as unsafe: qemu-img info did not finish within 1 s, as crafted images make it", error.Message);
        await AssertKilledAsync(pidFile);
        Assert.Empty(images.CacheFiles());
        Assert.Null(cache.TryGetPath(image.Id));
    }

    [Fact]
    public async Task A_conversion_that_hangs_is_killed_at_the_convert_timeout_and_its_partial_output_removed()
    {
        // Inspected and checked by the real qemu-img; only the conversion hangs (after starting its output file).
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = TestImages.Raw(), DiskFormat = "raw" });
        var (program, pidFile) = QemuImgHangingOn("convert");
        var cache = images.Cache(glance, http, images.Options() with { QemuImgProgram = program, ConvertTimeout = TimeSpan.FromSeconds(1) });

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.Timeout, error.Kind);
        Assert.Equal($"image {image.Id}: converting it from raw to qcow2 took longer than 1 s; check the image cache disk's speed and that qemu-img convert of this image finishes by hand", error.Message);
        await AssertKilledAsync(pidFile);
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public async Task A_qcow2_whose_header_marks_it_corrupt_is_refused()
    {
        // The corrupt bit: incompatible_features (big-endian u64 at byte 72), bit 1. qemu-img check passes it.
        var data = await images.Qcow2Async();
        data[79] |= 0x02;
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data });
        var cache = images.Cache(glance, http);

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.Unsafe, error.Kind);
        Assert.Equal($"image {image.Id}: refused as unsafe: the qcow2 marks itself corrupt; repair it (qemu-img check -r all) and upload it again", error.Message);
        Assert.Equal(1, glance.FileHits(image.Id));
        Assert.Empty(images.CacheFiles());
    }

    [Theory]
    [InlineData("monolithicFlat", "FLAT")]
    [InlineData("vmfs", "VMFS")]
    public async Task A_vmdk_descriptor_whose_extent_is_a_host_file_is_refused_by_its_create_type(string createType, string extentType)
    {
        // qemu-img's own monolithicFlat descriptor, rewritten to the create type and to an absolute extent on this host.
        var flat = Path.Combine(images.Scratch, "flat.vmdk");
        await TestImages.QemuImgAsync("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", flat, "16M");
        var extent = Path.Combine(images.Scratch, "flat-flat.vmdk");
        var descriptor = (await File.ReadAllTextAsync(flat))
            .Replace("createType=\"monolithicFlat\"", $"createType=\"{createType}\"", StringComparison.Ordinal)
            .Replace("RW 32768 FLAT \"flat-flat.vmdk\" 0", $"RW 32768 {extentType} \"{extent}\"{(extentType == "FLAT" ? " 0" : string.Empty)}", StringComparison.Ordinal);
        Assert.Contains($"createType=\"{createType}\"", descriptor, StringComparison.Ordinal);
        Assert.Contains(extent, descriptor, StringComparison.Ordinal);
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = System.Text.Encoding.ASCII.GetBytes(descriptor), DiskFormat = "vmdk" });
        var cache = images.Cache(glance, http, images.Options() with { AcceptedDiskFormats = ["qcow2", "vmdk"] });

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.Unsafe, error.Kind);
        Assert.Equal(
            $"image {image.Id}: refused as unsafe: vmdk create-type '{createType}' may keep extents in other files; only monolithicSparse and streamOptimized are accepted, convert it and upload it again",
            error.Message);
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public async Task A_qcow2_bomb_small_on_disk_but_100_TiB_to_the_guest_is_refused_by_the_virtual_size_limit()
    {
        var bomb = Path.Combine(images.Scratch, "bomb.qcow2");
        await TestImages.QemuImgAsync("create", "-q", "-f", "qcow2", bomb, "100T");
        var data = await File.ReadAllBytesAsync(bomb);
        Assert.InRange(data.Length, 1, 64L << 20);
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data });
        var cache = images.Cache(glance, http);

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        // 100 TiB against the default limit of 4 TiB.
        Assert.Equal(ImageServiceErrorKind.TooLarge, error.Kind);
        Assert.Equal(
            $"image {image.Id}: too large for this host: its virtual size is 109951162777600 bytes and the agent takes at most 4398046511104 bytes; use a smaller image",
            error.Message);
        Assert.Empty(images.CacheFiles());
    }

    [SkippableFact]
    public async Task An_image_the_cache_has_no_room_for_is_refused_before_it_is_downloaded()
    {
        // The cache on a 1 MiB tmpfs; a 16 MiB raw image needs its download and about as much again for the qcow2.
        Directory.CreateDirectory(images.CacheDirectory);
        var mounted = await ProcessRunner.RunAsync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", images.CacheDirectory], TimeSpan.FromSeconds(10));
        Skip.If(mounted.ExitCode != 0, $"cannot mount a tiny tmpfs here ({mounted.StandardError.Trim()}): the free-space check needs root and mount");
        try
        {
            var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = TestImages.Raw(), DiskFormat = "raw" });
            var cache = images.Cache(glance, http);

            var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

            Assert.Equal(ImageServiceErrorKind.NoSpace, error.Kind);
            Assert.Equal(
                $"image {image.Id}: no room in the image cache {images.CacheDirectory}: it needs about 33554432 bytes and 1048576 are free; remove unused base images or grow the file system",
                error.Message);
            Assert.Equal(0, glance.FileHits(image.Id));
            Assert.Empty(images.CacheFiles());
        }
        finally
        {
            (await ProcessRunner.RunAsync("umount", [images.CacheDirectory], TimeSpan.FromSeconds(10))).EnsureSuccess("umount");
        }
    }

    /// <summary>
    /// A qemu-img that runs the real one except for <paramref name="subcommand"/>, where it writes
    /// its pid, starts the output file a convert names last, and sleeps far past any timeout here.
    /// </summary>
    private (string Program, string PidFile) QemuImgHangingOn(string subcommand)
    {
        var program = Path.Combine(images.Scratch, $"qemu-img-hanging-on-{subcommand}");
        var pidFile = program + ".pid";
        File.WriteAllText(program, $"""
            #!/bin/sh
            if [ "$1" != "{subcommand}" ]; then exec qemu-img "$@"; fi
            if [ "$1" = convert ]; then for last; do :; done; echo partial > "$last"; fi
            echo $$ > "{pidFile}"
            exec sleep 600

            """);
        File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return (program, pidFile);
    }

    /// <summary>The hung process was started and is gone: the timeout killed it rather than leaving it running.</summary>
    private static async Task AssertKilledAsync(string pidFile)
    {
        Assert.True(File.Exists(pidFile), "the hanging qemu-img never ran");
        var pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        for (var i = 0; i < 100 && Directory.Exists($"/proc/{pid}"); i++)
        {
            await Task.Delay(100);
        }

        Assert.False(Directory.Exists($"/proc/{pid}"), $"the hanging qemu-img (pid {pid}) still runs after the timeout");
    }
}
