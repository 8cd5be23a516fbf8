using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Time.Testing;
using ResilientMail.Core.Campaigns;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;
using ResilientMail.Core.Tests.Support;
using Xunit;

namespace ResilientMail.Core.Tests;

/// <summary>The pace a campaign finds when the server publishes none, against servers that limit a client as real ones do.</summary>
public class AdaptivePaceTests
{
    /// <summary>
    /// Postfix's anvil: at most <see cref="Limit"/> messages in a window that starts with the first message after the last
    /// window ended (smtpd_client_message_rate_limit over anvil_rate_time_unit). Every message it takes is recorded.
    /// </summary>
    private sealed class FixedWindowServer
    {
        private readonly TimeSpan _window;
        private DateTimeOffset _start = DateTimeOffset.MinValue;
        private int _count;
        public readonly int Limit;
        public readonly List<DateTimeOffset> Taken = new();
        public int Refused;
        public FixedWindowServer(int limit, TimeSpan window) { Limit = limit; _window = window; }
        public bool TryTake(DateTimeOffset now)
        {
            lock (Taken)
            {
                if (now - _start >= _window) { _start = now; _count = 0; }
                if (_count >= Limit) { Refused++; return false; }
                _count++;
                Taken.Add(now);
                return true;
            }
        }
    }

    private static readonly Failure TooFast = new(FailureKind.Transient, FailureReason.Throttled, "450 4.7.1 Error: too much mail from 127.0.0.1") { ServerReply = "450 4.7.1 Error: too much mail from 127.0.0.1" };

    /// <summary>Sends <paramref name="messages"/> over <paramref name="connections"/> connections at the pace's turns, each taking 5 ms.</summary>
    private static async Task<TimeSpan> RunAsync(FakeTimeProvider time, AdaptivePace pace, Func<DateTimeOffset, bool> server, int messages, int connections)
    {
        var start = time.GetUtcNow();
        int next = 0, done = 0;
        var again = new Queue<int>();
        async Task Connection()
        {
            while (Volatile.Read(ref done) < messages)
            {
                int item;
                lock (again)
                {
                    if (again.Count > 0) item = again.Dequeue();
                    else if (next < messages) item = next++;
                    else item = -1;
                }
                if (item < 0) { await time.Delay(TimeSpan.FromMilliseconds(5)).ConfigureAwait(false); continue; }
                long ticket = await pace.WaitTurnAsync(default).ConfigureAwait(false);
                await time.Delay(TimeSpan.FromMilliseconds(5)).ConfigureAwait(false);
                if (server(time.GetUtcNow())) { pace.Taken(ticket); Interlocked.Increment(ref done); }
                else { pace.Refused(ticket, TooFast); lock (again) again.Enqueue(item); }
            }
        }
        // Every continuation runs inline in the clock's Advance (no thread pool, no context): the simulation is deterministic.
        var all = Task.WhenAll(Enumerable.Range(0, connections).Select(_ => Connection()));
        await Clock.Drive(time, all, TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(5));
        return time.GetUtcNow() - start;
    }

    [Fact]
    public async Task Against_20_a_second_and_2_connections_1000_messages_finish_within_10_percent_of_the_policy()
    {
        var time = new FakeTimeProvider();
        var events = new List<DeliveryEvent>();
        var pace = new AdaptivePace(time, e => { lock (events) events.Add(e); });
        var server = new FixedWindowServer(20, TimeSpan.FromSeconds(1));
        var took = await RunAsync(time, pace, server.TryTake, 1000, 2);

        Assert.Equal(1000, server.Taken.Count);
        var minimum = TimeSpan.FromSeconds(49); // 50 windows of 20; the last starts 49 s after the first
        Assert.True(took <= minimum * 1.10, $"took {took.TotalSeconds:0.0} s; the policy allows {minimum.TotalSeconds} s");
        Assert.InRange(pace.Rate!.Value, 17, 21);
        Assert.Single(events, e => e.Kind == DeliveryEventKind.Warning); // one warning, when the server first said so
        Assert.True(server.Refused < 100, $"{server.Refused} refusals: the pace kept hammering the server");
    }

    [Fact]
    public async Task Against_10_a_minute_40_messages_finish_close_to_the_policy_and_settle_near_10_a_minute()
    {
        var time = new FakeTimeProvider();
        var server = new FixedWindowServer(10, TimeSpan.FromMinutes(1));
        var pace = new AdaptivePace(time);
        var took = await RunAsync(time, pace, server.TryTake, 40, 4);

        Assert.Equal(40, server.Taken.Count);
        var minimum = TimeSpan.FromMinutes(3);
        Assert.True(took <= minimum * 1.15, $"took {took.TotalSeconds:0.0} s; the policy allows {minimum.TotalSeconds} s");
        Assert.Contains("a minute", pace.Settled);
        Assert.InRange(pace.Rate!.Value * 60, 7, 11);
        // While it held, one probe at a time: about one refusal per probe gap, never a burst.
        Assert.True(server.Refused < 80, $"{server.Refused} refusals");
    }

    [Fact]
    public async Task A_server_that_never_says_too_fast_is_never_held()
    {
        var time = new FakeTimeProvider();
        var pace = new AdaptivePace(time);
        var took = await RunAsync(time, pace, _ => true, 500, 2);
        Assert.Null(pace.Rate);
        Assert.Null(pace.Settled);
        Assert.True(took <= TimeSpan.FromSeconds(1.3), $"took {took.TotalSeconds:0.00} s: 250 messages of 5 ms a connection");
    }

    [Fact]
    public void The_probe_gap_is_a_fifth_of_the_time_held_from_a_quarter_second_to_five_seconds()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(250), AdaptivePace.ProbeGap(TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromSeconds(2), AdaptivePace.ProbeGap(TimeSpan.FromSeconds(10)));
        Assert.Equal(TimeSpan.FromSeconds(5), AdaptivePace.ProbeGap(TimeSpan.FromMinutes(5)));
    }

    [Fact]
    public void Rate_limit_replies_are_throttling_and_greylisting_is_not()
    {
        Assert.Equal(FailureReason.Throttled, SmtpFailureClassifier.FromReply(450, "4.7.1 Error: too much mail from 127.0.0.1").Reason);
        Assert.Equal(FailureReason.Throttled, SmtpFailureClassifier.FromReply(421, "4.7.0 Too many messages, rate limited; slow down").Reason);
        Assert.Equal(FailureReason.Throttled, SmtpFailureClassifier.FromReply(451, "4.7.1 Sending rate limit exceeded").Reason);
        Assert.Equal(FailureReason.ServerBusy, SmtpFailureClassifier.FromReply(450, "4.2.0 <a@example.org>: Recipient address rejected: Greylisted, try again in 60 seconds").Reason);
        Assert.Equal(FailureReason.ServerBusy, SmtpFailureClassifier.FromReply(452, "4.5.3 Too many recipients").Reason);
        Assert.Equal(TimeSpan.FromSeconds(60), SmtpFailureClassifier.FromReply(450, "4.2.0 Greylisted, try again in 60 seconds").RetryAfter);
        Assert.Equal(TimeSpan.FromMinutes(5), SmtpFailureClassifier.FromReply(451, "4.7.1 Greylisted for 5 minutes").RetryAfter);
        Assert.Null(SmtpFailureClassifier.FromReply(451, "4.7.1 Greylisted, see http://postgrey.schweikert.ch/help/example.org.html").RetryAfter);
    }
}
