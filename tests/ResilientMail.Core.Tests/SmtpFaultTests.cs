using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.TestServers;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Tests;

/// <summary>The real SMTP transport against a scripted server on loopback. Real time, but short: delays are milliseconds.</summary>
public class SmtpFaultTests
{
    private static readonly RetryOptions FastRetry = new() { BaseDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(200) };

    private static Courier Courier(int port, TimeSpan? timeout = null, RetryOptions? retry = null, ConnectivityOptions? connectivity = null, List<DeliveryEvent>? events = null)
    {
        DeliveryEventSink sink = e => { if (events != null) lock (events) events.Add(e); };
        var transport = new SmtpTransport(new SmtpOptions { Host = "127.0.0.1", Port = port, Security = SmtpSecurity.None, Timeout = timeout ?? TimeSpan.FromSeconds(5) }, sink);
        return new Courier(transport, new CourierOptions
        {
            Retry = retry ?? FastRetry,
            Pacing = PacingOptions.None,
            Connectivity = connectivity ?? new ConnectivityOptions { CheckInterval = TimeSpan.FromMilliseconds(100), ProbeTimeout = TimeSpan.FromSeconds(1), WaitTimeout = TimeSpan.FromSeconds(10) },
        }, new TcpProbe(), TimeProvider.System, new Random(1), sink);
    }

    [Theory]
    [InlineData("421 4.3.2 Service shutting down")]
    [InlineData("451 4.3.0 Local error, try again")]
    [InlineData("452 4.3.1 Insufficient system storage")]
    public async Task A_transient_reply_then_success_delivers_once(string reply)
    {
        int dataEnds = 0;
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.DataEnd && Interlocked.Increment(ref dataEnds) == 1 ? Reaction.Say(reply) : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Single(server.Accepted);
        Assert.StartsWith("2.0.0 Queued", result.ServerReply);
        // 421 closes the session; after a 451/452 the retry goes in a fresh session too, since servers decide policy per session.
        Assert.Equal(2, server.Connections);
    }

    [Fact]
    public async Task A_block_the_server_decides_per_session_is_seen_lifted_by_the_retry()
    {
        // Postfix evaluates its access maps when a session starts: this server defers every RCPT of its first session only.
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Rcpt && s.Connection == 1 ? Reaction.Say("450 4.7.1 <someone@example.com>: Recipient address rejected: try again later") : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(2, server.Connections);
        lock (server.Log) Assert.Contains("1:Quit", server.Log); // the old session was ended politely
    }

