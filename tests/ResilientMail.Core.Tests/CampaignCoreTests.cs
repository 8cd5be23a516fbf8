using Microsoft.Extensions.Time.Testing;
using ResilientMail.Core.Campaigns;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.Core.Transports;
using ResilientMail.TestServers;

namespace ResilientMail.Core.Tests;

public sealed class CampaignCoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "rm-tests-" + Guid.NewGuid().ToString("n"));
    public CampaignCoreTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { try { Directory.Delete(_dir, true); } catch { } }

    private string JournalFile => Path.Combine(_dir, "c.journal.jsonl");

    private static readonly CampaignDefinition Definition = new()
    {
        Name = "c", From = "news@example.com", Subject = "Hi {{FirstName}}", TextBody = "Body {{FirstName}}",
        UnsubscribeUrl = "https://example.com/u?e={{Email}}", Created = DateTimeOffset.UnixEpoch,
    };

    private static Dictionary<string, object?> Row(string email, string name = "N") =>
        new(StringComparer.OrdinalIgnoreCase) { ["Email"] = email, ["FirstName"] = name };

    private sealed class Run : IDisposable
    {
        public readonly List<CampaignOutcome> Outcomes = new();
        public readonly List<ScriptedTransport> Transports = new();
        public CampaignRunner Runner = null!;
        public CampaignJournal Journal = null!;
        public void Dispose() => Journal.Dispose();
    }

    private Run Start(Func<int, Exception?>? outcome = null, CampaignOptions? options = null, CampaignDefinition? definition = null, FakeTimeProvider? clock = null)
    {
        var run = new Run();
        var time = clock ?? new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56)); // fake time: nothing in these tests waits on the clock
        var previous = JournalSnapshot.Load(JournalFile);
        run.Journal = CampaignJournal.Open(JournalFile, time);
        if (previous.Definition == null) run.Journal.WriteDefinition(definition ?? Definition);
        int sends = 0;
        var opts = options ?? new CampaignOptions();
        // Deferral only where a test asks for it: the others report a transient failure at once, as they were written for.
        opts = opts with { Pacing = PacingOptions.None, Courier = opts.Courier with { Retry = new RetryOptions { MaxRetries = 0 } },
                           Deferral = ReferenceEquals(opts.Deferral, DeferralOptions.Default) ? DeferralOptions.None : opts.Deferral };
        run.Runner = new CampaignRunner(previous.Definition ?? definition ?? Definition, run.Journal, previous, _ =>
        {
            var t = new ScriptedTransport(time, _ => (outcome ?? (_ => null))(Interlocked.Increment(ref sends)));
            lock (run.Transports) run.Transports.Add(t);
            return t;
        }, opts, new ClockProbe(time, _ => true), time, new Random(1), null, o => { lock (run.Outcomes) run.Outcomes.Add(o); });
        run.Runner.Start("test");
        return run;
    }

    [Fact]
    public async Task Every_row_is_sent_once_and_journaled()
    {
        using var run = Start();
        for (int i = 1; i <= 20; i++) await run.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
        run.Runner.InputComplete(20);
        var summary = await run.Runner.CompleteAsync();

        Assert.Equal(CampaignState.Completed, summary.State);
        Assert.Equal(20, summary.Sent);
        Assert.Equal(20, run.Transports.Sum(t => t.AttemptTimes.Count));
        Assert.All(run.Outcomes, o => Assert.Equal(CampaignRecipientStatus.Sent, o.Status));
    }

    [Fact]
    public async Task A_daily_recipient_cap_pauses_with_the_time_it_may_resume_and_a_resume_a_day_later_finishes()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        var capped = new CampaignOptions { RecipientsPerDay = 5 };
        async Task<CampaignSummary> RunAll(Run run)
        {
            for (int i = 1; i <= 8; i++)
            {
                try { await run.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default); }
                catch (CampaignPausedException) { break; }
            }
            if (!run.Runner.IsPaused) run.Runner.InputComplete(8);
            return await run.Runner.CompleteAsync();
        }
        CampaignSummary first;
        using (var run = Start(options: capped, clock: time)) first = await RunAll(run);
        Assert.Equal(CampaignState.Paused, first.State);
        Assert.Equal(5, first.Sent);
        Assert.Contains("5 recipients in 24 hours", first.PauseReason);
        Assert.Contains("may resume after 2026-12-02 09:00 UTC", first.PauseReason);
        Assert.True(first.StoppedByLimit); // an expected end: the cmdlet warns, it does not fail the job

        time.Advance(TimeSpan.FromHours(2)); // too early: the journal's sends still count
        CampaignSummary early;
        using (var run = Start(options: capped, clock: time)) early = await RunAll(run);
        Assert.Equal(CampaignState.Paused, early.State);
        Assert.Equal(5, early.Sent);

        time.Advance(TimeSpan.FromHours(22)); // a day after the first sends
        CampaignSummary last;
        using (var run = Start(options: capped, clock: time)) last = await RunAll(run);
        Assert.Equal(CampaignState.Completed, last.State);
        Assert.Equal(8, last.Sent);
    }

    [Fact]
    public async Task At_the_run_time_limit_the_run_starts_nothing_new_leaves_nothing_uncertain_and_the_next_run_finishes()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        // One message a minute, so that a ten-minute limit falls in the middle of the list.
        var limited = new CampaignOptions { RateLimit = new RateLimit(1, TimeSpan.FromMinutes(1)), MaxRunDuration = TimeSpan.FromMinutes(10), Concurrency = 2 };
        async Task<CampaignSummary> Feed(Run run)
        {
            for (int i = 1; i <= 30; i++)
            {
                try { await run.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default); }
                catch (CampaignPausedException) { break; }
            }
            if (!run.Runner.IsPaused) run.Runner.InputComplete(30);
            return await run.Runner.CompleteAsync();
        }
        CampaignSummary first;
        using (var run = Start(options: limited, clock: time))
        {
            first = await Clock.RunWorkers(time, Task.Run(() => Feed(run)));
        }
        Assert.Equal(CampaignState.Paused, first.State);
        Assert.True(first.StoppedByLimit);
        Assert.Contains("time limit (10m00s)", first.PauseReason);
        // At most one a minute for ten minutes (how many depends on how fast the workers keep up with the driven clock),
        // and the stop came at the limit, not before.
        Assert.InRange(first.Sent, 1, 11);
        Assert.True(first.Duration >= TimeSpan.FromMinutes(10), $"paused after {first.Duration}");
        Assert.Equal(0, first.Uncertain);

        var after = JournalSnapshot.Load(JournalFile);
        Assert.Equal(0, after.Count(RecipientState.Sending));
        Assert.Equal(0, after.Count(RecipientState.Uncertain));

        CampaignSummary second;
        using (var run = Start(options: new CampaignOptions { Concurrency = 2 }, clock: time)) second = await Feed(run);
        Assert.Equal(CampaignState.Completed, second.State);
        Assert.Equal(30, second.Sent);
        Assert.Equal(30 - first.Sent, second.SentThisRun);
        Assert.Equal(0, second.Uncertain);
    }

    [Fact]
    public async Task Connections_the_server_refuses_cost_no_message_and_the_campaign_settles_at_the_connections_it_gets()
    {
        // Postfix's smtpd_client_connection_count_limit = 2: a third connection gets 421 4.7.0 at its greeting.
        ScriptedSmtpServer? server = null;
        await using var smtp = server = new ScriptedSmtpServer(step => step.Phase == Phase.Greeting && server!.Open > 2
            ? Reaction.Say("421 4.7.0 mx.example.com Error: too many connections from 127.0.0.1") : Reaction.Default);
        var events = new List<DeliveryEvent>();
        var previous = JournalSnapshot.Load(JournalFile);
        using var journal = CampaignJournal.Open(JournalFile);
        journal.WriteDefinition(Definition);
        var outcomes = new List<CampaignOutcome>();
        var runner = new CampaignRunner(Definition, journal, previous, e => new SmtpTransport(new SmtpOptions { Host = "127.0.0.1", Port = smtp.Port }, e),
            new CampaignOptions { Pacing = PacingOptions.None, Concurrency = 4, Courier = new CourierOptions { Retry = new RetryOptions { MaxRetries = 3, BaseDelay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(5) } } },
            new ClockProbe(TimeProvider.System, _ => true), TimeProvider.System, new Random(1), e => { lock (events) events.Add(e); }, o => { lock (outcomes) outcomes.Add(o); });
        runner.Start("test");
        for (int i = 1; i <= 40; i++) await runner.SubmitAsync(Row($"c{i}@example.com"), i, default);
        runner.InputComplete(40);
        var summary = await runner.CompleteAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(CampaignState.Completed, summary.State);
        Assert.Equal(40, summary.Sent);
        Assert.Equal(0, summary.Failed);
        Assert.Equal(40, smtp.Accepted.Count);                          // each once
        Assert.All(outcomes, o => Assert.Equal(1, o.Attempts));         // no message spent a retry on a refused connection
        var warnings = events.Where(e => e.Kind == DeliveryEventKind.Warning && e.Text.Contains("refused a new connection")).ToList();
        Assert.Single(warnings);
        Assert.Contains("Sending with", warnings[0].Text);
    }

    [Fact]
    public async Task A_429_with_Retry_After_holds_every_connection_not_only_the_one_that_was_told()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        var start = time.GetUtcNow();
        int sends = 0;
        var transports = new List<ScriptedTransport>();
        var previous = JournalSnapshot.Load(JournalFile);
        using var journal = CampaignJournal.Open(JournalFile, time);
        journal.WriteDefinition(Definition);
        var throttled = new MailDeliveryException(new Failure(FailureKind.Transient, FailureReason.Throttled, "429 Too Many Requests") { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(30) });
        var attemptTimes = new List<DateTimeOffset>();
        var runner = new CampaignRunner(Definition, journal, previous, _ => new OnTheWire(time, TimeSpan.FromSeconds(2), () =>
        {
            lock (attemptTimes) attemptTimes.Add(time.GetUtcNow());
            return Interlocked.Increment(ref sends) == 3 ? throttled : null;
        }), new CampaignOptions { Pacing = PacingOptions.None, Concurrency = 3, Courier = new CourierOptions { Retry = new RetryOptions { MaxRetries = 3 } } },
            new ClockProbe(time, _ => true), time, new Random(1), null, null);
        runner.Start("test");
        var feeding = Task.Run(async () =>
        {
            // One row at a time, each once the one before is on the wire, so that every connection takes its own.
            for (int i = 1; i <= 12; i++)
            {
                await runner.SubmitAsync(Row($"t{i}@example.com"), i, default);
                Assert.True(await Eventually.Until(() => { lock (attemptTimes) return attemptTimes.Count >= i; }, TimeSpan.FromSeconds(30)), $"row {i} never reached the wire");
            }
            runner.InputComplete(12);
            return await runner.CompleteAsync();
        });
        var summary = await Clock.RunWorkers(time, feeding);

        Assert.Equal(12, summary.Sent);
        List<DateTimeOffset> attempts;
        lock (attemptTimes) attempts = attemptTimes.ToList(); // in the order they were made
        Assert.Equal(13, attempts.Count);                  // twelve messages, one of them twice
        var told = attempts[2];                            // the third send was answered 429, Retry-After 30 s
        // The 429 came back 2 s after that send started (each takes 2 s on the wire). From then until the 30 s were over,
        // no connection started a send; without the hold the other two go on sending every 2 s.
        var answered = told + TimeSpan.FromSeconds(2);
        Assert.Equal(0, attempts.Count(a => a > answered && a < answered + TimeSpan.FromSeconds(30)));
        Assert.True(attempts.Last() >= answered + TimeSpan.FromSeconds(30));
    }

    /// <summary>Greylisting: a recipient's first delivery attempts are deferred (451 4.7.1) until a minute after the first one.</summary>
    private sealed class Greylisting : IMailTransport
    {
        private readonly TimeProvider _time;
        private readonly Dictionary<string, DateTimeOffset> _firstSeen;
        public readonly List<(string To, DateTimeOffset At, bool Taken)> Log;
        public Greylisting(TimeProvider time, Dictionary<string, DateTimeOffset> firstSeen, List<(string, DateTimeOffset, bool)> log) { _time = time; _firstSeen = firstSeen; Log = log; }
        public string Description => "greylisting";
        public Endpoint Endpoint { get; } = new("127.0.0.1", 2525);
        public TimeSpan Timeout => TimeSpan.FromSeconds(30);
        public Task<Receipt> SendAsync(MimeKit.MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var to = message.To.Mailboxes.First().Address;
            var now = _time.GetUtcNow();
            bool taken;
            lock (_firstSeen)
            {
                if (!_firstSeen.TryGetValue(to, out var first)) _firstSeen[to] = first = now;
                taken = !to.StartsWith("grey") || now >= first + TimeSpan.FromSeconds(60);
                Log.Add((to, now, taken));
            }
            if (!taken) throw new MailDeliveryException(new Failure(FailureKind.Transient, FailureReason.ServerBusy, "451 4.7.1 Greylisted, try again later") { ServerReply = "451 4.7.1 Greylisted" });
            return Task.FromResult(new Receipt(message.MessageId ?? "", "250 OK"));
        }
        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public void Dispose() { }
    }

    [Fact]
    public async Task A_greylisted_message_is_deferred_while_the_rest_goes_on_and_is_delivered_once_the_server_allows()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        var start = time.GetUtcNow();
        var firstSeen = new Dictionary<string, DateTimeOffset>();
        var log = new List<(string To, DateTimeOffset At, bool Taken)>();
        var previous = JournalSnapshot.Load(JournalFile);
        using var journal = CampaignJournal.Open(JournalFile, time);
        journal.WriteDefinition(Definition);
        var outcomes = new List<CampaignOutcome>();
        var runner = new CampaignRunner(Definition, journal, previous, _ => new Greylisting(time, firstSeen, log),
            new CampaignOptions { Pacing = PacingOptions.None, Courier = new CourierOptions { Retry = new RetryOptions { MaxRetries = 3 } }, Deferral = DeferralOptions.Default },
            new ClockProbe(time, _ => true), time, new Random(1), null, o => { lock (outcomes) outcomes.Add(o); });
        runner.Start("test");
        var feeding = Task.Run(async () =>
        {
            await runner.SubmitAsync(Row("grey@example.com"), 1, default);
            for (int i = 2; i <= 6; i++) await runner.SubmitAsync(Row($"ok{i}@example.com"), i, default);
            runner.InputComplete(6);
            return await runner.CompleteAsync();
        });
        var summary = await Clock.RunWorkers(time, feeding);

        Assert.Equal(CampaignState.Completed, summary.State);
        Assert.Equal(6, summary.Sent);
        Assert.Equal(0, summary.Deferred);
        Assert.Equal(6, outcomes.Count);                                         // one outcome a row, the deferred one at its end
        var grey = log.Where(l => l.To == "grey@example.com").ToList();
        Assert.True(grey.Count(g => !g.Taken) >= 4, $"{grey.Count(g => !g.Taken)} refused attempts"); // the quick retries (1, 2, 4 s) failed first
        var delivered = grey.Single(g => g.Taken).At;
        Assert.InRange(delivered - start, TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(8)); // when the server allowed, on the longer schedule
        Assert.All(log.Where(l => l.To != "grey@example.com"), l => Assert.True(l.At < delivered)); // the rest did not wait for it
        var back = JournalSnapshot.Load(JournalFile);
        Assert.Equal(RecipientState.Sent, back.StateOf("grey@example.com"));
    }

    [Fact]
    public async Task A_server_that_greylists_every_recipient_does_not_trip_the_breaker()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        var firstSeen = new Dictionary<string, DateTimeOffset>();
        var log = new List<(string To, DateTimeOffset At, bool Taken)>();
        var previous = JournalSnapshot.Load(JournalFile);
        using var journal = CampaignJournal.Open(JournalFile, time);
        journal.WriteDefinition(Definition);
        var runner = new CampaignRunner(Definition, journal, previous, _ => new Greylisting(time, firstSeen, log),
            new CampaignOptions { Pacing = PacingOptions.None, Courier = new CourierOptions { Retry = new RetryOptions { MaxRetries = 0 } }, Deferral = DeferralOptions.Default },
            new ClockProbe(time, _ => true), time, new Random(1), null, null);
        runner.Start("test");
        var feeding = Task.Run(async () =>
        {
            for (int i = 1; i <= 15; i++) await runner.SubmitAsync(Row($"grey{i}@example.com"), i, default); // more than the breaker's 10 in a row
            runner.InputComplete(15);
            return await runner.CompleteAsync();
        });
        var summary = await Clock.RunWorkers(time, feeding);
        Assert.Equal(CampaignState.Completed, summary.State);
        Assert.Equal(15, summary.Sent);
    }

    [Fact]
    public async Task A_message_still_deferred_at_the_limit_is_reported_failed_and_a_resume_sends_it()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        var firstSeen = new Dictionary<string, DateTimeOffset>();
        var log = new List<(string To, DateTimeOffset At, bool Taken)>();
        var previous = JournalSnapshot.Load(JournalFile);
        CampaignSummary summary;
        using (var journal = CampaignJournal.Open(JournalFile, time))
        {
            journal.WriteDefinition(Definition);
            // A 30 s limit on a greylisting of 60 s: the message cannot make it in this run.
            var runner = new CampaignRunner(Definition, journal, previous, _ => new Greylisting(time, firstSeen, log),
                new CampaignOptions { Pacing = PacingOptions.None, Courier = new CourierOptions { Retry = new RetryOptions { MaxRetries = 0 } },
                                      Deferral = new DeferralOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30)) },
                new ClockProbe(time, _ => true), time, new Random(1), null, null);
            runner.Start("test");
            var feeding = Task.Run(async () => { await runner.SubmitAsync(Row("grey@example.com"), 1, default); runner.InputComplete(1); return await runner.CompleteAsync(); });
            summary = await Clock.RunWorkers(time, feeding);
        }
        Assert.Equal(0, summary.Sent);
        Assert.Equal(1, summary.Deferred);                  // failed (deferred): a resume sends it again
        Assert.InRange(log.Count, 3, 5);                    // at 0, ~10, ~20 and at the 30 s limit
        Assert.All(log, l => Assert.False(l.Taken));
        Assert.Equal(RecipientState.FailedTransient, JournalSnapshot.Load(JournalFile).StateOf("grey@example.com"));
    }

    /// <summary>A transport whose sends take a while on the fake clock, so that connections overlap as real ones do.</summary>
    private sealed class OnTheWire : IMailTransport
    {
        private readonly TimeProvider _time;
        private readonly TimeSpan _takes;
        private readonly Func<Exception?> _outcome;
        public OnTheWire(TimeProvider time, TimeSpan takes, Func<Exception?> outcome) { _time = time; _takes = takes; _outcome = outcome; }
        public string Description => "on the wire";
        public Endpoint Endpoint { get; } = new("127.0.0.1", 2525);
        public TimeSpan Timeout => TimeSpan.FromSeconds(30);
        public async Task<Receipt> SendAsync(MimeKit.MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var error = _outcome();
            await _time.Delay(_takes, cancellationToken);
            if (error != null) throw error;
            return new Receipt(message.MessageId ?? "", "250 OK");
        }
        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public void Dispose() { }
    }

    [Fact]
    public void The_recipient_quota_frees_as_its_oldest_sends_leave_the_window()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));
        var quota = new RecipientQuota(10, time, new[] { (time.GetUtcNow().AddHours(-23), 4) });
        Assert.True(quota.TryTake(6, out _));
        Assert.False(quota.TryTake(3, out var fits));
        Assert.Equal(time.GetUtcNow().AddHours(1), fits); // the earlier 4 leave the window first
        time.Advance(TimeSpan.FromHours(1));
        Assert.True(quota.TryTake(3, out _));
        Assert.Equal(9, quota.Used);
    }

    [Fact]
    public async Task Duplicates_by_normalised_address_are_sent_once_and_reported()
    {
        using var run = Start();
        await run.Runner.SubmitAsync(Row("Ada@Example.com"), 1, default);
        await run.Runner.SubmitAsync(Row("  ada@example.com "), 2, default);
        await run.Runner.SubmitAsync(Row("Ada Lovelace <ADA@example.com>"), 3, default);
        var summary = await run.Runner.CompleteAsync();

        Assert.Equal(1, summary.Sent);
        Assert.Equal(2, summary.Duplicates);
        Assert.Equal(2, run.Outcomes.Count(o => o.Status == CampaignRecipientStatus.Duplicate));
    }

    [Fact]
    public async Task A_missing_column_is_refused_before_anything_is_sent()
    {
        using var run = Start();
        var ex = await Assert.ThrowsAsync<CampaignSetupException>(() => run.Runner.SubmitAsync(new Dictionary<string, object?> { ["Email"] = "a@example.com" }, 1, default));
        Assert.Contains("{{FirstName}}", ex.Message);
        Assert.Contains("Subject", ex.Message);
        await run.Runner.CompleteAsync();
        Assert.Empty(run.Transports.SelectMany(t => t.AttemptTimes));
    }

    [Fact]
    public async Task A_bad_row_is_recorded_failed_and_the_campaign_goes_on()
    {
        using var run = Start();
        await run.Runner.SubmitAsync(Row("not-an-address"), 1, default);
        await run.Runner.SubmitAsync(Row("ok@example.com", "Ada\r\nBcc: x@example.com"), 2, default);
        await run.Runner.SubmitAsync(Row("fine@example.com"), 3, default);
        var summary = await run.Runner.CompleteAsync();

        Assert.Equal(1, summary.Sent);
        Assert.Equal(2, summary.Failed);
        Assert.Equal(new[] { Messages.ValidationProblem.InvalidAddress, Messages.ValidationProblem.HeaderInjection },
            run.Outcomes.Where(o => o.Problem != null).OrderBy(o => o.Row).Select(o => o.Problem!.Value));
    }

    [Fact]
    public async Task An_authentication_failure_pauses_after_one_attempt()
    {
        var auth = new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Authentication, "535 5.7.8 bad credentials"));
        using var run = Start(_ => auth);
        await run.Runner.SubmitAsync(Row("a@example.com"), 1, default);
        Assert.True(await Eventually.Until(() => run.Runner.IsPaused));
        await Assert.ThrowsAsync<CampaignPausedException>(async () => { for (int i = 2; i < 100; i++) await run.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default); });
        var summary = await run.Runner.CompleteAsync();

        Assert.Equal(CampaignState.Paused, summary.State);
        Assert.Contains("535", summary.PauseReason);
        Assert.Equal(1, run.Transports.Sum(t => t.AttemptTimes.Count));
        Assert.Equal(0, summary.Failed); // an auth failure is not the recipient's fault: deferred, sent on resume
        Assert.Equal(1, summary.Deferred);
    }

    [Fact]
    public async Task Ten_consecutive_transient_failures_pause_the_campaign()
    {
        using var run = Start(_ => ScriptedTransport.Transient("451 4.3.0 try later"));
        // One row at a time, each waited for until it was attempted: the tenth failure in a row pauses, and nothing after it is sent.
        await Assert.ThrowsAsync<CampaignPausedException>(async () =>
        {
            for (int i = 1; i < 100; i++)
            {
                await run.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
                Assert.True(await Eventually.Until(() => run.Transports.Sum(t => t.AttemptTimes.Count) >= i || run.Runner.IsPaused));
            }
        });
        var summary = await run.Runner.CompleteAsync();

        Assert.Equal(CampaignState.Paused, summary.State);
        Assert.Contains("10 messages in a row failed", summary.PauseReason);
        Assert.Equal(10, run.Transports.Sum(t => t.AttemptTimes.Count));
        Assert.True(summary.Remaining > 0);
    }

    [Fact]
    public async Task Resume_skips_sent_reports_uncertain_and_sends_the_rest()
    {
        using (var first = Start())
        {
            for (int i = 1; i <= 5; i++) await first.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
            await first.Runner.CompleteAsync();
        }
        // Simulate a crash in flight: a "sending" record without an outcome, and a pending row never sent.
        using (var crash = CampaignJournal.Open(JournalFile))
        {
            crash.Pending("u6@example.com", 6, Row("u6@example.com"));
            crash.SendingAsync("u6@example.com", "u6@example.com").Wait();
            crash.Pending("u7@example.com", 7, Row("u7@example.com"));
        }

        using var second = Start();
        for (int i = 1; i <= 8; i++) await second.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
        var summary = await second.Runner.CompleteAsync();

        Assert.Equal(2, second.Transports.Sum(t => t.AttemptTimes.Count)); // u7 (pending) and u8 (new)
        Assert.Equal(5, second.Runner.SkippedAlreadySent);
        Assert.Single(second.Outcomes, o => o.Status == CampaignRecipientStatus.Uncertain && o.Key == "u6@example.com");
        Assert.Equal(7, summary.Sent);
        Assert.Equal(1, summary.Uncertain);
    }

    [Fact]
    public async Task An_intent_never_handed_over_is_pending_in_the_same_boot_and_uncertain_after_a_restart()
    {
        using (var first = Start())
        {
            await first.Runner.SubmitAsync(Row("u1@example.com"), 1, default);
            await first.Runner.CompleteAsync();
        }
        // A crash with one message on the wire (intent + sending) and the next one's intent already on disk.
        using (var crash = CampaignJournal.Open(JournalFile))
        {
            crash.Run("run-started");
            crash.Pending("u2@example.com", 2, Row("u2@example.com"));
            crash.Pending("u3@example.com", 3, Row("u3@example.com"));
            await crash.IntentAsync("u2@example.com", "u2@example.com");
            crash.SendingAsync("u2@example.com", "u2@example.com").Wait();
            await crash.IntentAsync("u3@example.com", "u3@example.com");
        }

        var sameBoot = JournalSnapshot.Load(JournalFile);
        Assert.Equal(RecipientState.Sending, sameBoot.StateOf("u2@example.com")); // handed over: Uncertain
        Assert.Equal(BootId.Current == null ? RecipientState.Sending : RecipientState.Pending, sameBoot.StateOf("u3@example.com"));

        // The same journal read after the OS restarted: the unforced "sending" of u3 could have been lost.
        var lines = File.ReadAllLines(JournalFile).Select(l => l.Replace("\"boot\":\"", "\"boot\":\"earlier-")).ToArray();
        File.WriteAllLines(JournalFile, lines);
        var afterRestart = JournalSnapshot.Load(JournalFile);
        Assert.Equal(RecipientState.Sending, afterRestart.StateOf("u3@example.com"));
        Assert.Equal(RecipientState.Sent, afterRestart.StateOf("u1@example.com"));
    }

    [Fact]
    public async Task The_next_intent_reaches_the_disk_while_the_current_message_is_on_the_wire()
    {
        using var submitted = new ManualResetEventSlim();
        // The first send waits until every row is queued, so from the second message on there is always one to read ahead.
        using (var run = Start(n => { if (n == 1) submitted.Wait(TimeSpan.FromSeconds(10)); return null; }))
        {
            for (int i = 1; i <= 4; i++) await run.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
            submitted.Set();
            await run.Runner.CompleteAsync();
        }
        var records = File.ReadAllLines(JournalFile).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("key", out _))
            .Select(e => (State: e.GetProperty("state").GetString(), Key: e.GetProperty("key").GetString())).ToList();
        int Index(string state, string key) => records.FindIndex(r => r.State == state && r.Key == key);
        for (int i = 1; i <= 4; i++)
        {
            var key = $"u{i}@example.com";
            Assert.True(Index("intent", key) >= 0 && Index("intent", key) < Index("sending", key), $"{key}: intent before sending");
            Assert.True(Index("sending", key) < Index("sent", key));
        }
        // The next message's intent was written before the current one's outcome: the disk wait overlapped the send.
        Assert.True(Index("intent", "u3@example.com") < Index("sent", "u2@example.com"));
        Assert.True(Index("intent", "u4@example.com") < Index("sent", "u3@example.com"));
        Assert.Equal(4, JournalSnapshot.Load(JournalFile).Count(RecipientState.Sent));
    }

    [Fact]
    public async Task Resume_with_resend_uncertain_and_retry_failed_sends_those_too()
    {
        using (var first = Start())
        {
            await first.Runner.SubmitAsync(Row("bad@"), 1, default);
            await first.Runner.CompleteAsync();
        }
        using (var crash = CampaignJournal.Open(JournalFile))
        {
            crash.Pending("u2@example.com", 2, Row("u2@example.com"));
            crash.SendingAsync("u2@example.com", "u2@example.com").Wait();
        }
        using var second = Start(options: new CampaignOptions { ResendUncertain = true, RetryFailed = true });
        await second.Runner.SubmitAsync(Row("bad@"), 1, default);
        await second.Runner.SubmitAsync(Row("u2@example.com"), 2, default);
        await second.Runner.CompleteAsync();

        Assert.Single(second.Outcomes, o => o.Key == "u2@example.com" && o.Status == CampaignRecipientStatus.Sent);
        Assert.Single(second.Outcomes, o => o.Key == "bad@" && o.Status == CampaignRecipientStatus.Failed); // re-validated, still bad
    }

    [Fact]
    public async Task The_journal_keeps_rows_so_a_resume_needs_no_input()
    {
        using (var first = Start(n => n >= 3 ? ScriptedTransport.Network() : null, new CampaignOptions { MaxConsecutiveFailures = 0 }))
        {
            for (int i = 1; i <= 4; i++) await first.Runner.SubmitAsync(Row($"u{i}@example.com", $"Name{i}"), i, default);
            await first.Runner.CompleteAsync();
        }
        var rows = JournalSnapshot.PendingRows(JournalFile).ToList();
        Assert.Equal(4, rows.Count);
        Assert.Equal("Name3", rows[2].Data.Single(kv => kv.Key == "FirstName").Value);
        var snapshot = JournalSnapshot.Load(JournalFile);
        Assert.Equal(RecipientState.FailedTransient, snapshot.StateOf("u3@example.com"));
        Assert.Equal(RecipientState.Sent, snapshot.StateOf("u1@example.com"));
    }

    [Fact]
    public async Task Slow_start_a_server_that_answers_no_message_is_met_with_one_connection_not_four()
    {
        using var run = Start(_ => ScriptedTransport.Transient("451 4.3.0 Temporary failure"), new CampaignOptions { Concurrency = 4 });
        for (int i = 1; i <= 12; i++)
        {
            try { await run.Runner.SubmitAsync(Row($"s{i}@example.com"), i, default); }
            catch (CampaignPausedException) { break; }
        }
        var summary = await run.Runner.CompleteAsync();
        Assert.Equal(CampaignState.Paused, summary.State);  // the breaker, after 10 in a row
        Assert.Single(run.Transports);                        // the other three were never opened
    }

    [Fact]
    public async Task Concurrency_opens_one_transport_per_worker()
    {
        using var run = Start(options: new CampaignOptions { Concurrency = 4 });
        for (int i = 1; i <= 40; i++) await run.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
        var summary = await run.Runner.CompleteAsync();
        Assert.Equal(40, summary.Sent);
        Assert.Equal(4, run.Transports.Count);
        Assert.Equal(40, run.Transports.Sum(t => t.AttemptTimes.Count));
    }

    [Fact]
    public async Task Unsubscribe_headers_carry_the_encoded_url_and_the_one_click_form()
    {
        var dir = Path.Combine(_dir, "out");
        var previous = JournalSnapshot.Load(JournalFile);
        using var journal = CampaignJournal.Open(JournalFile);
        var definition = Definition with { UnsubscribeMailto = "unsub@example.com?subject=stop" };
        journal.WriteDefinition(definition);
        var runner = new CampaignRunner(definition, journal, previous, _ => new PickupDirectoryTransport(dir), new CampaignOptions { Pacing = PacingOptions.None },
            new ClockProbe(TimeProvider.System, _ => true), TimeProvider.System, new Random(1), null, _ => { });
        runner.Start("test");
        await runner.SubmitAsync(Row("a+b@example.com"), 1, default);
        await runner.CompleteAsync();

        var raw = File.ReadAllText(Directory.GetFiles(dir, "*.eml").Single());
        Assert.Contains("\r\n", raw);
        var eml = System.Text.RegularExpressions.Regex.Replace(raw, "\r\n[ \t]+", " "); // unfold headers
        Assert.Contains("List-Unsubscribe: <https://example.com/u?e=a%2Bb%40example.com>, <mailto:unsub@example.com?subject=stop>", eml);
        Assert.Contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click", eml);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Fact]
    public async Task A_piped_campaign_whose_input_was_not_read_to_the_end_is_never_Completed()
    {
        using (var first = Start())
        {
            for (int i = 1; i <= 3; i++) await first.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
            var summary = await first.Runner.CompleteAsync(); // Ctrl+C or a kill: the input's end never came
            Assert.Equal(CampaignState.Incomplete, summary.State);
            Assert.False(summary.InputComplete);
            Assert.Equal(3, summary.RowsRead);
        }
        var interrupted = JournalSnapshot.Load(JournalFile);
        Assert.False(interrupted.InputComplete);
        Assert.True(interrupted.Incomplete);
        Assert.Equal(3, interrupted.RowsRead);

        // The same input piped again: the three rows are skipped, the rest added and sent, and then it is complete.
        using (var second = Start())
        {
            for (int i = 1; i <= 5; i++) await second.Runner.SubmitAsync(Row($"u{i}@example.com"), i, default);
            second.Runner.InputComplete(5);
            var summary = await second.Runner.CompleteAsync();
            Assert.Equal(CampaignState.Completed, summary.State);
            Assert.Equal(5, summary.Sent);
            Assert.Equal(2, second.Transports.Sum(t => t.AttemptTimes.Count));
        }
        var done = JournalSnapshot.Load(JournalFile);
        Assert.True(done.InputComplete);
        Assert.True(done.Completed);
        Assert.Equal(5, done.RowsRead);
    }

    [Fact]
    public async Task A_journal_of_the_previous_version_that_completed_keeps_its_input_complete()
    {
        // Written by the previous version: no format number, no input-end; its "completed" came after its input's end.
        File.WriteAllLines(JournalFile, new[]
        {
            "{\"at\":\"2026-11-01T10:00:00.000Z\",\"state\":\"definition\",\"campaign\":{\"name\":\"c\",\"from\":\"news@example.com\",\"subject\":\"Hi {{FirstName}}\",\"textBody\":\"Body\"}}",
            "{\"at\":\"2026-11-01T10:00:00.000Z\",\"state\":\"run-started\",\"text\":\"start\"}",
            "{\"at\":\"2026-11-01T10:00:00.000Z\",\"state\":\"pending\",\"key\":\"u1@example.com\",\"row\":1}",
            "{\"at\":\"2026-11-01T10:00:01.000Z\",\"state\":\"sent\",\"key\":\"u1@example.com\",\"attempts\":1}",
            "{\"at\":\"2026-11-01T10:00:01.000Z\",\"state\":\"completed\"}",
        });
        var old = JournalSnapshot.Load(JournalFile);
        Assert.True(old.InputComplete);
        Assert.True(old.InputCompleteByLegacy);
        using (var resumed = Start())
        {
            var summary = await resumed.Runner.CompleteAsync(); // resumed by name, nothing piped
            Assert.Equal(CampaignState.Completed, summary.State);
        }
        var migrated = JournalSnapshot.Load(JournalFile);
        Assert.True(migrated.InputComplete);
        Assert.False(migrated.InputCompleteByLegacy); // now said in today's form
    }

    [Fact]
    public void A_missing_attachment_or_a_folder_is_a_setup_error_before_anything_is_journaled()
    {
        var missing = Definition with { Attachments = new[] { Path.Combine(_dir, "nope.pdf") } };
        var ex = Assert.Throws<CampaignSetupException>(() => CampaignRunner.CheckDefinition(missing));
        Assert.Equal(Messages.ValidationProblem.AttachmentNotFound, ex.Problem);
        Assert.Contains("does not exist", ex.Message);
        var folder = Definition with { Attachments = new[] { _dir } };
        Assert.Contains("is a folder", Assert.Throws<CampaignSetupException>(() => CampaignRunner.CheckDefinition(folder)).Message);
        var badFrom = Definition with { From = "not an address" };
        Assert.Equal(Messages.ValidationProblem.InvalidAddress, Assert.Throws<CampaignSetupException>(() => CampaignRunner.CheckDefinition(badFrom)).Problem);
        CampaignRunner.CheckDefinition(Definition with { Cc = new[] { "" } }); // an empty Cc is no Cc
    }

    [Fact]
    public async Task Several_connections_share_one_wait_for_one_outage()
    {
        var time = new FakeTimeProvider();
        var events = new List<DeliveryEvent>();
        DeliveryEventSink sink = e => { lock (events) events.Add(e); };
        var probe = new ClockProbe(time, t => t >= TimeSpan.FromSeconds(25));
        var options = new ConnectivityOptions { CheckInterval = TimeSpan.FromSeconds(10), WaitTimeout = TimeSpan.FromMinutes(5) };
        var gate = new ConnectivityGate(probe, new[] { new Endpoint("127.0.0.1", 25) }, options, time, sink);
        foreach (var _ in Enumerable.Range(0, 4)) gate.ReportFailure(new Failure(FailureKind.Transient, FailureReason.Network, "reset"));

        var waits = Enumerable.Range(0, 4).Select(_ => gate.EnsureAsync(default)).ToArray();
        await Clock.Drive(time, Task.WhenAll(waits), TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(1));

        Assert.Single(events, e => e.Kind == DeliveryEventKind.WaitingForConnection);
        Assert.Single(events, e => e.Kind == DeliveryEventKind.ConnectionRestored);
    }
}

