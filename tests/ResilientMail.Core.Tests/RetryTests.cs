using Microsoft.Extensions.Time.Testing;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;

namespace ResilientMail.Core.Tests;

public class RetryTests
{
    private static Courier Courier(FakeTimeProvider time, ScriptedTransport transport, RetryOptions? retry = null, Random? random = null, IConnectivityProbe? probe = null) =>
        new(transport, new CourierOptions { Retry = retry ?? new RetryOptions(), Pacing = PacingOptions.None },
            probe ?? new ClockProbe(time, _ => true), time, random ?? new FixedRandom(0.5), null);

    [Theory]
    [InlineData(0, 1.0)]
    [InlineData(1, 2.0)]
    [InlineData(2, 4.0)]
    [InlineData(3, 8.0)]
    public void Default_schedule_doubles_from_one_second_within_twenty_percent_jitter(int retry, double nominal)
    {
        var options = new RetryOptions();
        Assert.Equal(TimeSpan.FromSeconds(nominal), RetrySchedule.Delay(options, retry, null, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(nominal * 0.8), RetrySchedule.Delay(options, retry, null, 0.0));
        var highest = RetrySchedule.Delay(options, retry, null, 0.999999);
        Assert.InRange(highest.TotalSeconds, nominal * 1.19, nominal * 1.2);
    }

    [Fact]
    public void Delays_are_capped_at_the_max_delay_even_with_jitter()
    {
        var options = new RetryOptions { MaxDelay = TimeSpan.FromSeconds(60) };
        Assert.Equal(TimeSpan.FromSeconds(60), RetrySchedule.Delay(options, 6, null, 0.999)); // 64 s nominal
        Assert.Equal(TimeSpan.FromSeconds(48), RetrySchedule.Delay(options, 20, null, 0.0)); // jitter applies below the cap
        Assert.InRange(RetrySchedule.Delay(options, 5, null, 0.99).TotalSeconds, 38.2, 38.3); // 32 s * 1.196, under the cap
        for (int retry = 0; retry < 40; retry++)
            Assert.True(RetrySchedule.Delay(options, retry, null, 0.999999) <= options.MaxDelay);
    }

    [Fact]
    public void A_providers_retry_after_wins_but_stays_capped()
    {
        var options = new RetryOptions();
        Assert.Equal(TimeSpan.FromSeconds(7), RetrySchedule.Delay(options, 0, TimeSpan.FromSeconds(7), 0.5));
        Assert.Equal(TimeSpan.FromSeconds(60), RetrySchedule.Delay(options, 0, TimeSpan.FromMinutes(10), 0.5));
    }

    [Fact]
    public async Task Transient_failures_are_retried_three_times_at_one_two_and_four_seconds()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, _ => ScriptedTransport.Transient());
        using var courier = Courier(time, transport);

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(1));

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(4, result.Attempts);
        Assert.Equal(4, transport.AttemptTimes.Count);
        var gaps = transport.AttemptTimes.Zip(transport.AttemptTimes.Skip(1), (a, b) => (b - a).TotalSeconds).ToArray();
        Assert.Equal(3, gaps.Length);
        Assert.InRange(gaps[0], 1.0, 1.02);
        Assert.InRange(gaps[1], 2.0, 2.02);
        Assert.InRange(gaps[2], 4.0, 4.02);
        Assert.Equal("451 try later", result.ServerReply);
        Assert.IsType<MailDeliveryException>(result.Error);
    }

    [Fact]
    public async Task Jittered_delays_stay_within_bounds_with_the_injected_random_source()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, _ => ScriptedTransport.Transient());
        using var courier = Courier(time, transport, random: new FixedRandom(0.0, 1.0 - 1e-9, 0.25));

        await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(1));

        var gaps = transport.AttemptTimes.Zip(transport.AttemptTimes.Skip(1), (a, b) => (b - a).TotalSeconds).ToArray();
        Assert.InRange(gaps[0], 0.8, 0.82);   // 1 s * 0.8
        Assert.InRange(gaps[1], 2.39, 2.42);  // 2 s * 1.2
        Assert.InRange(gaps[2], 3.6, 3.62);   // 4 s * 0.9
    }

    [Fact]
    public async Task Success_after_two_transient_failures_is_sent_once_with_three_attempts()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, n => n <= 2 ? ScriptedTransport.Transient() : null);
        using var courier = Courier(time, transport);

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(1));

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(3, result.Attempts);
        Assert.Equal("250 OK", result.ServerReply);
    }

    [Fact]
    public async Task Permanent_failures_are_not_retried()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, _ => ScriptedTransport.Permanent());
        using var courier = Courier(time, transport);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(FailureKind.Permanent, result.Failure!.Kind);
        Assert.Equal("550 no such user", result.ServerReply);
    }

    [Fact]
    public async Task Retry_count_and_delays_follow_the_options()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, _ => ScriptedTransport.Transient());
        using var courier = Courier(time, transport, new RetryOptions { MaxRetries = 5, BaseDelay = TimeSpan.FromSeconds(2), MaxDelay = TimeSpan.FromSeconds(10), JitterFraction = 0 });

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(2));

        Assert.Equal(6, result.Attempts);
        var gaps = transport.AttemptTimes.Zip(transport.AttemptTimes.Skip(1), (a, b) => Math.Round((b - a).TotalSeconds)).ToArray();
        Assert.Equal(new double[] { 2, 4, 8, 10, 10 }, gaps);
    }

    [Fact]
    public async Task Zero_retries_means_one_attempt()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, _ => ScriptedTransport.Transient());
        using var courier = Courier(time, transport, new RetryOptions { MaxRetries = 0 });

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(1, result.Attempts);
    }

    [Fact]
    public async Task Ambiguous_failures_are_uncertain_and_not_retried_by_default()
    {
        var time = new FakeTimeProvider();
        var ambiguous = new MailDeliveryException(new Failure(FailureKind.Ambiguous, FailureReason.Network, "reset after the body"));
        var transport = new ScriptedTransport(time, n => n == 1 ? ambiguous : null);
        using var courier = Courier(time, transport);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Uncertain, result.Status);
        Assert.Equal(1, result.Attempts);
        Assert.NotNull(result.MessageId);
    }

    [Fact]
    public async Task Ambiguous_failures_are_retried_when_asked()
    {
        var time = new FakeTimeProvider();
        var ambiguous = new MailDeliveryException(new Failure(FailureKind.Ambiguous, FailureReason.Network, "reset after the body"));
        var transport = new ScriptedTransport(time, n => n == 1 ? ambiguous : null);
        using var courier = Courier(time, transport, new RetryOptions { RetryAmbiguous = true });

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromSeconds(10));

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
    }

    [Fact]
    public async Task An_authentication_failure_stops_without_retry()
    {
        var time = new FakeTimeProvider();
        var auth = new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Authentication, "535 bad credentials"));
        var transport = new ScriptedTransport(time, _ => auth);
        using var courier = Courier(time, transport);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(1, result.Attempts);
        Assert.True(result.Failure!.StopsRun);
    }

    [Fact]
    public async Task Cancellation_during_a_backoff_ends_the_send_at_once()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, _ => ScriptedTransport.Transient());
        using var courier = Courier(time, transport, new RetryOptions { BaseDelay = TimeSpan.FromSeconds(30) });
        using var cts = new CancellationTokenSource();

        var task = courier.DeliverAsync(Clock.Message(), cts.Token);
        Assert.False(task.IsCompleted); // waiting in the 30 s backoff
        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task);
        Assert.Single(transport.AttemptTimes);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Per_message_events_are_raised_only_when_asked_for_but_retries_and_failures_always(bool reportEach)
    {
        var time = new FakeTimeProvider();
        var events = new List<DeliveryEvent>();
        var transport = new ScriptedTransport(time, attempt => attempt == 1 ? ScriptedTransport.Transient() : null);
        using var courier = new Courier(transport, new CourierOptions { Pacing = PacingOptions.None, ReportEachMessage = reportEach },
            new ClockProbe(time, _ => true), time, new FixedRandom(0.5), e => { lock (events) events.Add(e); });

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(1));

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Single(events, e => e.Kind == DeliveryEventKind.Retry);
        Assert.Equal(reportEach ? 2 : 0, events.Count(e => e.Kind == DeliveryEventKind.Attempt));
        Assert.Equal(reportEach ? 1 : 0, events.Count(e => e.Kind == DeliveryEventKind.Delivered));
        if (reportEach) Assert.Contains(events, e => e.Kind == DeliveryEventKind.Attempt && e.Text.EndsWith("(attempt 2 of 4).", StringComparison.Ordinal));
    }
}