    [Fact]
    public async Task A_permanent_refusal_keeps_the_session_for_the_next_message()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Rcpt && s.Argument.Contains("gone@") ? Reaction.Say("550 5.1.1 <gone@example.com>: no such user") : Reaction.Default);
        using var courier = Courier(server.Port);

        Assert.Equal(DeliveryStatus.Failed, (await courier.DeliverAsync(Clock.Message("gone@example.com"), default)).Status);
        Assert.Equal(DeliveryStatus.Sent, (await courier.DeliverAsync(Clock.Message("here@example.com"), default)).Status);
        Assert.Equal(1, server.Connections); // the healthy path costs no new session
    }

    [Fact]
    public async Task A_permanent_rejection_is_one_attempt_with_the_reply_in_the_error()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Rcpt ? Reaction.Say("550 5.1.1 <someone@example.com>: no such user") : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(FailureReason.RecipientRejected, result.Failure!.Reason);
        Assert.Contains("550 5.1.1", result.ServerReply);
        Assert.Contains("no such user", result.Error!.Message);
        Assert.IsType<MailKit.Net.Smtp.SmtpCommandException>(result.Error.InnerException);
        Assert.Empty(server.Accepted);
    }

    [Fact]
    public async Task A_server_that_never_answers_times_out_at_the_set_timeout_and_is_retried()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Greeting && s.Connection == 1 ? Reaction.Hang : Reaction.Default);
        var events = new List<DeliveryEvent>();
        using var courier = Courier(server.Port, timeout: TimeSpan.FromMilliseconds(800), events: events);
        var clock = Stopwatch.StartNew();

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.75, 4.0);
        Assert.Single(server.Accepted);
        Assert.Contains(events, e => e.Kind == DeliveryEventKind.Retry && e.Text.Contains("Timeout"));
    }

    [Fact]
    public async Task Connection_refused_until_the_server_starts_waits_then_delivers()
    {
        await using var server = new ScriptedSmtpServer(listen: false); // bound, refusing
        var events = new List<DeliveryEvent>();
        bool HasWaited() { lock (events) return events.Any(e => e.Kind == DeliveryEventKind.WaitingForConnection); }
        using var courier = Courier(server.Port, events: events);

        var send = courier.DeliverAsync(Clock.Message(), default);
        // The server stays down until the sender says it is waiting for it (not failing), however slow the machine.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!HasWaited() && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.True(HasWaited(), "the sender never started waiting for the connection");
        Assert.False(send.IsCompleted);
        server.Listen();

        var result = await send.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Single(server.Accepted);
        lock (events)
        {
            Assert.Single(events, e => e.Kind == DeliveryEventKind.WaitingForConnection);
            Assert.Single(events, e => e.Kind == DeliveryEventKind.ConnectionRestored);
        }
    }

    [Fact]
    public async Task A_reset_while_the_message_is_still_being_written_is_transient_and_it_is_sent_once()
    {
        await using var server = new ScriptedSmtpServer(resetAfterDataBytes: 40);
        using var courier = Courier(server.Port);
        // Large enough that the reset reaches the client while it is still writing: the final dot cannot have gone.
        var message = Clock.Message();
        message.Body = new MimeKit.TextPart("plain") { Text = new string('x', 76) + string.Concat(Enumerable.Repeat("\r\n" + new string('y', 76), 60_000)) };

        var result = await courier.DeliverAsync(message, default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Single(server.Accepted);
    }

    [Fact]
    public async Task A_reset_after_a_small_message_was_handed_to_the_connection_is_uncertain_not_sent()
    {
        // The server cut the DATA short, but the whole small message had already gone into the socket:
        // from the client's side this looks exactly like a reset after the final dot, so it must be Uncertain.
        await using var server = new ScriptedSmtpServer(resetAfterDataBytes: 40);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Uncertain, result.Status);
        Assert.Equal(1, result.Attempts);
    }

    [Fact]
    public async Task A_reset_after_the_whole_message_is_uncertain_never_sent()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.DataEnd && s.Connection == 1 ? Reaction.Drop : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Uncertain, result.Status);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(FailureKind.Ambiguous, result.Failure!.Kind);
        Assert.Single(server.Accepted); // the server did get it: counting it as failed-and-retried would send it twice
    }

    [Fact]
    public async Task Silence_after_the_whole_message_is_uncertain_too()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.DataEnd && s.Connection == 1 ? Reaction.Hang : Reaction.Default);
        using var courier = Courier(server.Port, timeout: TimeSpan.FromMilliseconds(800));

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Uncertain, result.Status);
        Assert.Equal(FailureReason.Timeout, result.Failure!.Reason);
    }

    [Fact]
    public async Task With_retry_uncertain_a_reset_after_the_body_is_sent_again()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.DataEnd && s.Connection == 1 ? Reaction.Drop : Reaction.Default);
        using var courier = Courier(server.Port, retry: FastRetry with { RetryAmbiguous = true });

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(2, server.Accepted.Count); // the documented price of -RetryUncertain
    }

    [Fact]
    public async Task One_connection_serves_many_messages_and_is_closed_with_quit()
    {
        await using var server = new ScriptedSmtpServer();
        using var courier = Courier(server.Port);

        for (int i = 0; i < 10; i++)
            Assert.Equal(DeliveryStatus.Sent, (await courier.DeliverAsync(Clock.Message($"r{i}@example.com"), default)).Status);
        await courier.CloseAsync(default);

        Assert.Equal(10, server.Accepted.Count);
        Assert.Equal(1, server.Connections);
        // CloseAsync returns after the server's 221, and the server notes QUIT before it answers: no wait is needed.
        lock (server.Log) Assert.Contains("1:Quit", server.Log);
    }

    [Fact]
    public async Task A_dropped_connection_between_messages_is_reopened()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Mail && s.Connection == 1 && s.Message == 2 ? Reaction.Say("421 4.4.2 Idle timeout, closing") : Reaction.Default);
        var events = new List<DeliveryEvent>();
        using var courier = Courier(server.Port, events: events);

        var first = await courier.DeliverAsync(Clock.Message(), default);
        var second = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, first.Status);
        Assert.Equal(DeliveryStatus.Sent, second.Status);
        Assert.Equal(2, server.Connections);
        Assert.Contains(events, e => e.Kind == DeliveryEventKind.Reconnect);
    }

    [Fact]
    public async Task Cancelling_a_send_stops_it_within_a_second()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.DataEnd ? Reaction.Hang : Reaction.Default);
        using var courier = Courier(server.Port, timeout: TimeSpan.FromSeconds(30));
        using var cts = new CancellationTokenSource();

        var send = courier.DeliverAsync(Clock.Message(), cts.Token);
        // The whole message has reached the server, which now holds back its reply: the cancel comes during DATA.
        Assert.True(await Eventually.Until(() => { lock (server.Log) return server.Log.Contains("1:DataEnd:(silent)"); }));
        var clock = Stopwatch.StartNew();
        cts.Cancel();

        var canceled = await Assert.ThrowsAsync<DeliveryCanceledException>(() => send.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed}");
        Assert.True(canceled.MayHaveBeenSent); // it was cancelled after the body was on the wire, so it may have been delivered
    }
}