public sealed class JournalTests : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), "rm-journal-" + Guid.NewGuid().ToString("n") + ".jsonl");
    public void Dispose() { try { File.Delete(_file); } catch { } }

    [Fact]
    public void A_torn_last_line_is_ignored_and_the_next_writer_starts_a_fresh_line()
    {
        using (var j = CampaignJournal.Open(_file))
        {
            j.Pending("a@example.com", 1, null);
            j.SendingAsync("a@example.com", "a@example.com").Wait();
            j.Sent("a@example.com", "<id@x>", "250 OK", 1, TimeSpan.FromMilliseconds(5));
        }
        File.AppendAllText(_file, "{\"at\":\"2026-01-01T00:00:00.000Z\",\"state\":\"sending\",\"key\":\"b@exa"); // torn by a crash
        Assert.Equal(RecipientState.Sent, JournalSnapshot.Load(_file).StateOf("a@example.com"));
        Assert.Null(JournalSnapshot.Load(_file).StateOf("b@example.com"));

        using (var j = CampaignJournal.Open(_file)) j.Pending("c@example.com", 3, null);
        var snapshot = JournalSnapshot.Load(_file);
        Assert.Equal(RecipientState.Pending, snapshot.StateOf("c@example.com"));
        Assert.Equal(1, snapshot.SkippedLines); // the torn line, now complete with a newline but not JSON
    }

    [Fact]
    public void A_second_writer_is_refused_while_the_first_holds_the_journal()
    {
        using var first = CampaignJournal.Open(_file);
        Assert.Throws<JournalLockedException>(() => CampaignJournal.Open(_file));
    }

    [Fact]
    public void Sending_without_an_outcome_replays_as_sending()
    {
        using (var j = CampaignJournal.Open(_file))
        {
            j.Pending("a@example.com", 1, null);
            j.SendingAsync("a@example.com", "a@example.com").Wait();
            j.Pending("b@example.com", 2, null);
            j.SendingAsync("b@example.com", "b@example.com").Wait();
            j.Released("b@example.com");
        }
        var s = JournalSnapshot.Load(_file, withRecipients: true);
        Assert.Equal(RecipientState.Sending, s.StateOf("a@example.com"));
        Assert.Equal(RecipientState.Pending, s.StateOf("b@example.com"));
        Assert.Equal("a@example.com", s.Recipients!["a@example.com"].To);
    }

    [Fact]
    public void Records_are_one_json_object_per_line_and_never_hold_a_password()
    {
        using (var j = CampaignJournal.Open(_file))
        {
            j.WriteDefinition(new CampaignDefinition { Name = "n", From = "a@example.com", Transport = new Transports.SmtpDescription { Host = "h", Port = 25, UserName = "alice", Secret = Transports.SecretSource.Caller } });
            j.Failed("a@example.com", true, "RecipientRejected", "550 \"no\" user", 1);
        }
        var lines = File.ReadAllLines(_file);
        Assert.Equal(2, lines.Length);
        foreach (var line in lines) System.Text.Json.JsonDocument.Parse(line).Dispose();
        Assert.DoesNotContain("password", string.Join("\n", lines), StringComparison.OrdinalIgnoreCase);
        var transport = Assert.IsType<Transports.SmtpDescription>(JournalSnapshot.Load(_file).Definition!.Transport);
        Assert.Equal("alice", transport.UserName);
        Assert.True(transport.NeedsCallerSecret);
        // The same flat shape as every earlier journal ("kind", "host", ..., "secretFrom"), so the previous version resumes it.
        Assert.Contains("\"transport\":{\"kind\":\"Smtp\",\"host\":\"h\",\"port\":25", lines[0]);
        Assert.Contains("\"secretFrom\":\"Parameter\"", lines[0]);
    }
}

