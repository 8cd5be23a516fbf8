using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using MimeKit;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Messages;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Campaigns
{
    public enum CampaignRecipientStatus { Sent, Failed, Uncertain, Duplicate }

    /// <summary>The fate of one row in this run.</summary>
    public sealed record CampaignOutcome(string Key, string To, CampaignRecipientStatus Status, long Row)
    {
        public int Attempts { get; init; }
        public string? MessageId { get; init; }
        public string? ServerReply { get; init; }
        public Failure? Failure { get; init; }
        public Exception? Error { get; init; }
        /// <summary>Why nothing was sent for this row (validation problem, uncertain from an earlier run, duplicate).</summary>
        public string? Note { get; init; }
        public ValidationProblem? Problem { get; init; }
        public TimeSpan Duration { get; init; }
        /// <summary>Other recipients of the row's message (a campaign-wide Cc or Bcc) that did not get it.</summary>
        public IReadOnlyList<RecipientRefusal> Refused { get; init; } = new RecipientRefusal[0];
    }

    public sealed record CampaignOptions
    {
        /// <summary>Retry and connectivity settings for each worker (its pacing is ignored: pacing is global).</summary>
        public CourierOptions Courier { get; init; } = new CourierOptions();
        public PacingOptions Pacing { get; init; } = new PacingOptions();
        public RateLimit? RateLimit { get; init; }
        /// <summary>Connections (workers) sending at once.</summary>
        public int Concurrency { get; init; } = 1;
        /// <summary>
        /// The run stops itself this long after it started (a runbook sandbox's fair-share limit): no new row is taken,
        /// the messages on the wire finish, and the campaign is Paused with the reason, to be resumed by the next job.
        /// </summary>
        public TimeSpan? MaxRunDuration { get; init; }
        /// <summary>
        /// What happens after a message's quick retries failed transiently: it is set aside and tried again later on a longer
        /// schedule while the run goes on, as a mail server's queue does (greylisting, a per-client rate limit, a busy server).
        /// </summary>
        public DeferralOptions Deferral { get; init; } = DeferralOptions.Default;
        /// <summary>The provider's cap on recipients in a rolling 24 hours; reaching it pauses the campaign (null: none).</summary>
        public int? RecipientsPerDay { get; init; }
        /// <summary>Recipients the provider says the account already sent in the last 24 hours (counted as sent at the start).</summary>
        public int SentLast24Hours { get; init; }
        /// <summary>
        /// Without a rate (the user's, the provider's or its published quota), keep to the pace the server allows: nothing
        /// holds the run until the server first says "too fast", then it is learned and kept (<see cref="Resilience.AdaptivePace"/>).
        /// </summary>
        public bool AdaptivePace { get; init; } = true;
        /// <summary>The rate is the account's published quota (SES GetAccount): read it again when the provider throttles.</summary>
        public bool PaceFromQuota { get; init; }
        /// <summary>Pause after this many failures in a row (0: never).</summary>
        public int MaxConsecutiveFailures { get; init; } = Defaults.MaxConsecutiveFailures;
        public bool RetryFailed { get; init; }
        public bool ResendUncertain { get; init; }
        /// <summary>Keep each row's columns in the journal so a resume needs no input (on by default).</summary>
        public bool StoreRows { get; init; } = true;
    }

    /// <summary>Incomplete: every row the run was given is done, but the campaign's input has never been read to its end.</summary>
    public enum CampaignState { Completed, Paused, Incomplete }

    /// <summary>
    /// The later schedule of a deferred message: first after <see cref="First"/>, each wait twice the one before up to
    /// <see cref="MaxGap"/>, with jitter; a server's "retry after" wins when longer. After <see cref="Limit"/> since the
    /// first deferral the message is reported failed (deferred), and a resume sends it again. A zero limit: no deferral.
    /// </summary>
    public sealed record DeferralOptions(TimeSpan First, TimeSpan MaxGap, TimeSpan Limit)
    {
        public static readonly DeferralOptions Default = new DeferralOptions(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(15), TimeSpan.FromHours(1));
        public static readonly DeferralOptions None = new DeferralOptions(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero);
        public bool Enabled => Limit > TimeSpan.Zero;

        /// <summary>The default schedule with another first wait and limit; a limit of zero or less: no deferral.</summary>
        public static DeferralOptions For(TimeSpan limit, TimeSpan first) => limit <= TimeSpan.Zero ? None : Default with { First = first, Limit = limit };

        /// <summary>The wait before deferred try <paramref name="n"/> (1 for the first), jittered by +-10%.</summary>
        public TimeSpan Wait(int n, double random, TimeSpan? retryAfter)
        {
            double factor = Math.Pow(2, Math.Min(30, Math.Max(0, n - 1)));
            var gap = TimeSpan.FromTicks((long)Math.Min(MaxGap.Ticks, First.Ticks * factor));
            gap = TimeSpan.FromTicks((long)(gap.Ticks * (0.9 + 0.2 * random)));
            return retryAfter is TimeSpan asked && asked > gap ? asked : gap;
        }
    }

    public sealed record CampaignSummary(string Name, CampaignState State)
    {
        public long Recipients { get; init; }
        public long Sent { get; init; }
        public long Failed { get; init; }
        public long Deferred { get; init; }
        public long Uncertain { get; init; }
        public long Pending { get; init; }
        public long Duplicates { get; init; }
        public long SentThisRun { get; init; }
        public long SkippedAlreadySent { get; init; }
        public TimeSpan Duration { get; init; }
        public string JournalPath { get; init; } = "";
        public string? PauseReason { get; init; }
        /// <summary>The pause is a limit the run was given or the provider sets (the run-time limit, the daily cap): an expected end of this run, not a problem.</summary>
        public bool StoppedByLimit { get; init; }
        public string? LastError { get; init; }
        public bool InputComplete { get; init; }
        public long RowsRead { get; init; }
        public long Remaining => Pending + Deferred;
    }

    /// <summary>A setup problem found before anything was sent (a template uses a column the input lacks).</summary>
    public sealed class CampaignSetupException : Exception
    {
        public CampaignSetupException(string message) : base(message) { }
        public CampaignSetupException(string message, MessageValidationException problem) : base(message, problem) => Problem = problem.Problem;
        /// <summary>Set when a fixed part of the message is invalid (rather than a column missing).</summary>
        public ValidationProblem? Problem { get; }
    }

    /// <summary>The campaign stopped itself (circuit breaker, outage past the wait limit). The journal holds everything.</summary>
    public sealed class CampaignPausedException : Exception
    {
        public CampaignPausedException(string reason, Failure? failure) : base(reason) => Failure = failure;
        public Failure? Failure { get; }
    }

    /// <summary>
    /// Runs a campaign: rows in (one producer), N workers out, each with its own connection, sharing one
    /// pacer and one rate limiter. Every state change goes to the journal before it is acted on.
    /// </summary>
    public sealed class CampaignRunner
    {
        private sealed record WorkItem(string Key, string To, MimeMessage Message, long Row, RecipientState From)
        {
            /// <summary>When the first deferral of this run happened, and how many there were.</summary>
            public DateTimeOffset? DeferredSince { get; init; }
            public int Deferrals { get; init; }
        }

        // Deferred messages, each with the moment it is due again.
        private readonly List<(DateTimeOffset Due, WorkItem Item)> _later = new List<(DateTimeOffset, WorkItem)>();

        private bool HasLater { get { lock (_later) return _later.Count > 0; } }

        private bool TryTakeDue(out WorkItem item)
        {
            var now = _time.GetUtcNow();
            lock (_later)
            {
                int best = -1;
                for (int i = 0; i < _later.Count; i++)
                    if (_later[i].Due <= now && (best < 0 || _later[i].Due < _later[best].Due)) best = i;
                if (best >= 0) { item = _later[best].Item; _later.RemoveAt(best); return true; }
            }
            item = null!;
            return false;
        }

        private TimeSpan UntilNextDue()
        {
            lock (_later)
            {
                if (_later.Count == 0) return TimeSpan.Zero;
                var due = _later.Min(l => l.Due) - _time.GetUtcNow();
                return due < TimeSpan.Zero ? TimeSpan.Zero : due;
            }
        }

        private readonly RecipientQuota? _quota;
        private readonly CampaignDefinition _definition;
        private readonly CampaignJournal _journal;
        private readonly JournalSnapshot _previous;
        private readonly Func<DeliveryEventSink?, IMailTransport> _transports;
        private readonly CampaignOptions _options;
        private readonly IConnectivityProbe _probe;
        private readonly TimeProvider _time;
        private readonly Random _random;
        private readonly DeliveryEventSink? _events;
        private readonly Action<CampaignOutcome> _onOutcome;
        private readonly MessageTemplate _template;
        private readonly ListUnsubscribe _unsubscribe;
        private readonly HashSet<ulong> _seen = new HashSet<ulong>();
        private readonly Pacer _pacer;
        private SlidingWindowLimiter? _limiter;
        private readonly AdaptivePace? _adaptive;
        private readonly SemaphoreSlim _turn = new SemaphoreSlim(1, 1);
        private readonly long _started;
        private Channel<WorkItem>? _queue;
        private Task[] _workers = new Task[0];
        private CancellationTokenSource? _stop;
        private string? _addressColumn;
        private readonly Shard? _shard;
        private bool _columnsChecked;
        private string? _pauseReason;
        private Failure? _pauseFailure;
        private int _consecutiveFailures;
        private string? _lastError;
        private long _sentThisRun;
        private long _skippedSent;
        // Counts by state, kept as records are written, so the summary never has to replay the journal.
        private readonly CampaignCounts _counts;

        /// <summary>On the system clock.</summary>
        public CampaignRunner(CampaignDefinition definition, CampaignJournal journal, JournalSnapshot previous,
            Func<DeliveryEventSink?, IMailTransport> transports, CampaignOptions options, IConnectivityProbe probe,
            DeliveryEventSink? events, Action<CampaignOutcome> onOutcome)
            : this(definition, journal, previous, transports, options, probe, TimeProvider.System, new Random(), events, onOutcome) { }

        public CampaignRunner(CampaignDefinition definition, CampaignJournal journal, JournalSnapshot previous,
            Func<DeliveryEventSink?, IMailTransport> transports, CampaignOptions options, IConnectivityProbe probe,
            TimeProvider time, Random random, DeliveryEventSink? events, Action<CampaignOutcome> onOutcome)
        {
            _definition = definition ?? throw new ArgumentNullException(nameof(definition));
            _journal = journal ?? throw new ArgumentNullException(nameof(journal));
            _previous = previous ?? throw new ArgumentNullException(nameof(previous));
            _transports = transports ?? throw new ArgumentNullException(nameof(transports));
            _options = options ?? throw new ArgumentNullException(nameof(options));
            if (_options.Concurrency < 1 || _options.Concurrency > 64) throw new ArgumentOutOfRangeException(nameof(options), _options.Concurrency, "Concurrency must be 1-64.");
            _probe = probe;
            _time = time;
            _random = random;
            _events = events;
            _onOutcome = onOutcome ?? (_ => { });
            _template = TemplateOf(definition);
            _unsubscribe = new ListUnsubscribe(definition);
            _pacer = new Pacer(_options.Pacing, time, random, events);
            if (_options.RateLimit != null) _limiter = new SlidingWindowLimiter(_options.RateLimit, time, events);
            else if (_options.AdaptivePace) _adaptive = new AdaptivePace(time, events);
            if (_options.RecipientsPerDay is int perDay)
            {
                int perRow = 1 + definition.Cc.Length + definition.Bcc.Length;
                var earlier = previous.RecentSends.Select(at => (at, perRow));
                // The provider's own count includes this campaign's earlier sends and every other; it is the larger one.
                if (_options.SentLast24Hours > 0)
                    earlier = earlier.Concat(new[] { (time.GetUtcNow(), Math.Max(0, _options.SentLast24Hours - previous.RecentSends.Count * perRow)) }).ToList();
                _quota = new RecipientQuota(perDay, time, earlier);
            }
            _addressColumn = definition.AddressColumn;
            _shard = definition.Shard != null ? Shard.Parse(definition.Shard) : null;
            _started = time.GetTimestamp();
            _counts = new CampaignCounts(previous);
            _journal.Events ??= events; // a store that cannot be written is waited for as the network is, and said so
            _journal.StoreWait = _options.Courier.Connectivity;
        }

        private static MessageTemplate TemplateOf(CampaignDefinition definition) => new MessageTemplate(new MessageSpec
        {
            From = definition.From,
            Subject = definition.Subject,
            TextBody = definition.TextBody,
            HtmlBody = definition.HtmlBody,
            ReplyTo = definition.ReplyTo,
            Cc = definition.Cc,
            Bcc = definition.Bcc,
            Headers = definition.Headers.ToArray(),
            Attachments = definition.Attachments,
            To = new[] { "placeholder@example.com" },
        });

        /// <summary>
        /// What is wrong for every row alike (an attachment that is missing or a folder, an invalid From, Cc or header):
        /// a setup error before anything is sent or journaled, never a failure journaled for each row.
        /// </summary>
        public static void CheckDefinition(CampaignDefinition definition)
        {
            try
            {
                TemplateOf(definition).CheckFixedParts();
            }
            catch (MessageValidationException ex)
            {
                throw new CampaignSetupException($"Nothing was sent: {ex.Message} This applies to every recipient of campaign '{definition.Name}'; fix it and run the command again.", ex);
            }
        }

        public bool IsPaused => Volatile.Read(ref _pauseReason) != null;
        /// <summary>The failure that paused the run, when one did (the circuit breaker's last, an outage, refused credentials).</summary>
        public Failure? PauseFailure => IsPaused ? _pauseFailure : null;
        public long SkippedAlreadySent => Interlocked.Read(ref _skippedSent);

        /// <summary>Checks the input's columns against every placeholder, the address column and the key column.</summary>
        public void CheckColumns(IEnumerable<string> columns)
        {
            var set = new HashSet<string>(columns, StringComparer.OrdinalIgnoreCase);
            _addressColumn ??= RecipientKey.FindAddressColumn(set);
            if (_addressColumn == null)
                throw new CampaignSetupException($"The input has no address column: name one of {string.Join(", ", RecipientKey.AddressColumns)}, or name the column that holds the addresses. Columns: {string.Join(", ", set)}.");
            if (!set.Contains(_addressColumn))
                throw new CampaignSetupException($"The input has no column '{_addressColumn}' for the recipients' addresses.");
            if (_definition.KeyColumn != null && !set.Contains(_definition.KeyColumn))
                throw new CampaignSetupException($"The input has no key column '{_definition.KeyColumn}'.");
            var placeholders = _template.Placeholders.ToList();
            placeholders.AddRange(_unsubscribe.Placeholders);
            foreach (var (field, name) in placeholders)
            {
                if (!set.Contains(name))
                    throw new CampaignSetupException($"The {field} template uses {{{{{name}}}}} but the input has no column '{name}'. Columns: {string.Join(", ", set)}.");
            }
            _columnsChecked = true;
        }

        public void Start(string description)
        {
            _stop = new CancellationTokenSource();
            _queue = Channel.CreateBounded<WorkItem>(new BoundedChannelOptions(_options.Concurrency * MaxDeclaredAhead) { SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
            _journal.Run(RecordKind.RunStarted, description);
            if (_previous.InputCompleteByLegacy)
                _journal.InputEnd(_previous.RowsRead, "A journal of an earlier version, whose run completed: its input was read to the end.");
            Volatile.Write(ref _live, 1); // the first worker sends from the start (slow start: the others once messages are answered)
            _workers = Enumerable.Range(0, _options.Concurrency).Select(i => Task.Run(() => WorkAsync(i, _stop.Token))).ToArray();
            if (_options.MaxRunDuration is TimeSpan limit)
                _deadline = _time.CreateTimer(_ => StopAtTimeLimit(limit), null, limit, Timeout.InfiniteTimeSpan);
        }

        private ITimer? _deadline;
        private int _byLimit;

        /// <summary>No new message starts; those on the wire finish (within their timeout) and are journaled as usual.</summary>
        private void StopAtTimeLimit(TimeSpan limit)
        {
            if (IsPaused) return;
            Pause($"The run reached its time limit ({Describe(limit)}): the messages in flight finished and nothing else was started.", null, byLimit: true);
            _queue?.Writer.TryComplete(); // wakes a submitter waiting for room: it sees the pause
        }

        private static string Describe(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s" : $"{t.TotalSeconds:0.#}s";

        /// <summary>Hands one row to the campaign; waits while the workers are busy (back-pressure). Throws once paused.</summary>
        public async Task SubmitAsync(IReadOnlyDictionary<string, object?> row, long rowNumber, CancellationToken cancellationToken)
        {
            ThrowIfPaused();
            if (!_columnsChecked) CheckColumns(row.Keys);
            if (rowNumber > _rowsRead) Interlocked.Exchange(ref _rowsRead, rowNumber);
            var address = RecipientKey.AddressOf(row, _addressColumn);
            var key = _definition.KeyColumn != null
                ? (row.TryGetValue(_definition.KeyColumn, out var k) ? k?.ToString()?.Trim() ?? "" : "")
                : RecipientKey.Normalize(address);
            if (key.Length == 0) key = $"row:{rowNumber}";
            if (_shard != null && !_shard.Owns(key)) return; // another worker's part of the campaign

            if (!_seen.Add(RecipientKey.Hash(key)))
            {
                _journal.Duplicate(key, rowNumber);
                if (!_previous.IsKnownDuplicate(key, rowNumber)) _counts.AddDuplicate();
                _onOutcome(new CampaignOutcome(key, address, CampaignRecipientStatus.Duplicate, rowNumber) { Note = "A row with the same recipient came earlier; sent once." });
                return;
            }

            var previous = _previous.StateOf(key);
            switch (previous)
            {
                case RecipientState.Sent:
                    Interlocked.Increment(ref _skippedSent);
                    return;
                case RecipientState.FailedPermanent when !_options.RetryFailed:
                    return;
                case RecipientState.Uncertain when !_options.ResendUncertain:
                case RecipientState.Sending when !_options.ResendUncertain:
                    _onOutcome(new CampaignOutcome(key, address, CampaignRecipientStatus.Uncertain, rowNumber)
                    {
                        Note = "In flight when an earlier run stopped: it may have been delivered. Not sent again unless the uncertain ones are resent on purpose.",
                    });
                    return;
            }
            if (previous == null)
            {
                _journal.Pending(key, rowNumber, _options.StoreRows ? row : null);
                _counts.Add(RecipientState.Pending);
            }
            var from = previous ?? RecipientState.Pending;

            MimeMessage message;
            try
            {
                var spec = _template.Render(row) with { To = new[] { address } };
                message = MessageBuilder.Build(_unsubscribe.Apply(spec, row), _time);
            }
            catch (MessageValidationException ex)
            {
                _journal.Failed(key, permanent: true, ex.Problem.ToString(), ex.Message, 0, flush: false);
                Move(from, RecipientState.FailedPermanent);
                _onOutcome(new CampaignOutcome(key, address, CampaignRecipientStatus.Failed, rowNumber) { Error = ex, Note = ex.Message, Problem = ex.Problem });
                return;
            }
            try
            {
                await _queue!.Writer.WriteAsync(new WorkItem(key, address, message, rowNumber, from), cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException)
            {
                ThrowIfPaused();
                throw;
            }
        }

        private void ThrowIfPaused()
        {
            var reason = Volatile.Read(ref _pauseReason);
            if (reason != null) throw new CampaignPausedException(reason, _pauseFailure);
        }

        /// <summary>True when this call paused the run (the first reason wins).</summary>
        private bool Pause(string reason, Failure? failure, bool byLimit = false)
        {
            if (Interlocked.CompareExchange(ref _pauseReason, reason, null) != null) return false;
            if (byLimit) Volatile.Write(ref _byLimit, 1);
            _pauseFailure = failure;
            try { _journal.Run(RecordKind.Paused, reason); }
            catch (Exception ex) when (ex is IOException || ex is ObjectDisposedException) { /* a store that is out: the run reports the pause itself */ }
            _paused.Cancel(); // ends the workers' waits for their turn, the rate limit and the pacing gap
            return true;
        }

        private readonly CancellationTokenSource _paused = new CancellationTokenSource();

        /// <summary>The journal's store cannot be written (past the wait limit) or was taken over: a pause for a failure, like a lost network.</summary>
        private void StoreLost(Exception ex) => Pause(ex.Message, new Failure(FailureKind.Transient, FailureReason.ConnectivityLost, ex.Message));

        /// <summary>Handed to the transport, and none of it left: pending again, in the journal and the counts.</summary>
        private void Unsent(WorkItem item)
        {
            Release(item);
            Move(RecipientState.Sending, RecipientState.Pending);
        }

        /// <summary>A declared message that will not be sent in this run: pending again.</summary>
        private void Release(WorkItem item)
        {
            try { _journal.Released(item.Key); }
            catch (Exception) { /* a journal that cannot be written leaves the intent: read back as the boot rule says */ }
        }

        // A provider that says "too many requests, come back in N s" (429 with Retry-After) means the account, not the
        // message: every worker holds until then, not only the one that was told.
        private long _holdUntilTicks;

        private void ThrottleAware(DeliveryEvent e)
        {
            if (e.Kind == DeliveryEventKind.Retry && e.Reason == FailureReason.Throttled && _options.PaceFromQuota) ReadQuotaAgain();
            if (e.Kind == DeliveryEventKind.Retry && e.Reason == FailureReason.Throttled && e.Limit is TimeSpan wait && wait > TimeSpan.Zero)
            {
                long until = (_time.GetUtcNow() + wait).UtcTicks;
                for (long seen = Interlocked.Read(ref _holdUntilTicks); until > seen; seen = Interlocked.Read(ref _holdUntilTicks))
                    if (Interlocked.CompareExchange(ref _holdUntilTicks, until, seen) == seen) break;
            }
            _events?.Invoke(e);
        }

        private long _quotaReadAt = long.MinValue;
        private int _quotaReading;
        /// <summary>At most one quota read this often, however many throttles come.</summary>
        internal static readonly TimeSpan QuotaReadInterval = TimeSpan.FromSeconds(30);

        /// <summary>
        /// The provider throttled a campaign paced to the account's published quota: its limits may have changed (lowered
        /// for the account, or another sender shares it). Read them again, in the background, and pace to what they say now.
        /// </summary>
        private void ReadQuotaAgain()
        {
            long now = _time.GetTimestamp();
            long last = Interlocked.Read(ref _quotaReadAt);
            if (last != long.MinValue && _time.GetElapsedTime(last, now) < QuotaReadInterval) return;
            if (Interlocked.CompareExchange(ref _quotaReading, 1, 0) != 0) return;
            Interlocked.Exchange(ref _quotaReadAt, now);
            _ = Task.Run(async () =>
            {
                try
                {
                    using var transport = _transports(null);
                    var (quota, problem) = await ProviderLimits.ReadQuotaAsync(transport, _paused.Token).ConfigureAwait(false);
                    var was = _limiter?.Limit;
                    var rate = quota != null ? ProviderLimits.RateOf(quota) : null;
                    if (rate != null && rate != was)
                    {
                        _limiter = new SlidingWindowLimiter(rate, _time, _events);
                        _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Warning,
                            $"{transport.Description} throttled the campaign; its quota, read again, allows {rate} now (was {was?.ToString() ?? "none"}): pacing to it."));
                    }
                    else
                    {
                        _events?.Invoke(new DeliveryEvent(DeliveryEventKind.RateLimit,
                            problem ?? $"{transport.Description} throttled the campaign; its quota, read again, still allows {was}."));
                    }
                }
                catch (Exception) { /* the pace stays as it was */ }
                finally { Interlocked.Exchange(ref _quotaReading, 0); }
            });
        }

        /// <summary>Waits out a provider's hold on the whole account (see <see cref="ThrottleAware"/>).</summary>
        private async Task HoldAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                var left = new DateTimeOffset(Interlocked.Read(ref _holdUntilTicks), TimeSpan.Zero) - _time.GetUtcNow();
                if (left <= TimeSpan.Zero) return;
                await _time.Delay(left, cancellationToken).ConfigureAwait(false);
            }
        }

        // One gate for every connection: one outage is one wait, one warning and one "back", however many workers see it.
        private ConnectivityGate? _gate;
        private readonly object _gateLock = new object();

        /// <summary>The first worker's courier makes the gate; the others share it.</summary>
        private Courier NewCourier(CourierOptions options)
        {
            lock (_gateLock)
            {
                var courier = new Courier(_transports(_events), options, _probe, _time, _random, ThrottleAware, _gate);
                _gate ??= courier.Gate;
                return courier;
            }
        }

        /// <summary>At most this many messages a worker declares (intent on disk) ahead of sending them.</summary>
        internal const int MaxDeclaredAhead = 16;

        // Slow start, as an MTA opens connections to a destination: one connection first, and one more for each message a
        // server has answered (taken, or refused for good: either way the connection works). A server that refuses
        // everything, or limits connections, is not met with -Concurrency connections at once; a healthy one has them all
        // after the first few messages.
        private int _connectionsProven;
        private int _live; // workers past their slow start and not ended
        private TaskCompletionSource<bool> _proven = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);

        private void ConnectionProven()
        {
            if (Volatile.Read(ref _connectionsProven) >= _options.Concurrency) return;
            Interlocked.Increment(ref _connectionsProven);
            Interlocked.Exchange(ref _proven, new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(true);
        }

        /// <summary>Waits until worker <paramref name="index"/> may open its connection; false when the run needs it no more.</summary>
        private async Task<bool> SlowStartAsync(int index, CancellationToken cancellationToken)
        {
            var reader = _queue!.Reader;
            using var ended = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _paused.Token);
            var stop = Task.Delay(Timeout.Infinite, ended.Token);
            while (true)
            {
                var signal = Volatile.Read(ref _proven).Task;
                var left = Volatile.Read(ref _workerLeft).Task;
                if (Volatile.Read(ref _connectionsProven) >= index) break;
                if (ended.IsCancellationRequested) return false;
                bool inputDone = reader.Completion.IsCompleted;
                if (inputDone && _returned.IsEmpty && !HasLater) return false;
                if (Volatile.Read(ref _live) == 0) break; // every worker that was sending has ended: this one carries on
                if (inputDone) await Task.WhenAny(signal, stop, left).ConfigureAwait(false);
                else await Task.WhenAny(signal, stop, left, reader.Completion).ConfigureAwait(false);
            }
            Interlocked.Increment(ref _live);
            return true;
        }

        private async Task WorkAsync(int index, CancellationToken cancellationToken)
        {
            if (index > 0 && !await SlowStartAsync(index, cancellationToken).ConfigureAwait(false)) return;
            // A refused extra connection hands the message to the connections that work (only while there are others).
            var courierOptions = _options.Courier with
            {
                Pacing = PacingOptions.None, YieldRefusedConnection = () => Volatile.Read(ref _active) > 1,
                YieldThrottled = _adaptive != null, DeferStatedWaits = _options.Deferral.Enabled,
            };
            Interlocked.Increment(ref _active);
            using var courier = NewCourier(courierOptions);
            // Messages whose intent is written, each with the task that ends when that intent is on disk. The
            // worker declares every message already queued in one go (one fsync for all of them), and declares
            // the next ones while the current message is on the wire, so the disk's latency is neither paid per
            // message nor added to a send. An intent never followed by "sending" is read back as not sent (in
            // the same boot of the OS), so declaring ahead loses and duplicates nothing.
            var declared = new Queue<(WorkItem Item, Task OnDisk)>();
            bool working = false; // this worker's connection has carried a message the server answered
            var reader = _queue!.Reader;
            using var waits = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _paused.Token);
            try
            {
                while (true)
                {
                    if (declared.Count == 0 && (_returned.TryDequeue(out var back) || TryTakeDue(out back)))
                        declared.Enqueue((back, _journal.IntentsAsync(new[] { (back.Key, back.To) })));
                    if (declared.Count == 0)
                    {
                        if (!await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            if (IsPaused) break;
                            if (!_returned.IsEmpty) continue; // handed back by a refused connection: still to send
                            if (HasLater)
                            {
                                // The input is done; deferred messages are still to come due. Wait for the first of them.
                                try { await _time.Delay(Min(UntilNextDue(), TimeSpan.FromSeconds(1)), waits.Token).ConfigureAwait(false); }
                                catch (OperationCanceledException) when (IsPaused && !cancellationToken.IsCancellationRequested) { }
                                continue;
                            }
                            break;
                        }
                        Declare(reader, declared);
                        if (declared.Count == 0) continue;
                    }
                    var (item, onDisk) = declared.Dequeue();
                    if (IsPaused) { Release(item); continue; } // pending again in the journal, for the resume
                    SlidingWindowLimiter.Reservation? permit = null;
                    long ticket = 0;
                    try
                    {
                        await _turn.WaitAsync(waits.Token).ConfigureAwait(false);
                        try
                        {
                            await HoldAsync(waits.Token).ConfigureAwait(false);
                            var limiter = _limiter;
                            if (limiter != null) permit = await limiter.WaitAsync(waits.Token).ConfigureAwait(false);
                            if (_adaptive != null) ticket = await _adaptive.WaitTurnAsync(waits.Token).ConfigureAwait(false);
                            await _pacer.WaitTurnAsync(waits.Token).ConfigureAwait(false);
                        }
                        finally
                        {
                            _turn.Release();
                        }
                    }
                    catch (OperationCanceledException) when (IsPaused && !cancellationToken.IsCancellationRequested) { } // a pause ends a wait at once
                    if (IsPaused) { Release(item); continue; }
                    if (_quota != null && !_quota.TryTake(Recipients(item.Message), out var fitsAt))
                    {
                        Pause($"The provider's daily limit is reached: {_quota.PerDay:N0} recipients in 24 hours for this sender. " +
                              $"The campaign may resume after {fitsAt.ToUniversalTime():yyyy-MM-dd HH:mm} UTC.", null, byLimit: true);
                        Release(item);
                        continue;
                    }
                    await onDisk.ConfigureAwait(false);
                    if (declared.Count == 0) Declare(reader, declared);
                    try
                    {
                        bool answered;
                        try { answered = await SendOneAsync(courier, item, permit, ticket, cancellationToken).ConfigureAwait(false); }
                        finally { permit?.Done(); }
                        if (answered && !working) { working = true; Interlocked.Increment(ref _workingConnections); }
                    }
                    catch (ConnectionRefusedException refused)
                    {
                        if (working) { working = false; Interlocked.Decrement(ref _workingConnections); }
                        // What this worker declared ahead goes back too: the connections that work send it meanwhile.
                        while (declared.Count > 0)
                        {
                            var (ahead, aheadOnDisk) = declared.Dequeue();
                            try { await aheadOnDisk.ConfigureAwait(false); } catch (Exception) { /* an intent not on disk was never acted on */ }
                            Release(ahead);
                            _returned.Enqueue(ahead);
                        }
                        await StandByAsync(refused.Failure, waits.Token).ConfigureAwait(false);
                    }
                    catch (PaceRefusedException tooFast)
                    {
                        // The message went back (first in line); the pace holds every connection and learns the server's rate.
                        _adaptive!.Refused(ticket, tooFast.Failure);
                        var held = _adaptive.HeldFor;
                        if (held >= _options.Courier.Connectivity.WaitTimeout)
                            Pause($"The server has refused every message as too fast for {Describe(held)} (its last reply: {tooFast.Failure.ServerReply ?? tooFast.Failure.Message}); " +
                                  "nothing was failed by it.", tooFast.Failure with { Kind = FailureKind.Transient });
                    }
                }
            }
            finally
            {
                Interlocked.Decrement(ref _active);
                Interlocked.Decrement(ref _live);
                Interlocked.Exchange(ref _workerLeft, new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(true);
                // Whatever is still declared was never handed over; let its disk write finish before the journal closes.
                foreach (var task in declared.Select(d => d.OnDisk).Distinct())
                {
                    try { await task.ConfigureAwait(false); }
                    catch (Exception) { /* the run is ending anyway; an intent that did not reach the disk was never acted on */ }
                }
                // Declared, never handed over: said so in the journal, so that a resume on another machine (another boot)
                // does not have to take them for maybe sent.
                foreach (var (item, _) in declared) Release(item);
                using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                try { await courier.CloseAsync(quick.Token).ConfigureAwait(false); } catch (Exception) { /* closing is best effort */ }
            }
        }

        /// <summary>Takes what is queued (up to <see cref="MaxDeclaredAhead"/>) and writes their intents, forced to disk together.</summary>
        private void Declare(ChannelReader<WorkItem> reader, Queue<(WorkItem, Task)> declared)
        {
            var batch = new List<WorkItem>();
            while (batch.Count < MaxDeclaredAhead && reader.TryRead(out var next)) batch.Add(next);
            if (batch.Count == 0) return;
            var onDisk = _journal.IntentsAsync(batch.Select(b => (b.Key, b.To)));
            foreach (var b in batch) declared.Enqueue((b, onDisk));
        }

        private void Move(RecipientState from, RecipientState to) => _counts.Move(from, to);

        // Workers with a connection to use (not standing by after a refused one), and messages handed back by refused ones.
        private int _active;
        private readonly System.Collections.Concurrent.ConcurrentQueue<WorkItem> _returned = new System.Collections.Concurrent.ConcurrentQueue<WorkItem>();
        private int _connectionLimitWarned;
        private TaskCompletionSource<bool> _workerLeft = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        /// <summary>How long a worker whose connection was refused waits before it tries for one again.</summary>
        internal static readonly TimeSpan StandByTime = TimeSpan.FromMinutes(1);

        /// <summary>
        /// The server would not give this worker a connection: the run goes on with the connections it has (one warning
        /// says how many), and this worker asks again after <see cref="StandByTime"/>, so that a limit lifted is used.
        /// It stops waiting early when no other worker is left to send (then its own retries apply again).
        /// </summary>
        private async Task StandByAsync(Failure failure, CancellationToken cancellationToken)
        {
            Interlocked.Decrement(ref _active);
            Interlocked.CompareExchange(ref _firstRefusal, failure, null);
            Interlocked.Exchange(ref _lastRefusalTicks, _time.GetUtcNow().UtcTicks);
            try
            {
                var until = _time.GetUtcNow() + StandByTime;
                while (_time.GetUtcNow() < until && Volatile.Read(ref _active) > 0 && !IsPaused)
                {
                    WarnConnectionLimit(settled: false);
                    var left = Volatile.Read(ref _workerLeft).Task; // wakes at once when another worker ends
                    await Task.WhenAny(_time.Delay(TimeSpan.FromSeconds(1), cancellationToken), left).ConfigureAwait(false);
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested || IsPaused) { }
            finally
            {
                Interlocked.Increment(ref _active);
            }
        }

        private Failure? _firstRefusal;
        private long _lastRefusalTicks;
        // Connections that carried a message the server answered, and were not refused since.
        private int _workingConnections;
        /// <summary>The connections count as settled once no other was refused for this long.</summary>
        internal static readonly TimeSpan SettleTime = TimeSpan.FromSeconds(2);

        /// <summary>
        /// One warning, once the number of connections the server gives has settled (no refusal for <see cref="SettleTime"/>,
        /// or the run ends): it names that number, not the count at the first refusal.
        /// </summary>
        private void WarnConnectionLimit(bool settled)
        {
            var failure = Volatile.Read(ref _firstRefusal);
            if (failure == null || Volatile.Read(ref _connectionLimitWarned) != 0) return;
            if (!settled && _time.GetUtcNow() - new DateTimeOffset(Interlocked.Read(ref _lastRefusalTicks), TimeSpan.Zero) < SettleTime) return;
            if (Interlocked.Exchange(ref _connectionLimitWarned, 1) != 0) return;
            int working = Math.Max(1, Volatile.Read(ref _workingConnections));
            _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Warning,
                $"{failure.Message} Sending with {working} connection{(working == 1 ? "" : "s")} instead of {_options.Concurrency}; no message is failed by it, and another connection is tried every {StandByTime.TotalMinutes:0} min."));
        }

        /// <summary>
        /// A transient failure after the quick retries: set aside and due again later (the journal says "deferred", so a
        /// crash loses nothing), unless deferral is off, the failure stops the run, or the deferral limit has passed.
        /// </summary>
        private bool Defer(WorkItem item, Failure failure, int attempts)
        {
            var deferral = _options.Deferral;
            if (!deferral.Enabled || failure.Kind != FailureKind.Transient || failure.StopsRun || IsPaused) return false;
            var now = _time.GetUtcNow();
            var since = item.DeferredSince ?? now;
            if (now - since >= deferral.Limit) return false;
            int n = item.Deferrals + 1;
            var due = now + deferral.Wait(n, NextRandom(), failure.RetryAfter);
            if (due > since + deferral.Limit) due = since + deferral.Limit; // one last try at the limit
            _journal.Failed(item.Key, false, failure.Reason.ToString(), failure.Message, attempts);
            Move(RecipientState.Sending, RecipientState.FailedTransient);
            _lastError = failure.Message;
            lock (_later) _later.Add((due, item with { From = RecipientState.FailedTransient, DeferredSince = since, Deferrals = n }));
            _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Retry,
                $"Deferred {item.To} after {attempts} attempt{(attempts == 1 ? "" : "s")} ({failure.Message}); trying again at {due.ToLocalTime():HH:mm:ss}, " +
                $"the run goes on meanwhile (deferral {n}; reported failed after {deferral.Limit.TotalMinutes:0.#} min)."));
            return true;
        }

        private double NextRandom() { lock (_random) return _random.NextDouble(); }

        private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

        private static int Recipients(MimeMessage m) => Math.Max(1, m.To.Count + m.Cc.Count + m.Bcc.Count);

        private async Task<bool> SendOneAsync(Courier courier, WorkItem item, SlidingWindowLimiter.Reservation? permit, long ticket, CancellationToken cancellationToken)
        {
            // The hand-over record. In a file it is written at once (its intent is on disk already); in a store read from
            // other machines it is made durable while the envelope is on the wire, and the transport waits for it at its
            // point of no return (SendAttempt.HandOver): the store's round trip is not added to the send.
            var handOver = _journal.SendingAsync(item.Key, item.To);
            _ = handOver.ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            permit?.InFlight(); // the limit counts it until its answer came (see Done, in the worker)
            Move(item.From, RecipientState.Sending);
            DeliveryResult result;
            while (true)
            {
                try
                {
                    result = await courier.DeliverAsync(item.Message, handOver, cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (HandOverException late) when (late.Late)
                {
                    // The store is slow or out: nothing of the message went. Wait for the store with its own rules (the
                    // network's: "waiting", checks, the limit), then deliver; at the limit the run pauses.
                    try { await handOver.ConfigureAwait(false); }
                    catch (Exception ex) { StoreLost(ex); Unsent(item); _adaptive?.Released(ticket); return false; }
                    if (IsPaused) { Unsent(item); _adaptive?.Released(ticket); return false; }
                }
                catch (HandOverException failed)
                {
                    // No durable record, no send: the store stayed out past the wait limit, or another run took the journal.
                    // The message never left; its record, if the store has it after all, reads back as Uncertain.
                    StoreLost(failed.InnerException ?? failed);
                    Unsent(item);
                    _adaptive?.Released(ticket);
                    return false;
                }
                catch (PaceRefusedException)
                {
                    // Refused as too fast: never tried. Pending again, first in line at the slower pace.
                    Unsent(item);
                    _returned.Enqueue(item with { From = RecipientState.Pending });
                    throw;
                }
                catch (ConnectionRefusedException)
                {
                    _adaptive?.Released(ticket);
                    // Never tried: pending again, for a connection that works.
                    Unsent(item);
                    _returned.Enqueue(item with { From = RecipientState.Pending });
                    throw;
                }
                catch (DeliveryCanceledException canceled)
                {
                    _adaptive?.Released(ticket);
                    // Nothing of it left: pending again. Otherwise the journal keeps "sending": Uncertain on resume.
                    if (!canceled.MayHaveBeenSent) Unsent(item);
                    throw;
                }
            }
            // A failure that came before the point of no return, while the store was lost too: the run stops for the store.
            if (handOver.IsFaulted) StoreLost(handOver.Exception!.InnerException ?? handOver.Exception);

            // The row's own recipient decides the row; a campaign-wide Cc or Bcc refused beside it is noted, not its failure.
            var (status, failure) = RowFate(result, item.To);
            if (result.Status == DeliveryStatus.Sent || result.Status == DeliveryStatus.PartiallySent) _adaptive?.Taken(ticket); else _adaptive?.Released(ticket);
            bool answered = result.Status == DeliveryStatus.Sent || result.Status == DeliveryStatus.PartiallySent || result.Failure?.Kind == FailureKind.Permanent && !result.Failure.StopsRun;
            if (answered) ConnectionProven();
            // Deferred: set aside for later (journaled as such); its outcome comes when it is sent, or at the deferral limit.
            bool deferred = status == CampaignRecipientStatus.Failed && Defer(item, failure!, result.Attempts);
            var outcome = new CampaignOutcome(item.Key, item.To, status, item.Row)
            {
                Attempts = result.Attempts,
                MessageId = result.MessageId,
                ServerReply = result.ServerReply,
                Failure = failure,
                Error = failure == null ? null : result.Error,
                Duration = result.Duration,
                Refused = result.Refused,
            };
            switch (status)
            {
                case CampaignRecipientStatus.Sent:
                    _journal.Sent(item.Key, result.MessageId, result.ServerReply, result.Attempts, result.Duration, result.Refused);
                    Move(RecipientState.Sending, RecipientState.Sent);
                    Interlocked.Exchange(ref _consecutiveFailures, 0);
                    Interlocked.Increment(ref _sentThisRun);
                    break;
                case CampaignRecipientStatus.Uncertain:
                    _journal.Uncertain(item.Key, result.MessageId, failure!.Message, result.Attempts);
                    Move(RecipientState.Sending, RecipientState.Uncertain);
                    break;
                case CampaignRecipientStatus.Failed when deferred:
                    break;
                default:
                    bool permanent = failure!.Kind == FailureKind.Permanent && !failure.StopsRun;
                    _journal.Failed(item.Key, permanent, failure.Reason.ToString(), failure.Message, result.Attempts);
                    Move(RecipientState.Sending, permanent ? RecipientState.FailedPermanent : RecipientState.FailedTransient);
                    _lastError = failure.Message;
                    break;
            }
            // A deferral is the server's "not yet", not a failure: a greylisting server defers every new recipient, and
            // that must not trip the breaker that is there for a server refusing everything.
            if (status != CampaignRecipientStatus.Sent && !deferred)
            {
                int inARow = Interlocked.Increment(ref _consecutiveFailures);
                if (failure!.StopsRun)
                    Pause(failure.Message, failure);
                else if (_options.MaxConsecutiveFailures > 0 && inARow >= _options.MaxConsecutiveFailures)
                    Pause($"{inARow} messages in a row failed; the last: {failure.Message}", failure);
            }
            else if (result.Failure?.StopsRun == true)
            {
                Pause(result.Failure.Message, result.Failure); // delivered to the row, then the run lost its server or credentials
            }
            if (!deferred) _onOutcome(outcome); // a deferred row has its outcome when it is sent, or at the deferral limit
            return answered;
        }

        /// <summary>What a message's result means for its row, whose recipient is <paramref name="to"/>.</summary>
        internal static (CampaignRecipientStatus Status, Failure? Failure) RowFate(DeliveryResult result, string to)
        {
            switch (result.Status)
            {
                case DeliveryStatus.Sent: return (CampaignRecipientStatus.Sent, null);
                case DeliveryStatus.Uncertain: return (CampaignRecipientStatus.Uncertain, result.Failure);
                case DeliveryStatus.Failed: return (CampaignRecipientStatus.Failed, result.Failure);
            }
            if (result.Delivered.Contains(to, StringComparer.OrdinalIgnoreCase)) return (CampaignRecipientStatus.Sent, null);
            var own = result.Refused.FirstOrDefault(r => string.Equals(r.Address, to, StringComparison.OrdinalIgnoreCase))?.Failure ?? result.Failure!;
            return (own.Kind == FailureKind.Ambiguous ? CampaignRecipientStatus.Uncertain : CampaignRecipientStatus.Failed, own);
        }

        private long _rowsRead;
        private bool _inputComplete;

        /// <summary>The caller read the campaign's input to its end, <paramref name="rows"/> rows, all handed over: recorded durably.</summary>
        public void InputComplete(long rows)
        {
            if (IsPaused) return; // rows after the pause were not taken
            try { _journal.InputEnd(rows); }
            catch (JournalStoreException ex)
            {
                StoreLost(ex);
                return;
            }
            Interlocked.Exchange(ref _rowsRead, rows);
            _inputComplete = true;
        }

        private bool HasWholeInput => _inputComplete || _previous.InputComplete;

        /// <summary>Waits for the workers to finish what was handed to them, writes the end record and sums up.</summary>
        public async Task<CampaignSummary> CompleteAsync()
        {
            _queue?.Writer.TryComplete();
            await Task.WhenAll(_workers).ConfigureAwait(false);
            _deadline?.Dispose();
            WarnConnectionLimit(settled: true);
            if (_adaptive?.Settled is string pace)
                _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Warning,
                    $"The server limited how fast it took mail ({_adaptive.LastReply}); the campaign settled at {pace}."));
            if (!IsPaused)
            {
                if (HasWholeInput) _journal.Run(RecordKind.Completed);
                else _journal.Run(RecordKind.Incomplete, $"Every row read so far is done, but the input was never read to its end ({Math.Max(_previous.RowsRead, Interlocked.Read(ref _rowsRead))} rows read).");
            }
            return Summarize();
        }

        /// <summary>Stops the workers at once (Ctrl+C). In-flight sends are journaled as the design says.</summary>
        public async Task AbortAsync()
        {
            _stop?.Cancel();
            _queue?.Writer.TryComplete();
            try { await Task.WhenAll(_workers).ConfigureAwait(false); }
            catch (Exception) { /* cancelled */ }
            try { _journal.Run(RecordKind.Stopped, "Stopped by the user."); } catch (Exception ex) when (ex is ObjectDisposedException || ex is IOException) { }
        }

        public CampaignSummary Summarize() =>
            _counts.Summary(_definition.Name, IsPaused ? CampaignState.Paused : HasWholeInput ? CampaignState.Completed : CampaignState.Incomplete) with
            {
                InputComplete = HasWholeInput,
                RowsRead = Math.Max(_previous.RowsRead, Interlocked.Read(ref _rowsRead)),
                SentThisRun = Interlocked.Read(ref _sentThisRun),
                SkippedAlreadySent = SkippedAlreadySent,
                Duration = _time.GetElapsedTime(_started),
                JournalPath = _journal.Path,
                PauseReason = _pauseReason,
                StoppedByLimit = Volatile.Read(ref _byLimit) == 1,
                LastError = _lastError ?? _previous.LastError,
            };
    }
}
