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
    /// <param name="refusalSleep">How long the server holds back a refusal (Postfix: smtpd_error_sleep_time, 1 s).</param>
    private static async Task<TimeSpan> RunAsync(FakeTimeProvider time, AdaptivePace pace, Func<DateTimeOffset, bool> server, int messages, int connections, TimeSpan refusalSleep = default)
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
                else
                {
                    if (refusalSleep > TimeSpan.Zero) await time.Delay(refusalSleep).ConfigureAwait(false);
                    pace.Refused(ticket, TooFast);
                    lock (again) again.Enqueue(item);
                }
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
        // A size limit is about the message, not the pace.
        Assert.Equal(FailureReason.ServerBusy, SmtpFailureClassifier.FromReply(452, "4.3.4 Message size exceeds fixed limit").Reason);
        Assert.Equal(TimeSpan.FromSeconds(60), SmtpFailureClassifier.FromReply(450, "4.2.0 Greylisted, try again in 60 seconds").RetryAfter);
        Assert.Equal(TimeSpan.FromMinutes(5), SmtpFailureClassifier.FromReply(451, "4.7.1 Greylisted for 5 minutes").RetryAfter);
        Assert.Null(SmtpFailureClassifier.FromReply(451, "4.7.1 Greylisted, see http://postgrey.schweikert.ch/help/example.org.html").RetryAfter);
    }
}

/// <summary>The campaign runner with the pace: throttles cost no attempt, a published quota is read again when throttled.</summary>
public sealed class PacedCampaignTests : IDisposable
{
    private readonly string _dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rm-paced-" + Guid.NewGuid().ToString("n"));
    public PacedCampaignTests() => System.IO.Directory.CreateDirectory(_dir);
    public void Dispose() { try { System.IO.Directory.Delete(_dir, true); } catch { } }

    private static readonly CampaignDefinition Definition = new() { Name = "p", From = "news@example.com", Subject = "Hi", TextBody = "Body", Created = DateTimeOffset.UnixEpoch };

    private static Dictionary<string, object?> Row(string email) => new(StringComparer.OrdinalIgnoreCase) { ["Email"] = email };

    /// <summary>A provider whose quota can change, and which throttles (no Retry-After, as SES does) above it.</summary>
    private sealed class QuotaTransport : IMailTransport, IPublishesQuota
    {
        private readonly TimeProvider _time;
        private readonly Shared _shared;
        public sealed class Shared { public double Rate = 10; public int QuotaReads; public readonly List<DateTimeOffset> Sent = new(); public int Throttled; }
        public QuotaTransport(TimeProvider time, Shared shared) { _time = time; _shared = shared; }
        public string Description => "Amazon SES (test)";
        public Endpoint Endpoint { get; } = new("127.0.0.1", 2525);
        public TimeSpan Timeout => TimeSpan.FromSeconds(30);
        public Task<ProviderQuota> GetQuotaAsync(CancellationToken cancellationToken)
        {
            lock (_shared) { _shared.QuotaReads++; return Task.FromResult(new ProviderQuota(_shared.Rate, 100000, 0, true) { Source = "test" }); }
        }
        public Task<Receipt> SendAsync(MimeKit.MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var now = _time.GetUtcNow();
            lock (_shared)
            {
                int inLastSecond = _shared.Sent.Count(t => now - t < TimeSpan.FromSeconds(1));
                if (inLastSecond >= _shared.Rate)
                {
                    _shared.Throttled++;
                    throw new MailDeliveryException(new Failure(FailureKind.Transient, FailureReason.Throttled, "Maximum sending rate exceeded.") { StatusCode = 429 });
                }
                _shared.Sent.Add(now);
            }
            return Task.FromResult(new Receipt(message.MessageId ?? "", "ok"));
        }
        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public void Dispose() { }
    }

    [Fact]
    public async Task A_throttle_reads_the_published_quota_again_and_the_campaign_keeps_to_the_new_rate()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        var shared = new QuotaTransport.Shared();
        var events = new List<DeliveryEvent>();
        var file = System.IO.Path.Combine(_dir, "p.journal.jsonl");
        var previous = JournalSnapshot.Load(file);
        using var journal = CampaignJournal.Open(file, time);
        journal.WriteDefinition(Definition);
        var limits = await ProviderLimits.ForCampaignAsync(new SesDescription(), () => new QuotaTransport(time, shared), true, 2, null, 0, default);
        Assert.True(limits.RateFromProvider);
        var options = limits.ApplyTo(new CampaignOptions { Pacing = PacingOptions.None, Deferral = DeferralOptions.None,
            Courier = new CourierOptions { Retry = new RetryOptions { MaxRetries = 3, BaseDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1) } } });
        Assert.True(options.PaceFromQuota);
        var runner = new CampaignRunner(Definition, journal, previous, _ => new QuotaTransport(time, shared), options,
            new ClockProbe(time, _ => true), time, new Random(1), e => { lock (events) events.Add(e); }, null);
        runner.Start("test");
        var feeding = Task.Run(async () =>
        {
            for (int i = 1; i <= 60; i++)
            {
                if (i == 20) lock (shared) shared.Rate = 2; // the account's limit is lowered while the campaign runs
                await runner.SubmitAsync(Row($"q{i}@example.com"), i, default);
            }
            runner.InputComplete(60);
            return await runner.CompleteAsync();
        });
        var summary = await Clock.RunWorkers(time, feeding);

        Assert.Equal(60, summary.Sent);
        Assert.Equal(0, summary.Failed);
        Assert.True(shared.Throttled > 0);
        Assert.True(shared.QuotaReads >= 2, "the quota was read at the start and again after the throttle");
        Assert.Contains(events, e => e.Kind == DeliveryEventKind.Warning && e.Text.Contains("read again, allows 2 per 1 s now (was 10 per 1 s)"));
        // After the new quota was read, never more than 2 in any second.
        List<DateTimeOffset> sent;
        lock (shared) sent = shared.Sent.ToList();
        var late = sent.Skip(sent.Count - 20).ToList();
        Assert.All(late, t => Assert.True(late.Count(u => u <= t && t - u < TimeSpan.FromSeconds(1)) <= 2));
    }
}