public class RateLimiterTests
{
    [Theory]
    [InlineData("50/second", 50, 1)]
    [InlineData("100/min", 100, 60)]
    [InlineData("1000/hour", 1000, 3600)]
    [InlineData("10000/day", 10000, 86400)]
    [InlineData("30/10s", 30, 10)]
    [InlineData("5 per minute", 5, 60)]
    public void Rates_parse(string text, int count, double seconds)
    {
        var r = RateLimit.Parse(text);
        Assert.Equal(count, r.Count);
        Assert.Equal(TimeSpan.FromSeconds(seconds), r.Window);
    }

    [Fact]
    public async Task The_limit_counts_from_when_a_message_really_left()
    {
        var time = new FakeTimeProvider();
        TimeSpan? requested = null;
        var limiter = new SlidingWindowLimiter(new RateLimit(2, TimeSpan.FromSeconds(1)), time, e => requested = e.Limit);
        var first = await limiter.WaitAsync(default);
        var second = await limiter.WaitAsync(default);
        time.Advance(TimeSpan.FromMilliseconds(500));
        second.Started(); // the second message only left half a second after its permit

        var third = limiter.WaitAsync(default);
        Assert.False(third.IsCompleted);
        Assert.Equal(TimeSpan.FromMilliseconds(500), requested); // until the first one is a second old
        time.Advance(requested!.Value);
        await third.WaitAsync(TimeSpan.FromSeconds(5));

        requested = null;
        var fourth = limiter.WaitAsync(default);
        Assert.False(fourth.IsCompleted);
        Assert.Equal(TimeSpan.FromMilliseconds(500), requested); // a second after the second one LEFT, not after its grant
    }

