using System.Threading.Channels;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

[Collection(TestDriverCollection.Name)]
public sealed class TestDriverScaleTests
{
    private const int Count = 1000;

    [Fact]
    public async Task A_thousand_domains_are_listed_read_and_each_reports_its_events()
    {
        using var connection = LibvirtConnection.Open(TestDriverCollection.Uri);
        var events = Channel.CreateUnbounded<DomainEvent>();
        connection.SubscribeDomainEvents(events.Writer);
        var before = connection.ListAllDomains().Count;
        var uuids = Enumerable.Range(0, Count).Select(_ => Guid.NewGuid()).ToArray();
        var mine = uuids.ToHashSet();
        var domains = uuids.Select((u, i) => connection.DefineXml(TestDriverCollection.DomainXml($"scale-{i:D4}-{u:N}", u))).ToList();
        try
        {
            // Every other domain runs, so the list and the bulk stats have two states to tell apart.
            for (var i = 0; i < Count; i += 2)
            {
                domains[i].Create();
            }

            var listed = connection.ListAllDomains();
            Assert.Equal(before + Count, listed.Count);
            Assert.Equal(Count, listed.Count(d => mine.Contains(d.Uuid)));
            foreach (var domain in listed)
            {
                domain.Dispose();
            }

            Assert.Equal(Count / 2, connection.ListAllDomains(ListDomainsFlags.Active).Count(d => { using (d) { return mine.Contains(d.Uuid); } }));

            var states = connection.GetAllDomainStats(DomainStatsTypes.State).Where(s => mine.Contains(s.Uuid)).ToDictionary(s => s.Uuid, s => s.State!.Value.State);
            Assert.Equal(Count, states.Count);
            for (var i = 0; i < Count; i++)
            {
                Assert.Equal(i % 2 == 0 ? DomainState.Running : DomainState.Shutoff, states[uuids[i]]);
                Assert.Equal(states[uuids[i]], domains[i].GetState().State);
            }

            // Defined for all, started for half: 1,500 events, each domain's in order.
            var received = new Dictionary<Guid, List<DomainLifecycleDetail>>();
            while (received.Values.Sum(l => l.Count) < Count + (Count / 2))
            {
                var e = await events.Reader.WaitForAsync(e => e.Kind == DomainEventKind.Lifecycle && mine.Contains(e.Uuid), TimeSpan.FromSeconds(30), "for the scale domains");
                (received.TryGetValue(e.Uuid, out var list) ? list : received[e.Uuid] = []).Add(e.Detail);
            }

            for (var i = 0; i < Count; i++)
            {
                DomainLifecycleDetail[] expected = i % 2 == 0 ? [DomainLifecycleDetail.DefinedAdded, DomainLifecycleDetail.StartedBooted] : [DomainLifecycleDetail.DefinedAdded];
                Assert.Equal(expected, received[uuids[i]]);
            }
        }
        finally
        {
            foreach (var domain in domains)
            {
                if (domain.IsActive)
                {
                    domain.Destroy();
                }

                domain.Undefine();
                domain.Dispose();
            }
        }

        Assert.Equal(before, connection.ListAllDomains().Count);
    }
}
