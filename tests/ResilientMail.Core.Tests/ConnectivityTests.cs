using Microsoft.Extensions.Time.Testing;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.TestServers;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Tests;

public class ConnectivityTests
{
    private static readonly Endpoint Target = new("127.0.0.1", 2525);

    [Fact]
    public async Task The_wait_resumes_when_the_target_returns_at_two_minutes()
    {
        var time = new FakeTimeProvider();
        var probe = new ClockProbe(time, t => t >= TimeSpan.FromMinutes(2));
        var events = new List<DeliveryEvent>();
        var gate = new ConnectivityGate(probe, new[] { Target }, new ConnectivityOptions(), time, e => events.Add(e));
        var start = time.GetUtcNow();

        var result = await Clock.Drive(time, gate.WaitAsync(null, default), TimeSpan.FromMinutes(6), TimeSpan.FromSeconds(1));

        Assert.True(result.Reachable);
        Assert.Equal(TimeSpan.FromMinutes(2), time.GetUtcNow() - start);
        Assert.Equal(13, probe.Calls); // t = 0, 10, ..., 120 s: every 10 s
        Assert.Single(events, e => e.Kind == DeliveryEventKind.WaitingForConnection);
        Assert.Single(events, e => e.Kind == DeliveryEventKind.ConnectionRestored);
        Assert.Contains(events, e => e.Kind == DeliveryEventKind.StillWaiting && e.Text.Contains("(1:10 of 5:00)"));
    }

    [Fact]
    public async Task The_wait_gives_up_at_five_minutes_with_a_clear_error()
    {
        var time = new FakeTimeProvider();
        var probe = new ClockProbe(time, _ => false);
        var gate = new ConnectivityGate(probe, new[] { Target }, new ConnectivityOptions(), time, null);
        var start = time.GetUtcNow();

        var ex = await Assert.ThrowsAsync<ConnectivityLostException>(() => Clock.Drive(time, gate.WaitAsync(null, default), TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(1)));

        Assert.Equal(TimeSpan.FromMinutes(5), time.GetUtcNow() - start);
        Assert.Equal(TimeSpan.FromMinutes(5), ex.Waited);
        Assert.Contains("127.0.0.1:2525", ex.Message);
        Assert.Contains("5:00", ex.Message);
        Assert.Contains("Connection refused", ex.Message);
    }

    [Fact]
    public async Task Wait_limits_and_interval_are_settable()
    {
        var time = new FakeTimeProvider();
        var probe = new ClockProbe(time, _ => false);
        var options = new ConnectivityOptions { CheckInterval = TimeSpan.FromSeconds(3), WaitTimeout = TimeSpan.FromSeconds(30) };
        var gate = new ConnectivityGate(probe, new[] { Target }, options, time, null);

        await Assert.ThrowsAsync<ConnectivityLostException>(() => Clock.Drive(time, gate.WaitAsync(null, default), TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(500)));

        Assert.Equal(11, probe.Calls); // 0, 3, ..., 30 s
    }

    [Fact]
    public async Task The_probe_is_not_called_while_sends_succeed()
    {
        var time = new FakeTimeProvider();
        var probe = new ClockProbe(time, _ => true);
        var transport = new ScriptedTransport(time, _ => null);
        using var courier = new Courier(transport, new CourierOptions { Pacing = PacingOptions.None }, probe, time, new FixedRandom(), null);

        for (int i = 0; i < 20; i++)
        {
            var r = await courier.DeliverAsync(Clock.Message(), default);
            Assert.Equal(DeliveryStatus.Sent, r.Status);
            time.Advance(TimeSpan.FromSeconds(2));
        }

        Assert.Equal(0, probe.Calls);
    }

    [Fact]
    public async Task The_probe_runs_after_being_idle()
    {
        var time = new FakeTimeProvider();
        var probe = new ClockProbe(time, _ => true);
        var transport = new ScriptedTransport(time, _ => null);
        using var courier = new Courier(transport, new CourierOptions { Pacing = PacingOptions.None }, probe, time, new FixedRandom(), null);

        await courier.DeliverAsync(Clock.Message(), default);
        time.Advance(TimeSpan.FromMinutes(2));
        await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(1, probe.Calls);
    }

    [Fact]
    public async Task A_network_failure_during_an_outage_waits_then_delivers_without_burning_retries()
    {
        var time = new FakeTimeProvider();
        var start = time.GetUtcNow();
        bool Up() => time.GetUtcNow() - start >= TimeSpan.FromMinutes(2);
        var probe = new ClockProbe(time, t => t >= TimeSpan.FromMinutes(2));
        var transport = new ScriptedTransport(time, _ => Up() ? null : ScriptedTransport.Network());
        var events = new List<DeliveryEvent>();
        using var courier = new Courier(transport, new CourierOptions { Pacing = PacingOptions.None }, probe, time, new FixedRandom(), e => events.Add(e));

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(6), TimeSpan.FromMilliseconds(100));

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts); // one failure, the wait, one success
        Assert.Single(events, e => e.Kind == DeliveryEventKind.WaitingForConnection);
        Assert.Single(events, e => e.Kind == DeliveryEventKind.ConnectionRestored);
    }

    [Fact]
    public async Task An_outage_longer_than_the_limit_fails_the_message_as_connectivity_lost()
    {
        var time = new FakeTimeProvider();
        var probe = new ClockProbe(time, _ => false);
        var transport = new ScriptedTransport(time, _ => ScriptedTransport.Network());
        using var courier = new Courier(transport, new CourierOptions { Pacing = PacingOptions.None }, probe, time, new FixedRandom(), null);

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(500));

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(FailureReason.ConnectivityLost, result.Failure!.Reason);
        Assert.True(result.Failure.StopsRun);
        Assert.Single(transport.AttemptTimes);
    }

    [Theory]
    [InlineData("127.0.0.1:2525", "127.0.0.1", 2525)]
    [InlineData("[::1]:587", "::1", 587)]
    [InlineData("smtp.example.com:465", "smtp.example.com", 465)]
    public void Targets_parse_as_host_and_port(string text, string host, int port)
    {
        var e = Endpoint.Parse(text);
        Assert.Equal(host, e.Host);
        Assert.Equal(port, e.Port);
    }

    [Theory]
    [InlineData("nohost")]
    [InlineData("host:99999")]
    [InlineData("host:abc")]
    [InlineData(":25")]
    public void Bad_targets_are_refused(string text) => Assert.Throws<FormatException>(() => Endpoint.Parse(text));

    [Fact]
    public async Task The_tcp_probe_says_a_closed_loopback_port_is_unreachable()
    {
        await using var closed = new ScriptedSmtpServer(listen: false);
        var result = await new TcpProbe().ProbeAsync(new Endpoint("127.0.0.1", closed.Port), TimeSpan.FromSeconds(5), default);
        Assert.False(result.Reachable);
        Assert.NotNull(result.Error);
    }

    [Fact]
    public async Task The_tcp_probe_reaches_an_open_loopback_port()
    {
        await using var server = new ScriptedSmtpServer();
        var result = await new TcpProbe().ProbeAsync(new Endpoint("127.0.0.1", server.Port), TimeSpan.FromSeconds(5), default);
        Assert.True(result.Reachable);
        Assert.Null(result.Error);
    }
}