    [Theory]
    [InlineData("fast")]
    [InlineData("0/second")]
    [InlineData("10/fortnight")]
    public void Bad_rates_are_refused(string text) => Assert.Throws<FormatException>(() => RateLimit.Parse(text));

    [Fact]
    public async Task Never_more_than_the_limit_in_any_window_and_at_least_95_percent_of_it()
    {
        var time = new FakeTimeProvider();
        TimeSpan? requested = null;
        var limiter = new SlidingWindowLimiter(new RateLimit(50, TimeSpan.FromSeconds(1)), time, e => requested = e.Limit);
        var start = time.GetUtcNow();
        var grants = new List<TimeSpan>();
        // One waiter after another, as the campaign's single dispatch turn asks. The clock moves exactly as far as the limiter asks.
        for (int i = 0; i < 1000; i++)
        {
            requested = null;
            var wait = limiter.WaitAsync(default);
            if (!wait.IsCompleted)
            {
                Assert.NotNull(requested); // it said how long it waits
                time.Advance(requested!.Value);
                await wait.WaitAsync(TimeSpan.FromSeconds(5));
            }
            grants.Add(time.GetUtcNow() - start);
        }

        var sorted = grants.OrderBy(g => g).ToArray();
        for (int i = 50; i < sorted.Length; i++)
            Assert.True(sorted[i] - sorted[i - 50] >= TimeSpan.FromSeconds(1), $"grant {i} came {(sorted[i] - sorted[i - 50]).TotalMilliseconds} ms after grant {i - 50}");
        var rate = 1000 / sorted[^1].TotalSeconds;
        Assert.True(rate >= 0.95 * 50 * (19.0 / 20), $"rate {rate:0.0}/s"); // 1000 grants span 19 full windows
        Assert.True(1000 / (sorted[^1].TotalSeconds + 1) >= 0.95 * 50, $"rate {rate:0.0}/s");
    }
}

