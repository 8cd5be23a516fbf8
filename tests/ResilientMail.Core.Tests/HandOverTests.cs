using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.Core.Transports;
using ResilientMail.TestServers;

namespace ResilientMail.Core.Tests;

/// <summary>
/// A message whose hand-over record must be durable first (a campaign with its journal in a blob store): SMTP waits for
/// it at the point of no return, after the envelope and before the data; any other transport gets the message only once
/// it is durable. Real SMTP on loopback; the waits are milliseconds and bounded.
/// </summary>
public class HandOverTests
{
    private static Courier SmtpCourier(int port) => new(
        new SmtpTransport(new SmtpOptions { Host = "127.0.0.1", Port = port, Security = SmtpSecurity.None, Timeout = TimeSpan.FromSeconds(5) }, null),
        new CourierOptions { Pacing = PacingOptions.None, Retry = new RetryOptions { BaseDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(100) } },
        new TcpProbe(), TimeProvider.System, new Random(1), null);

    [Fact]
    public async Task SMTP_sends_the_envelope_while_the_record_is_written_and_the_data_only_after_it_is_durable()
    {
        var steps = new List<(Phase Phase, bool Durable)>();
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new ScriptedSmtpServer(s =>
        {
            lock (steps) steps.Add((s.Phase, durable.Task.IsCompleted));
            return Reaction.Default;
        });
        using var courier = SmtpCourier(server.Port);

        var sending = courier.DeliverAsync(Clock.Message(), durable.Task, default);
        // The store answers only once the client stands at its point of no return, the envelope done and the data not sent.
        Assert.True(await Eventually.Until(() => SendAttempt.WaitingForHandOver > 0));
        lock (steps) Assert.DoesNotContain(steps, s => s.Phase is Phase.DataStart or Phase.DataEnd);
        durable.SetResult();
        var result = await sending;

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Single(server.Accepted);
        lock (steps)
        {
            Assert.Contains(steps, s => s.Phase == Phase.Mail && !s.Durable); // the envelope did not wait for the store
            Assert.All(steps.Where(s => s.Phase is Phase.DataStart or Phase.DataEnd), s => Assert.True(s.Durable)); // the data did
        }
    }

    [Fact]
    public async Task SMTP_sends_no_data_when_the_record_fails_or_is_late_and_the_next_message_goes_in_a_fresh_session()
    {
        var saved = SendAttempt.HandOverPatience;
        SendAttempt.HandOverPatience = TimeSpan.FromMilliseconds(200);
        try
        {
            await using var server = new ScriptedSmtpServer(_ => Reaction.Default);
            using var courier = SmtpCourier(server.Port);

            var failed = await Assert.ThrowsAsync<HandOverException>(() => courier.DeliverAsync(Clock.Message(), Task.FromException(new IOException("store down")), default));
            Assert.False(failed.Late);
            Assert.Equal("store down", failed.InnerException!.Message);

            var never = new TaskCompletionSource();
            var late = await Assert.ThrowsAsync<HandOverException>(() => courier.DeliverAsync(Clock.Message(), never.Task, default));
            Assert.True(late.Late);
            Assert.Empty(server.Accepted); // neither message's data was sent

            var next = await courier.DeliverAsync(Clock.Message(), Task.CompletedTask, default);
            Assert.Equal(DeliveryStatus.Sent, next.Status);
            Assert.Equal(1, next.Attempts); // a stopped hand-over is not an attempt of the message
            Assert.Equal(0, SendAttempt.WaitingForHandOver);
            Assert.Single(server.Accepted);
            Assert.True(server.Connections >= 2);
        }
        finally { SendAttempt.HandOverPatience = saved; }
    }

    [Fact]
    public async Task Any_other_transport_gets_the_message_only_once_the_record_is_durable()
    {
        var transport = new ScriptedTransport(TimeProvider.System, _ => null);
        using var courier = new Courier(transport, new CourierOptions { Pacing = PacingOptions.None }, new ClockProbe(TimeProvider.System, _ => true), TimeProvider.System, new Random(1), null);
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var sending = courier.DeliverAsync(Clock.Message(), durable.Task, default);
        await Task.Yield();
        Assert.Empty(transport.AttemptTimes);
        durable.SetResult();
        Assert.Equal(DeliveryStatus.Sent, (await sending).Status);
        Assert.Single(transport.AttemptTimes);

        await Assert.ThrowsAsync<HandOverException>(() => courier.DeliverAsync(Clock.Message(), Task.FromException(new IOException("store down")), default));
        Assert.Single(transport.AttemptTimes);
    }
}
