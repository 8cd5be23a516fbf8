using Microsoft.Extensions.Time.Testing;
using MimeKit;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Messages;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Tests;

/// <summary>Send-ResilientMail's ordered, bounded queue, on fake time: order, back-pressure and the stop rule.</summary>
public class SendQueueTests
{
    private static readonly MessageTemplate Template = new(new MessageSpec { From = "it@example.com", To = new[] { "{{Email}}" }, Subject = "s", TextBody = "b" });

    private static QueuedMessage Item(string to) =>
        new(MessageBuilder.Prepare(Template, new Dictionary<string, object?> { ["Email"] = to }), to);

    private static Courier Courier(IMailTransport transport, FakeTimeProvider time) =>
        new(transport, new CourierOptions { Pacing = PacingOptions.None, Retry = new RetryOptions { MaxRetries = 0 } }, new ClockProbe(time, _ => true), time, new FixedRandom(), null);

    [Fact]
    public async Task Results_come_in_input_order_with_invalid_records_in_their_turn()
    {
        var time = new FakeTimeProvider();
        var finished = new List<string>();
        var queue = new SendQueue(Courier(new ScriptedTransport(time, _ => null), time), i => { lock (finished) finished.Add(i.Label); }, () => { });
        queue.Start(default);
        Assert.True(queue.TryAdd(Item("a@example.com")));
        Assert.True(queue.TryAdd(new QueuedMessage(new MessageValidationException(ValidationProblem.InvalidAddress, "bad"), "not-an-address", "s")));
        Assert.True(queue.TryAdd(Item("c@example.com")));
        queue.Complete();
        await queue.Completion;

        Assert.Equal(new[] { "a@example.com", "not-an-address", "c@example.com" }, finished);
        Assert.Equal((2, 1, 0), (queue.Sent, queue.Failed, queue.Uncertain));
        Assert.Null(queue.StoppedBy);
    }

    [Fact]
    public async Task A_full_queue_refuses_more_until_the_sender_has_taken_it_down_and_says_so()
    {
        var time = new FakeTimeProvider();
        var release = new TaskCompletionSource();
        var transport = new BlockingTransport(release.Task);
        // The queue's promise to the reader: it calls wake when there is room again. The test waits for that call, not a clock.
        SendQueue? queue = null;
        TaskCompletionSource? room = null; // armed once the queue is full
        queue = new SendQueue(Courier(transport, time), _ => { }, () => { if (queue!.ReadyForMore) Volatile.Read(ref room)?.TrySetResult(); });
        queue.Start(default);
        Assert.True(queue.TryAdd(Item("first@example.com")));
        await transport.Started.Task; // the first message is on the wire; the queue holds the next ones
        for (int i = 0; i < SendQueue.Capacity; i++) Assert.True(queue.TryAdd(Item($"r{i}@example.com")));
        Assert.False(queue.TryAdd(Item("one-too-many@example.com")));
        Assert.False(queue.ReadyForMore);
        var armed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref room, armed);

        release.SetResult();
        await armed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(queue.ReadyForMore);
        queue.Complete();
        await queue.Completion;
        Assert.Equal(SendQueue.Capacity + 1, queue.Sent);
    }

    [Fact]
    public async Task A_failure_that_stops_the_run_ends_the_sender_and_nothing_after_it_is_sent()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, n => n == 2
            ? new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Authentication, "535 5.7.8 bad credentials"))
            : null);
        var finished = new List<string>();
        var queue = new SendQueue(Courier(transport, time), i => { lock (finished) finished.Add(i.Label); }, () => { });
        queue.Start(default);
        foreach (var to in new[] { "a@example.com", "b@example.com", "c@example.com", "d@example.com" }) queue.TryAdd(Item(to));
        await queue.Completion;

        Assert.Equal("b@example.com", queue.StoppedBy?.Label);
        Assert.Equal(new[] { "a@example.com", "b@example.com" }, finished);
        Assert.Equal(2, transport.AttemptTimes.Count);
        Assert.False(queue.TryAdd(Item("e@example.com")));
        Assert.True(queue.ReadyForMore); // the reader is not left waiting for room that never comes
    }

    /// <summary>Holds every send until released.</summary>
    private sealed class BlockingTransport : IMailTransport
    {
        private readonly Task _release;
        public BlockingTransport(Task release) => _release = release;
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public string Description => "blocking";
        public Endpoint Endpoint { get; } = new("127.0.0.1", 2525);
        public TimeSpan Timeout => TimeSpan.FromSeconds(30);

        public async Task<Receipt> SendAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            Started.TrySetResult();
            await _release.WaitAsync(cancellationToken);
            return new Receipt(message.MessageId ?? "", "250 OK");
        }

        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public void Dispose() { }
    }
}