public class CsvTests
{
    [Fact]
    public void Quoted_fields_with_commas_quotes_and_line_breaks_are_read_whole()
    {
        var text = "Email,Name,Note\r\na@example.com,\"Lovelace, Ada\",\"said \"\"hi\"\"\nthen left\"\nb@example.com,Bob,\n";
        using var csv = new CsvRecords(new StringReader(text));
        var rows = csv.Rows().ToList();
        Assert.Equal(new[] { "Email", "Name", "Note" }, csv.Header);
        Assert.Equal(2, rows.Count);
        Assert.Equal("Lovelace, Ada", rows[0][1].Value);
        Assert.Equal("said \"hi\"\nthen left", rows[0][2].Value);
        Assert.Equal("", rows[1][2].Value);
    }

    [Fact]
    public void An_empty_file_and_a_header_only_file_have_no_rows()
    {
        using (var empty = new CsvRecords(new StringReader(""))) { Assert.Empty(empty.Header); Assert.Empty(empty.Rows()); }
        using (var header = new CsvRecords(new StringReader("Email,Name\r\n"))) { Assert.Equal(2, header.Header.Count); Assert.Empty(header.Rows()); }
    }

    [Fact]
    public void Rows_are_counted_without_keeping_them()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "\uFEFFEmail,Name\n" + string.Concat(Enumerable.Range(0, 1000).Select(i => $"u{i}@example.com,\"N\n{i}\"\n")));
            Assert.Equal(1000, CsvRecords.CountRows(file));
            using var csv = CsvRecords.Open(file);
            Assert.Equal("Email", csv.Header[0]);
        }
        finally { File.Delete(file); }
    }
}
