using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.ConfigDrive;

/// <summary>One file of a config drive: a fixed relative path (never built from user input) and its bytes.</summary>
public sealed record ConfigDriveFile(string Path, byte[] Bytes);

/// <summary>
/// The files of an instance's config drive, laid out as Nova writes them (nova/api/metadata/base.py,
/// metadata_for_config_drive): openstack/latest and every dated version folder, each with the files
/// that version has, and ec2/latest. User input only ever becomes file content, JSON-escaped.
/// </summary>
public static class ConfigDriveContent
{
    /// <summary>Nova's OpenStack metadata versions (FOLSOM … VICTORIA); "latest" is written too.</summary>
    public static readonly IReadOnlyList<string> OpenStackVersions =
        ["2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14"];

    private const string Grizzly = "2013-04-04";
    private const string Havana = "2013-10-17";
    private const string Liberty = "2015-10-15";
    private const string NewtonOne = "2016-06-30";
    private const string NewtonTwo = "2016-10-06";

    // Relaxed: non-ASCII text stays readable UTF-8; quotes, backslashes and control characters are still escaped.
    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IReadOnlyList<ConfigDriveFile> For(InstanceSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var guest = spec.Guest;
        var network = Json(NetworkData(spec.Ports));
        var empty = Json(new JsonObject());
        var randomSeed = Convert.ToBase64String(RandomNumberGenerator.GetBytes(512));
        var files = new List<ConfigDriveFile>();
        foreach (var version in OpenStackVersions.Append("latest"))
        {
            var folder = "openstack/" + version + "/";
            files.Add(new(folder + "meta_data.json", Json(MetaData(spec, version, randomSeed))));
            if (guest.UserData is { } userData)
            {
                files.Add(new(folder + "user_data", userData));
            }

            if (AtLeast(version, Havana))
            {
                files.Add(new(folder + "vendor_data.json", empty));
            }

            if (AtLeast(version, Liberty))
            {
                files.Add(new(folder + "network_data.json", network));
            }

            if (AtLeast(version, NewtonTwo))
            {
                files.Add(new(folder + "vendor_data2.json", empty));
            }
        }

        files.Add(new("ec2/latest/meta-data.json", Json(Ec2MetaData(spec))));
        if (guest.UserData is { } ec2UserData)
        {
            files.Add(new("ec2/latest/user-data", ec2UserData));
        }

        return files;
    }

    private static bool AtLeast(string version, string since) => version == "latest" || string.CompareOrdinal(version, since) >= 0;

    private static byte[] Json(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString(JsonOptions));

    private static JsonObject MetaData(InstanceSpec spec, string version, string randomSeed)
    {
        var guest = spec.Guest;
        var meta = new JsonObject();
        foreach (var (name, value) in guest.Metadata.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            meta[name] = value;
        }

        var data = new JsonObject
        {
            ["uuid"] = spec.Uuid.ToString(),
            ["meta"] = meta,
        };
        if (guest.KeyPair is { } key)
        {
            data["public_keys"] = new JsonObject { [key.Name] = key.PublicKey };
            data["keys"] = new JsonArray(new JsonObject { ["name"] = key.Name, ["type"] = key.Type, ["data"] = key.PublicKey });
        }

        data["hostname"] = guest.HostnameFor(spec.Name, spec.Uuid);
        data["name"] = spec.Name;
        data["launch_index"] = guest.LaunchIndex;
        data["availability_zone"] = guest.AvailabilityZone;
        if (AtLeast(version, Grizzly))
        {
            data["random_seed"] = randomSeed;
        }

        if (AtLeast(version, Liberty))
        {
            data["project_id"] = spec.Owner.ProjectId;
        }

        if (AtLeast(version, NewtonOne))
        {
            data["devices"] = new JsonArray();
        }

        if (guest.AdminPassword is { } password)
        {
            data["admin_pass"] = password;
        }

        return data;
    }

    /// <summary>Nova's network_data.json (nova/virt/netutils.py): one link per port, its addresses (or DHCP), the DNS servers.</summary>
    private static JsonObject NetworkData(IReadOnlyList<Port> ports)
    {
        var links = new JsonArray();
        var networks = new JsonArray();
        var services = new JsonArray();
        var dns = new HashSet<string>(StringComparer.Ordinal);
        foreach (var port in ports)
        {
            var link = port.EffectiveDeviceName;
            links.Add(new JsonObject
            {
                ["id"] = link,
                ["vif_id"] = port.Id,
                ["type"] = port.VifType.ToString().ToLowerInvariant(),
                ["mtu"] = port.Mtu,
                ["ethernet_mac_address"] = port.MacAddress.ToLowerInvariant(),
            });
            var portServices = new JsonArray();
            foreach (var server in port.DnsNameservers)
            {
                portServices.Add(new JsonObject { ["type"] = "dns", ["address"] = server });
                if (dns.Add(server))
                {
                    services.Add(new JsonObject { ["type"] = "dns", ["address"] = server });
                }
            }

            if (port.FixedIps.Count == 0)
            {
                networks.Add(new JsonObject
                {
                    ["id"] = "network" + networks.Count,
                    ["type"] = "ipv4_dhcp",
                    ["link"] = link,
                    ["network_id"] = port.Id,
                });
                continue;
            }

            foreach (var address in port.FixedIps)
            {
                var routes = new JsonArray();
                if (address.Gateway is { } gateway)
                {
                    routes.Add(new JsonObject
                    {
                        ["network"] = address.IsIPv6 ? "::" : "0.0.0.0",
                        ["netmask"] = address.IsIPv6 ? "::" : "0.0.0.0",
                        ["gateway"] = gateway,
                    });
                }

                networks.Add(new JsonObject
                {
                    ["id"] = "network" + networks.Count,
                    ["type"] = address.IsIPv6 ? "ipv6" : "ipv4",
                    ["link"] = link,
                    ["ip_address"] = address.Address,
                    ["netmask"] = address.Netmask,
                    ["routes"] = routes,
                    ["network_id"] = port.Id,
                    ["services"] = portServices.DeepClone(),
                });
            }
        }

        return new JsonObject { ["links"] = links, ["networks"] = networks, ["services"] = services };
    }

    /// <summary>The EC2-style metadata Nova also writes (ec2/latest/meta-data.json).</summary>
    private static JsonObject Ec2MetaData(InstanceSpec spec)
    {
        var guest = spec.Guest;
        var hostname = guest.HostnameFor(spec.Name, spec.Uuid);
        var data = new JsonObject
        {
            ["ami-id"] = spec.Image.Id,
            ["ami-launch-index"] = guest.LaunchIndex,
            ["hostname"] = hostname,
            ["local-hostname"] = hostname,
            ["instance-id"] = spec.Uuid.ToString(),
            ["instance-type"] = spec.Flavor.Name,
            ["placement"] = new JsonObject { ["availability-zone"] = guest.AvailabilityZone },
            ["block-device-mapping"] = new JsonObject { ["ami"] = "vda", ["root"] = "/dev/vda" },
        };
        if (guest.KeyPair is { } key)
        {
            data["public-keys"] = new JsonObject { ["0"] = new JsonObject { ["openssh-key"] = key.PublicKey } };
        }

        return data;
    }
}
