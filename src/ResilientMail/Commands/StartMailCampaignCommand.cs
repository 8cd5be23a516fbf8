using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using ResilientMail.Core.Campaigns;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Messages;
using ResilientMail.Core.Resilience;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Sends a templated message to every row, journaling each recipient's fate so that a crash, Ctrl+C or outage never loses or doubles one.</summary>
    [Cmdlet(VerbsLifecycle.Start, "MailCampaign", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Pipeline")]
    [OutputType(typeof(CampaignRecipientResult), typeof(MailCampaignInfo))]
    public sealed class StartMailCampaignCommand : ResilientSendCmdlet
    {
        [Parameter(Mandatory = true, Position = 0)]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(CampaignNameCompleter))]
        public string Name { get; set; } = "";

        [Parameter(ValueFromPipeline = true, ParameterSetName = "Pipeline")]
        public PSObject? InputObject { get; set; }

        /// <summary>A CSV of recipients, read as a stream.</summary>
        [Parameter(Mandatory = true, ParameterSetName = "Path")]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = "";

        [Parameter]
        [ArgumentCompleter(typeof(TransportVariableCompleter))]
        public MailTransport? Transport { get; set; }

        [Parameter] public string? From { get; set; }
        [Parameter] public string? Subject { get; set; }
        [Parameter] public string? Body { get; set; }
        [Parameter] public string? HtmlBody { get; set; }
        [Parameter] public string? BodyPath { get; set; }
        [Parameter] public string? HtmlBodyPath { get; set; }
        [Parameter] public string[]? ReplyTo { get; set; }
        [Parameter] public string[]? Cc { get; set; }
        [Parameter] public string[]? Bcc { get; set; }
        [Parameter] public Hashtable? Headers { get; set; }
        [Parameter] [Alias("Attachment")] public string[]? Attachments { get; set; }
        [Parameter] public string? UnsubscribeUrl { get; set; }
        [Parameter] public string? UnsubscribeMailto { get; set; }
        /// <summary>The column that identifies a recipient; the normalised address by default.</summary>
        [Parameter] public string? KeyColumn { get; set; }
        /// <summary>The column with the address; Email, EmailAddress, To or Recipient by default.</summary>
        [Parameter] public string? AddressColumn { get; set; }
        [Parameter] public string? JournalPath { get; set; }
        /// <summary>An Azure Blob Storage container that holds the journal instead of the local folder (a runbook's disk does not outlive its job).</summary>
        [Parameter] public string? JournalStore { get; set; }
        /// <summary>The store's connection string or SAS token; without it, a SAS in the address or Microsoft Entra (a managed identity).</summary>
        [Parameter] public System.Security.SecureString? JournalStoreSecret { get; set; }
        /// <summary>This worker's part of the recipients, k/N: N workers, each with its own shard, together send every recipient once.</summary>
        [Parameter] public string? Shard { get; set; }
        [Parameter] public SwitchParameter Resume { get; set; }
        [Parameter] public SwitchParameter Force { get; set; }
        [Parameter] public SwitchParameter RetryFailed { get; set; }
        [Parameter] public SwitchParameter ResendUncertain { get; set; }
        /// <summary>At most this many messages per window: 50/second, 100/minute, 1000/hour, 10000/day.</summary>
        [Parameter] public string? RateLimit { get; set; }
        [Parameter] [ValidateRange(1, 64)] public int Concurrency { get; set; } = 1;
        /// <summary>Pause when this many recipients were sent to in 24 hours (0: no cap); by default the provider's (Microsoft 365: 10,000).</summary>
        [Parameter] [ValidateRange(0, int.MaxValue)] public int? MaxRecipientsPerDay { get; set; }
        /// <summary>How long a message whose quick retries failed transiently (greylisting, a rate limit) is tried again later, while the run goes on; 0: report it at once.</summary>
        [Parameter] [TimeSpanArgument] public TimeSpan DeferralLimit { get; set; } = DeferralOptions.Default.Limit;
        /// <summary>The first wait before a deferred message is tried again; each later wait is twice the one before (at most 15 min).</summary>
        [Parameter] [TimeSpanArgument] public TimeSpan DeferralInterval { get; set; } = DeferralOptions.Default.First;
        /// <summary>Stop this run after this long (a runbook's fair-share limit): State Paused, the resume command; nothing in flight is lost.</summary>
        [Parameter] [TimeSpanArgument] public TimeSpan? MaxRunDuration { get; set; }
        /// <summary>Pause after this many failures in a row (0: never).</summary>
        [Parameter] [ValidateRange(0, int.MaxValue)] public int MaxConsecutiveFailures { get; set; } = Core.Defaults.MaxConsecutiveFailures;

        private CampaignRunner? _runner;
        private CampaignJournal? _journal;
        private StatusReporter? _status;
        private CampaignPlan? _plan;
        private MailTransport? _transport;
        private JournalWhere _where = JournalWhere.Default;
        private bool _dryRun, _received, _finished, _declined;
        private long _rows;

        protected override void BeginProcessing()
        {
            var courier = BuildCourierOptions();
            _dryRun = MyInvocation.BoundParameters.ContainsKey("WhatIf");
            _where = JournalWhere.From(this, JournalPath, JournalStore, JournalStoreSecret, Shard);
            var plan = _plan = Plan();
            if (plan.AskBeforeContinuing) ConfirmContinue(plan);
            if (plan.TemplatesDiffer)
                Streams.Warn(this, $"Campaign '{Name}' continues with the templates it started with; to change them, Remove-MailCampaign and start again.");
            var transport = _transport = Transport ?? TransportFromJournal(plan.Transport);
            CheckTransport(transport);
            var rate = ParseRate();
            var limits = Await(token => ProviderLimits.ForCampaignAsync(transport.Description, () => transport.Open(null), !_dryRun, Concurrency, rate, MaxRecipientsPerDay, token));
            if (limits.Warning != null) Streams.Warn(this, limits.Warning);
            if (limits.QuotaProblem != null) Streams.Warn(this, limits.QuotaProblem + " (-RateLimit, -MaxRecipientsPerDay)");
            var options = new CampaignOptions
            {
                Courier = courier, Pacing = courier.Pacing, MaxRunDuration = MaxRunDuration, Deferral = DeferralOptions.For(DeferralLimit, DeferralInterval),
                MaxConsecutiveFailures = MaxConsecutiveFailures, RetryFailed = RetryFailed, ResendUncertain = ResendUncertain,
            };
            options = limits.ApplyTo(options);
            _status = new StatusReporter(this, $"Campaign {Name}");
            if (ParameterSetName == "Path") _status.Total = (int)Math.Min(int.MaxValue, CsvRecords.CountRows(CsvPath!));
            if (_dryRun) return;
            // -Confirm asks once for the campaign, not once per recipient; -WhatIf lists every recipient.
            if (!ShouldProcess($"campaign '{Name}'{(_status.Total is int n ? $" ({n} rows)" : "")} via {transport}", "Send mail")) { _declined = true; return; }

            try { _journal = CampaignJournal.Open(plan.Store, plan.JournalId); }
            catch (JournalLockedException ex) { Stop(ex, "JournalLocked", ErrorCategory.ResourceBusy); }
            catch (JournalStoreException ex) { Stop(ex, "JournalStoreUnavailable", ErrorCategory.ConnectionError); }
            if (!plan.Exists) _journal!.WriteDefinition(plan.Definition);
            _runner = new CampaignRunner(plan.Definition, _journal!, plan.Previous, events => transport.Open(events), options, new TcpProbe(), EventSink(_status),
                outcome => Post(() => Emit(outcome), urgent: false)); // results need no wake-up each: drained at the next one, or within 250 ms
            if (CsvPath != null)
            {
                using var csv = CsvRecords.Open(CsvPath);
                if (csv.Header.Count == 0) Streams.Warn(this, $"{Path} is empty: there is nothing to send.");
                else Guard(() => _runner.CheckColumns(csv.Header));
            }
            var start = $"Campaign '{Name}': journal {plan.JournalPath}; {(plan.Exists ? $"resuming ({plan.Previous.Count(RecipientState.Sent)} already sent)" : "new")}; via {transport}; " +
                        $"{options.Concurrency} connection(s){(options.RateLimit != null ? ", at most " + options.RateLimit + (limits.RateFromProvider ? $" (from {limits.Source ?? "the provider's limit"}; -RateLimit overrides it)" : "") : "")}.";
            OpenLog(start);
            Streams.Verbose(this, start);
            _runner.Start($"{(plan.Exists ? "resume" : "start")} via {transport}");
        }

        private string? CsvPath => ParameterSetName == "Path" ? GetUnresolvedProviderPathFromPSPath(Path) : null;

        protected override void ProcessRecord()
        {
            if (InputObject == null || _declined || _finished) return; // after a pause at a limit, rows are not taken: the resume reads them again
            _received = true;
            Submit(Rows.Of(InputObject));
        }

        protected override void EndProcessing()
        {
            if (_declined) return;
            var plan = _plan!;
            switch (plan.Source(_received, CsvPath))
            {
                case RowSource.Csv:
                    var csvPath = CsvPath ?? plan.Definition.SourcePath!; // -Path, or the file a campaign resumed by name was started with
                    if (_status!.Total == null) _status.Total = (int)Math.Min(int.MaxValue, CsvRecords.CountRows(csvPath));
                    if (Feed(() => { var csv = CsvRecords.Open(csvPath); return (csv, csv.Rows().Select(Template.Row)); })) InputRead();
                    break;
                case RowSource.Journal:
                    if (!plan.Previous.InputComplete)
                        Streams.Warn(this, $"Campaign '{Name}' took its rows from the pipeline, and no run read that input to its end: only the {plan.Previous.RowsRead} row(s) read so far are in the journal. " +
                                           $"To send the rest, pipe the same input again: {CampaignInfo.ResumeCommand(Name, _where, _transport?.NeedsCallerSecret == true, true)} (rows already in the journal are skipped).");
                    if (_status!.Total == null) _status.Total = (int)Math.Min(int.MaxValue, plan.Previous.Rows);
                    Feed(() => ((IDisposable?)null, plan.PendingRows().Select(r => Template.Row(r.Data))));
                    break;
                default:
                    InputRead(); // the pipeline ended: every row it held was handed over (none, for a new campaign given nothing)
                    break;
            }
            if (_runner == null || _finished) return;
            Finish(null);
        }

        /// <summary>The one end of a run: wait for the workers, write the summary, say what is left and how to go on.</summary>
        private void Finish(string? pausedBecause)
        {
            var summary = Await(token => _runner!.CompleteAsync());
            _finished = true;
            var info = Summary(summary);
            _status!.Complete();
            Log?.End($"Campaign '{Name}' {info.State}: sent {info.Sent}, failed {info.Failed}, uncertain {info.Uncertain}, not yet sent {info.Remaining}.");
            WriteObject(info);
            foreach (var warning in CampaignInfo.Warnings(info, _where, _transport?.NeedsCallerSecret == true)) Streams.Warn(this, warning);
            if (summary.State == CampaignState.Paused && summary.StoppedByLimit) Streams.Warn(this, PauseText(summary.PauseReason ?? "", info).Message); // an expected end: no error
            else if (summary.State == CampaignState.Paused) Paused(pausedBecause ?? Errors.Explain(summary.PauseReason ?? "paused", _runner!.PauseFailure), info);
        }

        private void InputRead()
        {
            if (_runner != null && !_finished) _runner.InputComplete(_rows);
        }

        /// <summary>
        /// Hands a whole source (a CSV, the journal's rows) to the campaign from one background task, so
        /// the pipeline thread only pumps results: no thread hop per row. True when every row was handed over.
        /// </summary>
        private bool Feed(Func<(IDisposable? Owner, IEnumerable<IReadOnlyDictionary<string, object?>> Rows)> open)
        {
            if (_dryRun)
            {
                var (owner, rows) = open();
                using (owner) foreach (var row in rows) Submit(row);
                return false;
            }
            try
            {
                Await(async token =>
                {
                    var (owner, rows) = open();
                    using (owner)
                    {
                        foreach (var row in rows)
                        {
                            Interlocked.Increment(ref _rows);
                            try { await _runner!.SubmitAsync(row, _rows, token).ConfigureAwait(false); }
                            catch (CampaignPausedException) { Interlocked.Decrement(ref _rows); throw; }
                        }
                    }
                    return true;
                });
                return true;
            }
            catch (CampaignSetupException ex) { MissingColumn(ex); }
            catch (CampaignPausedException ex) { PausedNow(ex); }
            return false;
        }

        private void Submit(IReadOnlyDictionary<string, object?> row)
        {
            _rows++;
            if (_dryRun)
            {
                var to = RecipientKey.AddressOf(row, AddressColumn ?? _plan!.Definition.AddressColumn);
                ShouldProcess(to.Length > 0 ? to : $"row {_rows}", $"Send campaign '{Name}' mail");
                return;
            }
            try
            {
                // Usually the queue has room and the row is taken at once, with no thread hop.
                var taken = _runner!.SubmitAsync(row, _rows, StopToken);
                if (taken.IsCompleted) { taken.GetAwaiter().GetResult(); Drain(); }
                else Await(taken);
            }
            catch (CampaignSetupException ex) { MissingColumn(ex); }
            catch (CampaignPausedException ex)
            {
                _rows--; // this row was not taken: it counts as not yet read
                PausedNow(ex);
            }
        }

        private void PausedNow(CampaignPausedException ex) => Finish(Errors.Explain(ex.Message, ex.Failure));

        private void Emit(CampaignOutcome o)
        {
            if (o.Status != Core.Campaigns.CampaignRecipientStatus.Duplicate) _status!.Count(o.Status switch
            {
                Core.Campaigns.CampaignRecipientStatus.Sent => DeliveryStatus.Sent,
                Core.Campaigns.CampaignRecipientStatus.Uncertain => DeliveryStatus.Uncertain,
                _ => DeliveryStatus.Failed,
            });
            Log?.Result(o.To, o.Status.ToString(), o.Attempts, o.MessageId, o.ServerReply, o.Failure?.Message ?? o.Note,
                o.Failure == null ? null : $"{o.Failure.Kind}, {o.Failure.Reason}", o.Duration, Name, o.Row);
            WriteObject(OutputMapping.Result(Name, o));
            if (o.Error is MessageValidationException invalid) WriteError(Errors.For(invalid, o.To));
            else if (o.Error != null && o.Failure != null && !o.Failure.StopsRun) WriteError(Errors.For(o.Error, o.Failure, o.To));
            else if (o.Status == Core.Campaigns.CampaignRecipientStatus.Uncertain && o.Error == null) Streams.Warn(this, $"{o.To}: {o.Note} (-ResendUncertain sends it again)");
            else if (o.Status == Core.Campaigns.CampaignRecipientStatus.Duplicate) Streams.Verbose(this, $"Row {o.Row}: {o.To} is a duplicate; sent once.");
            // The row's recipient has it; a campaign-wide Cc or Bcc beside it did not: one error per such address.
            foreach (var refused in o.Failure == null ? o.Refused : new RecipientRefusal[0])
                WriteError(Errors.For(new MailDeliveryException(refused.Failure), refused.Failure, refused.Address));
        }

        private MailCampaignInfo Summary(CampaignSummary s)
        {
            long unread = _status!.Total is int total ? Math.Max(0, total - _rows) : 0;
            var info = CampaignInfo.From(s, _plan!.Previous, _transport?.ToString() ?? "", unread);
            info.Shard = _where.Shard?.ToString();
            info.NextStep = CampaignInfo.NextStep(info, _plan.Piped && CsvPath == null, _transport?.NeedsCallerSecret == true, _where);
            return info;
        }

        private (string Message, string Resume) PauseText(string reason, MailCampaignInfo info)
        {
            bool piped = ParameterSetName == "Pipeline" && _received && !info.InputComplete;
            var resume = info.NextStep ?? CampaignInfo.ResumeCommand(Name, _where, _transport?.NeedsCallerSecret == true, piped);
            return (CampaignInfo.PauseMessage(info, reason, resume, piped), resume);
        }

        private void Paused(string reason, MailCampaignInfo info)
        {
            var (message, resume) = PauseText(reason, info);
            ThrowTerminatingError(new ErrorRecord(new CampaignPausedException(message, null), "CampaignPaused", ErrorCategory.ResourceUnavailable, Name)
            {
                ErrorDetails = new ErrorDetails(message) { RecommendedAction = resume },
            });
        }

        /// <summary>The run, decided in Core (new or resumed, its definition, its transport); a problem is a terminating error with a stable id.</summary>
        private CampaignPlan Plan()
        {
            string? Resolve(string? path) => path == null ? null : GetUnresolvedProviderPathFromPSPath(path);
            try
            {
                return CampaignSetup.Plan(new CampaignRequest
                {
                    Name = Name, JournalPath = Resolve(JournalPath), Store = _where.Store, Shard = _where.Shard, Resume = Resume, Force = Force, DryRun = _dryRun,
                    From = From, Subject = Subject, Body = Body, HtmlBody = HtmlBody, BodyPath = Resolve(BodyPath), HtmlBodyPath = Resolve(HtmlBodyPath),
                    ReplyTo = ReplyTo, Cc = Cc, Bcc = Bcc, Attachments = Attachments?.Select(p => GetUnresolvedProviderPathFromPSPath(p)).ToArray(),
                    Headers = Headers?.Cast<DictionaryEntry>().ToDictionary(e => e.Key?.ToString() ?? "", e => e.Value?.ToString() ?? ""),
                    UnsubscribeUrl = UnsubscribeUrl, UnsubscribeMailto = UnsubscribeMailto, KeyColumn = KeyColumn, AddressColumn = AddressColumn,
                    CsvPath = CsvPath, Transport = Transport?.Description, Now = DateTimeOffset.Now,
                });
            }
            catch (CampaignSetupError e)
            {
                _status?.Complete();
                ThrowTerminatingError(Errors.For(e, Name));
                throw; // not reached
            }
            catch (IOException e) when (_where.Store != null)
            {
                Stop(e, "JournalStoreUnavailable", ErrorCategory.ConnectionError);
                throw; // not reached
            }
        }

        /// <summary>A transport that cannot even be set up (a pickup folder that cannot be made, bad settings) is a setup error.</summary>
        private void CheckTransport(MailTransport transport)
        {
            try { transport.Open(null).Dispose(); }
            catch (Exception ex) when (ex is ArgumentException || ex is IOException || ex is UnauthorizedAccessException || ex is InvalidOperationException)
            {
                Stop(new InvalidOperationException($"Nothing was sent: the transport ({transport}) cannot be set up: {ex.Message}", ex), "InvalidTransport", ErrorCategory.InvalidArgument);
            }
        }

        private MailTransport TransportFromJournal(Core.Transports.TransportDescription description)
        {
            try { return MailTransport.FromDescription(description); }
            catch (Exception ex) when (ex is ArgumentException || ex is InvalidOperationException)
            {
                Stop(new InvalidOperationException($"Campaign '{Name}' sends through {description}, which cannot be set up again here: {ex.Message} Pass -Transport.", ex),
                    "CredentialRequired", ErrorCategory.AuthenticationError);
                throw; // not reached
            }
        }

        private void ConfirmContinue(CampaignPlan plan)
        {
            var s = plan.Previous;
            var question = $"Campaign '{Name}' already has a journal ({s.Count(RecipientState.Sent)} sent, {s.Count(RecipientState.Pending) + s.Count(RecipientState.FailedTransient)} not yet sent). " +
                           "Continue it? Recipients already sent are never sent again.";
            bool yes;
            try { yes = ShouldContinue(question, "Continue the campaign"); }
            catch (PSInvalidOperationException) { yes = false; } // a non-interactive host cannot ask
            catch (System.Management.Automation.Host.HostException) { yes = false; }
            if (!yes)
                Stop(new InvalidOperationException($"Campaign '{Name}' already exists ({plan.JournalPath}). Use -Resume to continue it, or Remove-MailCampaign to start over."), "CampaignExists", ErrorCategory.ResourceExists);
        }

        private RateLimit? ParseRate()
        {
            if (RateLimit == null) return null;
            try { return Core.Resilience.RateLimit.Parse(RateLimit); }
            catch (FormatException ex) { Stop(ex, "InvalidRateLimit", ErrorCategory.InvalidArgument); return null; }
        }

        private void Guard(Action action)
        {
            try { action(); }
            catch (CampaignSetupException ex) { MissingColumn(ex); }
        }

        /// <summary>A template or the address needs a column the input lacks: Core says which, this says the parameter that names one.</summary>
        private void MissingColumn(CampaignSetupException ex)
        {
            _status?.Complete();
            ThrowTerminatingError(new ErrorRecord(ex, "MissingColumn", ErrorCategory.InvalidData, Name)
            {
                ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = "Rename the column, or name it with -AddressColumn (the addresses) or -KeyColumn (the identity)." },
            });
        }

        private void Stop(Exception ex, string id, ErrorCategory category)
        {
            _status?.Complete();
            ThrowTerminatingError(new ErrorRecord(ex, id, category, Name));
        }

        protected override void OnIdle() => _status?.Tick();

        private protected override string? StoppedSummary()
        {
            if (_runner == null || _finished) return null;
            var s = _runner.Summarize();
            bool piped = _plan!.Piped && CsvPath == null && !s.InputComplete;
            return CampaignInfo.StoppedLine(s, CampaignInfo.ResumeCommand(Name, _where, _transport?.NeedsCallerSecret == true, piped), piped);
        }

        protected override void ReleaseSending()
        {
            if (_runner != null && !_finished)
            {
                // Ctrl+C or a terminating error: stop the workers; in-flight sends are journaled as released or uncertain.
                try { _runner.AbortAsync().Wait(TimeSpan.FromSeconds(5)); } catch (Exception) { }
            }
            _journal?.Dispose();
        }
    }
}
