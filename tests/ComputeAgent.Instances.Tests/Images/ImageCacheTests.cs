using System.Text.Json;
using ComputeAgent.Instances.Images;
using ComputeAgent.Testing;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Images;

/// <summary>The base-image cache: real downloads from a real HTTP server, real qemu-img.</summary>
public sealed class ImageCacheTests : IAsyncLifetime
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
    public async Task A_qcow2_image_is_cached_byte_for_byte_readable_by_qemu_and_served_from_the_cache_afterwards()
    {
        var data = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, Properties = { ["hw_disk_bus"] = "virtio" } });
        var cache = images.Cache(glance, http);

        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(Path.Combine(images.CacheDirectory, image.Id), cached.Path);
        Assert.Equal(TestImages.Sha512(data), TestImages.Sha512(cached.Path));
        Assert.Equal((TestImages.VirtualSize, "virtio"), (cached.VirtualSize, cached.Meta.Properties!["hw_disk_bus"]));
        Assert.Equal("qcow2", JsonDocument.Parse(await TestImages.QemuImgAsync("info", "--output=json", cached.Path)).RootElement.GetProperty("format").GetString());

        // QEMU runs as libvirt-qemu: files 0644, directory 0755.
        Assert.Equal(TestImages.Octal("644"), File.GetUnixFileMode(cached.Path));
        Assert.Equal(TestImages.Octal("755"), File.GetUnixFileMode(images.CacheDirectory));
        Assert.Equal([image.Id, $"{image.Id}.info"], images.CacheFiles());

        // Cached: no token needed, no request made, same answer.
        var again = await cache.GetAsync(image.Id, token: null, CancellationToken.None);
        Assert.Equal((cached.Path, cached.Meta.Id, cached.VirtualSize), (again.Path, again.Meta.Id, again.VirtualSize));
        Assert.Equal(cached.Path, cache.TryGetPath(image.Id));
        Assert.Null(cache.TryGetPath(TestImages.NewId()));
        Assert.Equal((1, 1), (glance.MetadataHits(image.Id), glance.FileHits(image.Id)));
    }

    [Fact]
    public async Task Metadata_the_caller_already_read_is_not_asked_for_again_on_a_miss()
    {
        var data = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data });
        var cache = images.Cache(glance, http);
        var client = new GlanceClient(http, glance.Endpoint);

        // What a spawn does: the metadata first (it decides the domain XML), then the bytes.
        var known = await client.GetImageAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        var cached = await cache.GetAsync(known, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(TestImages.Sha512(data), TestImages.Sha512(cached.Path));
        Assert.Equal((1, 1), (glance.MetadataHits(image.Id), glance.FileHits(image.Id)));
    }

    [Fact]
    public async Task A_raw_image_is_converted_to_a_qcow2_with_the_same_content()
    {
        var raw = TestImages.Raw();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = raw, DiskFormat = "raw", HashAlgorithm = "sha256" });
        var cache = images.Cache(glance, http);

        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        var info = JsonDocument.Parse(await TestImages.QemuImgAsync("info", "--output=json", cached.Path)).RootElement;
        Assert.Equal(("qcow2", TestImages.VirtualSize), (info.GetProperty("format").GetString(), info.GetProperty("virtual-size").GetInt64()));
        var rawFile = Path.Combine(images.Scratch, "original.raw");
        await File.WriteAllBytesAsync(rawFile, raw);
        var compare = await ProcessRunner.RunAsync("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", rawFile, cached.Path], TimeSpan.FromSeconds(30));
        Assert.True(compare.ExitCode == 0, compare.StandardOutput + compare.StandardError);
        Assert.Equal(TestImages.Octal("644"), File.GetUnixFileMode(cached.Path));
        Assert.Equal([image.Id, $"{image.Id}.info"], images.CacheFiles());
        Assert.Equal("raw", cached.Meta.DiskFormat);
    }

    [Theory]
    [InlineData("sha512")]
    [InlineData("sha256")]
    [InlineData(null)]
    public async Task Data_that_does_not_match_glances_checksum_is_refused_and_nothing_is_kept(string? algorithm)
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async(), HashAlgorithm = algorithm, CorruptInTransit = true });
        var cache = images.Cache(glance, http);

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.ChecksumMismatch, error.Kind);
        Assert.Contains($"{algorithm ?? "md5"} is ", error.Message, StringComparison.Ordinal);
        Assert.Contains($"Glance recorded {(algorithm is null ? image.Md5 : image.HashValue)}", error.Message, StringComparison.Ordinal);
        Assert.Empty(images.CacheFiles());
        Assert.Null(cache.TryGetPath(image.Id));
    }

    [Fact]
    public async Task The_md5_checksum_verifies_when_glance_has_no_multihash()
    {
        var data = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, HashAlgorithm = null });
        var cache = images.Cache(glance, http);

        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(TestImages.Sha512(data), TestImages.Sha512(cached.Path));
        Assert.Contains("\"hash_algorithm\": \"md5\"", await File.ReadAllTextAsync(cached.Path + ".info"), StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string> UnsafeImages => new()
    {
        { "backing file", "qcow2", "backing file ('/etc/hostname')" },
        { "data file", "qcow2", "external data file" },
        { "qcow2 declared raw", "raw", "disk_format is 'raw' but the data is a 'qcow2' image" },
        { "raw declared qcow2", "qcow2", "disk_format is 'qcow2' but the data is a 'raw' image" },
    };

    [Theory]
    [MemberData(nameof(UnsafeImages))]
    public async Task Unsafe_images_are_refused_after_inspection_and_nothing_is_kept(string what, string declared, string reason)
    {
        var data = what switch
        {
            "backing file" => await images.Qcow2Async("-F", "raw", "-b", "/etc/hostname"),
            "data file" => await images.Qcow2Async("-o", $"data_file={Path.Combine(images.Scratch, "data.raw")}"),
            "qcow2 declared raw" => await images.Qcow2Async(),
            _ => TestImages.Raw(),
        };
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, DiskFormat = declared });
        var cache = images.Cache(glance, http);

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.Unsafe, error.Kind);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
        Assert.Equal(1, glance.FileHits(image.Id));
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public async Task A_truncated_qcow2_that_qemu_img_info_passes_is_refused_by_qemu_img_check_and_nothing_is_kept()
    {
        // Its header is whole (qemu-img info reads it happily), its tables point past the end.
        var whole = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = whole[..512] });
        var cache = images.Cache(glance, http);

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.Damaged, error.Kind);
        Assert.Contains("qemu-img check found it damaged: 3 corruption(s)", error.Message, StringComparison.Ordinal);
        Assert.Contains("upload a good copy", error.Message, StringComparison.Ordinal);
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public async Task With_vmdk_accepted_a_self_contained_vmdk_is_cached_and_one_whose_extent_is_elsewhere_is_refused()
    {
        var cache = images.Cache(glance, http, images.Options() with { AcceptedDiskFormats = ["qcow2", "vmdk"] });
        var sparsePath = Path.Combine(images.Scratch, "sparse.vmdk");
        await TestImages.QemuImgAsync("create", "-q", "-f", "vmdk", sparsePath, "16M");
        var sparse = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await File.ReadAllBytesAsync(sparsePath), DiskFormat = "vmdk" });

        // A descriptor whose extent is a file on the host: what QEMU would open if it were booted.
        var flatPath = Path.Combine(images.Scratch, "flat.vmdk");
        await TestImages.QemuImgAsync("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", flatPath, "16M");
        var extent = Path.Combine(images.Scratch, "flat-flat.vmdk");
        var descriptor = (await File.ReadAllTextAsync(flatPath)).Replace("\"flat-flat.vmdk\"", $"\"{extent}\"", StringComparison.Ordinal);
        Assert.Contains(extent, descriptor, StringComparison.Ordinal);
        var flat = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = System.Text.Encoding.ASCII.GetBytes(descriptor), DiskFormat = "vmdk" });

        var cached = await cache.GetAsync(sparse.Id, FakeGlance.Token, CancellationToken.None);
        Assert.Contains("\"format\": \"qcow2\"", await TestImages.QemuImgAsync("info", "--output=json", cached.Path), StringComparison.Ordinal);

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(flat.Id, FakeGlance.Token, CancellationToken.None));
        Assert.Equal(ImageServiceErrorKind.Unsafe, error.Kind);
        Assert.Contains("vmdk create-type 'monolithicFlat'", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(images.CacheFiles(), f => f.Contains(flat.Id, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Images_this_host_does_not_run_are_refused_before_downloading()
    {
        var cache = images.Cache(glance, http, images.Options() with { MaxImageBytes = 1 << 20 });
        var queued = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1], Status = "queued" });
        var vmdk = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1], DiskFormat = "vmdk" });
        var ova = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1], ContainerFormat = "ova" });
        var large = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = new byte[(1 << 20) + 1], DiskFormat = "raw" });

        async Task<ImageServiceException> RefusedAsync(FakeImage image) =>
            await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.NotActive, (await RefusedAsync(queued)).Kind);
        var format = await RefusedAsync(vmdk);
        Assert.Equal(ImageServiceErrorKind.UnsupportedFormat, format.Kind);
        Assert.Contains("accepted: qcow2, raw, iso", format.Message, StringComparison.Ordinal);
        Assert.Equal(ImageServiceErrorKind.UnsupportedFormat, (await RefusedAsync(ova)).Kind);
        var tooLarge = await RefusedAsync(large);
        Assert.Equal(ImageServiceErrorKind.TooLarge, tooLarge.Kind);
        Assert.Contains("the agent takes images of at most", tooLarge.Message, StringComparison.Ordinal);
        Assert.Equal(0, new[] { queued, vmdk, ova, large }.Sum(i => glance.FileHits(i.Id)));
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public async Task Missing_images_and_refused_tokens_cache_nothing()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });
        var cache = images.Cache(glance, http);

        var missing = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(TestImages.NewId(), FakeGlance.Token, CancellationToken.None));
        var refused = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, "expired-token", CancellationToken.None));

        Assert.Equal((ImageServiceErrorKind.NotFound, ImageServiceErrorKind.Unauthorized), (missing.Kind, refused.Kind));
        Assert.Empty(images.CacheFiles());

        // The same image with a good token: the refusal was not remembered.
        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        Assert.Equal((2, 1), (glance.MetadataHits(image.Id), glance.FileHits(image.Id)));
        Assert.True(File.Exists(cached.Path));
    }

    [Fact]
    public async Task A_stalled_download_fails_on_the_stall_timeout_and_leaves_no_temp_file()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async(), StallAfterBytes = 65536 });
        var time = new FakeTimeProvider();
        var cache = images.Cache(glance, http, glanceOptions: new GlanceClientOptions { ReadStallTimeout = TimeSpan.FromMilliseconds(500), Time = time });

        var download = cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        await TestImages.WaitUntilAsync(() => glance.FileHits(image.Id) == 1);

        // The clock moves only here, 100 ms a step: the download ends on the stall timer's clock,
        // and not before 500 ms of it have passed.
        var advanced = TimeSpan.Zero;
        await TestImages.WaitUntilAsync(() =>
        {
            if (download.IsCompleted)
            {
                return true;
            }

            time.Advance(TimeSpan.FromMilliseconds(100));
            advanced += TimeSpan.FromMilliseconds(100);
            return false;
        });
        var error = await Assert.ThrowsAsync<ImageServiceException>(() => download);

        Assert.Equal(ImageServiceErrorKind.Timeout, error.Kind);
        Assert.Contains("no data for 0.5 s after 65536 bytes", error.Message, StringComparison.Ordinal);
        Assert.True(advanced >= TimeSpan.FromMilliseconds(500), $"the download failed after {advanced.TotalMilliseconds} ms of its clock");
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public async Task Twenty_concurrent_callers_share_one_download()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var data = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, Gate = gate });
        var cache = images.Cache(glance, http);

        var callers = Enumerable.Range(0, 20).Select(_ => Task.Run(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None))).ToList();
        await TestImages.WaitUntilAsync(() => glance.FileHits(image.Id) == 1);
        await Task.Delay(100);
        gate.SetResult();
        var results = await Task.WhenAll(callers);

        Assert.Equal((1, 1), (glance.MetadataHits(image.Id), glance.FileHits(image.Id)));
        Assert.Single(results.Select(r => r.Path).Distinct());
        Assert.Equal(TestImages.Sha512(data), TestImages.Sha512(results[0].Path));
        Assert.Equal([image.Id, $"{image.Id}.info"], images.CacheFiles());
    }

    [Fact]
    public async Task A_failed_download_fails_every_waiter_once_and_the_next_caller_downloads_again()
    {
        var data = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, FailFirstFiles = 1 });
        var cache = images.Cache(glance, http);

        var failures = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None))));
        Assert.All(failures, f => Assert.Equal(ImageServiceErrorKind.Unavailable, f.Kind));
        Assert.InRange(glance.FileHits(image.Id), 1, 5);
        var hitsAfterFailure = glance.FileHits(image.Id);

        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(hitsAfterFailure + 1, glance.FileHits(image.Id));
        Assert.Equal(TestImages.Sha512(data), TestImages.Sha512(cached.Path));
    }

    [Fact]
    public async Task Concurrent_waiters_of_a_failing_download_share_its_one_failure()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async(), CorruptInTransit = true, Gate = gate });
        var cache = images.Cache(glance, http);

        var callers = Enumerable.Range(0, 8).Select(_ => Task.Run(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None))).ToList();
        await TestImages.WaitUntilAsync(() => glance.FileHits(image.Id) == 1);
        await Task.Delay(100);
        gate.SetResult();

        foreach (var caller in callers)
        {
            Assert.Equal(ImageServiceErrorKind.ChecksumMismatch, (await Assert.ThrowsAsync<ImageServiceException>(() => caller)).Kind);
        }

        Assert.Equal(1, glance.FileHits(image.Id));
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public async Task A_caller_that_gives_up_leaves_the_download_to_the_others_and_the_last_one_stops_it()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var data = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, Gate = gate });
        var cache = images.Cache(glance, http);

        // Two callers, one gives up: the other still gets the image from the one download.
        using (var impatient = new CancellationTokenSource())
        {
            var leaving = cache.GetAsync(image.Id, FakeGlance.Token, impatient.Token);
            var staying = cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);
            await TestImages.WaitUntilAsync(() => glance.FileHits(image.Id) == 1);
            await impatient.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
            gate.SetResult();
            Assert.Equal(TestImages.Sha512(data), TestImages.Sha512((await staying).Path));
            Assert.Equal(1, glance.FileHits(image.Id));
        }

        // The only caller gives up: the download is stopped (the server sees the client go) and leaves nothing.
        var stuck = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, Gate = new TaskCompletionSource() });
        using (var alone = new CancellationTokenSource())
        {
            var leaving = cache.GetAsync(stuck.Id, FakeGlance.Token, alone.Token);
            await TestImages.WaitUntilAsync(() => glance.FileHits(stuck.Id) == 1);
            await alone.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
            await TestImages.WaitUntilAsync(() => glance.AbortedRequests == 1);
            await TestImages.WaitUntilAsync(() => images.CacheFiles().Length == 2);
        }

        Assert.Equal([image.Id, $"{image.Id}.info"], images.CacheFiles());
        Assert.Null(cache.TryGetPath(stuck.Id));
    }

    [Fact]
    public async Task A_restart_removes_what_an_interrupted_run_left_and_keeps_complete_images()
    {
        var data = await images.Qcow2Async();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data });
        var cached = await images.Cache(glance, http).GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        // What a crash mid-download leaves: temp files, and a sidecar whose image never arrived.
        var orphan = TestImages.NewId();
        await File.WriteAllTextAsync(Path.Combine(images.CacheDirectory, ".tmp", $"{orphan}.0123.download"), "partial");
        await File.WriteAllTextAsync(Path.Combine(images.CacheDirectory, ".tmp", $"{orphan}.4567.info"), "{}");
        await File.WriteAllTextAsync(Path.Combine(images.CacheDirectory, $"{orphan}.info"), "{}");

        var restarted = images.Cache(glance, http);

        Assert.Equal([image.Id, $"{image.Id}.info"], images.CacheFiles());
        var again = await restarted.GetAsync(image.Id, null, CancellationToken.None);
        Assert.Equal((cached.Path, TestImages.Sha512(data)), (again.Path, TestImages.Sha512(again.Path)));
        Assert.Equal(1, glance.FileHits(image.Id));
    }

    [Fact]
    public async Task The_test_guest_disk_is_cached_and_backs_an_instance_overlay()
    {
        var guest = await TestGuest.LoadOrBuildAsync();
        var data = await File.ReadAllBytesAsync(guest.Disk);
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, Name = "compute-agent test guest" });
        var cache = images.Cache(glance, http);

        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        var overlay = Path.Combine(images.Scratch, "disk");
        await QemuImg.CreateOverlayAsync(cached.Path, CachedImage.Format, overlay, 128L << 20, CancellationToken.None);

        Assert.Equal(TestImages.Sha512(data), TestImages.Sha512(cached.Path));
        var info = JsonDocument.Parse(await QemuImg.InfoJsonAsync(overlay, CancellationToken.None)).RootElement;
        Assert.Equal(cached.Path, info.GetProperty("backing-filename").GetString());
        Assert.Equal("qcow2", info.GetProperty("backing-filename-format").GetString());
        Assert.Equal(128L << 20, info.GetProperty("virtual-size").GetInt64());
    }

    // Kernels (aki) and ramdisks (ari) for direct kernel boot: cached as they came, still checksummed.
    [Theory]
    [InlineData("aki")]
    [InlineData("ari")]
    public async Task A_kernel_or_ramdisk_is_cached_byte_for_byte_without_conversion(string format)
    {
        // Not a disk image at all: qemu-img would call it raw, and converting it would ruin it.
        var data = "\u007fELF kernel bytes, not a disk"u8.ToArray();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, DiskFormat = format, ContainerFormat = format });
        var cache = images.Cache(glance, http);

        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(data, await File.ReadAllBytesAsync(cached.Path));
        Assert.Equal(cache.PathOf(image.Id), cached.Path);
        Assert.Equal(format, cached.Meta.DiskFormat);
        Assert.Equal(TestImages.Octal("644"), File.GetUnixFileMode(cached.Path));
    }

    [Fact]
    public async Task A_kernel_damaged_in_transit_is_refused_and_leaves_nothing()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = new byte[4096], DiskFormat = "aki", ContainerFormat = "aki", CorruptInTransit = true });
        var cache = images.Cache(glance, http);

        var refused = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Contains("damaged in transit", refused.Message, StringComparison.Ordinal);
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public void A_path_for_an_id_that_could_leave_the_cache_is_refused()
    {
        var cache = images.Cache(glance, http);
        Assert.Throws<ArgumentException>(() => cache.PathOf("../etc/passwd"));
    }
}
