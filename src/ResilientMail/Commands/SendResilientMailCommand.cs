using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Security;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Messages;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Sends one message per input record over one reused SMTP connection, with retry, timeouts, connectivity waits and pacing.</summary>
    [Cmdlet(VerbsCommunications.Send, "ResilientMail", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Smtp")]
    [OutputType(typeof(MailDeliveryResult))]
    public sealed class SendResilientMailCommand : ResilientSendCmdlet
    {
        /// <summary>The whole row, so that templates can use any of its columns.</summary>
        [Parameter(ValueFromPipeline = true)]
        public PSObject? InputObject { get; set; }

        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Email", "EmailAddress", "Recipient")]
        public string[] To { get; set; } = new string[0];

        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string[]? Cc { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string[]? Bcc { get; set; }

        [Parameter(Mandatory = true)]
        public string From { get; set; } = "";

        [Parameter]
        public string[]? ReplyTo { get; set; }

        [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
        public string? Subject { get; set; }

        [Parameter(Position = 2, ValueFromPipelineByPropertyName = true)]
        public string? Body { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true)]
        public string? HtmlBody { get; set; }

        /// <summary>Send -Body as HTML (as Send-MailMessage does).</summary>
        [Parameter]
        public SwitchParameter BodyAsHtml { get; set; }

        [Parameter(ValueFromPipelineByPropertyName = true)]
        [Alias("Attachment")]
        public string[]? Attachments { get; set; }

        [Parameter]
        public Hashtable? Headers { get; set; }

        [Parameter]
        public MailPriority Priority { get; set; } = MailPriority.Normal;

        [Parameter(Mandatory = true, ParameterSetName = "Smtp")]
        [Alias("ComputerName")]
        [ValidateNotNullOrEmpty]
        public string SmtpServer { get; set; } = "";

        /// <summary>A transport from New-MailTransport, instead of the SMTP parameters.</summary>
        [Parameter(Mandatory = true, ParameterSetName = "Transport")]
        [ValidateNotNull]
        [ArgumentCompleter(typeof(TransportVariableCompleter))]
        public MailTransport? Transport { get; set; }

        /// <summary>0 picks the usual port for the TLS mode: 465 for SslOnConnect, 587 for StartTls, else 25.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [ValidateRange(0, 65535)]
        public int Port { get; set; }

        [Parameter(ParameterSetName = "Smtp")]
        [Credential]
        public PSCredential? Credential { get; set; }

        [Parameter(ParameterSetName = "Smtp")]
        public MailSecurity SecureSocketOptions { get; set; } = MailSecurity.Auto;

        /// <summary>Short for -SecureSocketOptions StartTls.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter UseStartTls { get; set; }

        /// <summary>Short for -SecureSocketOptions SslOnConnect.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter UseSsl { get; set; }

        /// <summary>Accept any server certificate. Only for test servers.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter SkipCertificateCheck { get; set; }

        /// <summary>An OAuth2 access token for SMTP (XOAUTH2), used with -UserName, instead of a password.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public SecureString? OAuthToken { get; set; }

        /// <summary>The mailbox an OAuth2 token was issued for.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [ValidateNotNullOrEmpty]
        public string? UserName { get; set; }

        /// <summary>An OAuth2 token as a credential: the user name is the mailbox, the password the access token.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public PSCredential? OAuthCredential { get; set; }

        /// <summary>The limit on each SMTP attempt.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [TimeSpanArgument]
        public TimeSpan Timeout { get; set; } = Core.Defaults.Timeout;

        private Courier? _courier;
        private string _description = "";
        private StatusReporter? _status;
        // Records are built and bound on the pipeline thread while earlier messages are on the wire. When the
        // queue is full the pipeline thread sleeps until the sender has taken it down to RoomAt: one wake-up per
        // (Capacity - RoomAt) messages instead of one per message. Small, because a queued message holds its attachments.
        private const int Capacity = 8, RoomAt = 4;
        private Channel<Outgoing>? _queue;
        private Task? _sender;
        private int _received;
        private Outgoing? _stopped;
        // Counted by the sender as each message ends, so that a Ctrl+C summary knows even what the pipeline thread has not shown yet.
        private int _sentCount, _failedCount, _uncertainCount;

        /// <summary>A record on its way: a message to send, or a row that could not become one (reported in its turn).</summary>
        private sealed class Outgoing
        {
            public Outgoing(OutgoingMessage message, string label) { Message = message; Label = label; Subject = message.Subject; }
            public Outgoing(MessageValidationException invalid, string label, string subject) { Invalid = invalid; Label = label; Subject = subject; }
            public OutgoingMessage? Message { get; }
            public MessageValidationException? Invalid { get; }
            public string Label { get; }
            public string Subject { get; }
            public DeliveryResult? Result { get; set; }
        }

        protected override void BeginProcessing()
        {
            var options = BuildCourierOptions();
            var transport = Transport;
            if (transport == null)
            {
                var security = SmtpParameters.Resolve(this, UseSsl, UseStartTls, SecureSocketOptions);
                var (user, token) = SmtpParameters.OAuth(this, OAuthCredential, UserName, OAuthToken);
                try
                {
                    transport = MailTransport.Smtp(SmtpServer, Port, security, Credential, user, token, SkipCertificateCheck, Timeout);
                }
                catch (ArgumentException ex)
                {
                    ThrowTerminatingError(new ErrorRecord(ex, "InvalidSmtpSettings", ErrorCategory.InvalidArgument, SmtpServer));
                    return;
                }
            }
            CheckFixedParts();
            _status = new StatusReporter(this, "Send-ResilientMail");
            var sink = EventSink(_status);
            _courier = new Courier(transport.Open(sink), options, new TcpProbe(), sink);
            _description = _courier.Transport.Description;
            var start = $"Sending through {_courier.Transport.Description}; retries {options.Retry.MaxRetries}, timeout {transport.Timeout.TotalSeconds:0.#} s, " +
                        (options.Pacing.IsOff ? "no pacing." : $"gap {options.Pacing.MinGap.TotalSeconds:0.#}-{options.Pacing.MaxGap.TotalSeconds:0.#} s, pause {options.Pacing.BatchPause.TotalSeconds:0} s every {options.Pacing.BatchSize}.");
            OpenLog(start);
            Streams.Verbose(this, start);
            _queue = Channel.CreateBounded<Outgoing>(new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = true });
            var courier = _courier;
            var queue = _queue;
            _sender = Task.Run(() => SendAllAsync(courier, queue.Reader, StopToken));
            _sender.ContinueWith(_ => Wake(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        /// <summary>The one sender: messages leave in input order over one connection; a failure that stops the run ends it.</summary>
        private async Task SendAllAsync(Courier courier, ChannelReader<Outgoing> queue, CancellationToken token)
        {
            while (await queue.WaitToReadAsync(token).ConfigureAwait(false))
            {
                while (queue.TryRead(out var item))
                {
                    if (queue.Count <= RoomAt) Wake(); // the pipeline thread may go on reading input
                    if (item.Message != null)
                    {
                        try { item.Result = await courier.DeliverAsync(item.Message, token).ConfigureAwait(false); }
                        catch (DeliveryCanceledException canceled) when (canceled.MayHaveBeenSent) { Interlocked.Increment(ref _uncertainCount); throw; }
                    }
                    Interlocked.Increment(ref item.Result == null ? ref _failedCount
                        : ref item.Result.Status == DeliveryStatus.Sent || item.Result.Status == DeliveryStatus.PartiallySent ? ref _sentCount
                        : ref item.Result.Status == DeliveryStatus.Uncertain ? ref _uncertainCount : ref _failedCount);
                    Post(() => Finished(item), urgent: false);
                    if (item.Result?.Failure?.StopsRun == true) return;
                }
            }
        }

        protected override void ProcessRecord()
        {
            var status = _status!;
            string label = string.Join(", ", To);
            Outgoing item;
            _received++;
            try
            {
                var template = CurrentTemplate();
                var message = MessageBuilder.Prepare(template, RowOf(InputObject, template.Columns));
                label = message.Recipients;
                if (!ShouldProcess(label, $"Send mail '{message.Subject}' through {_description}"))
                {
                    _received--;
                    return;
                }
                item = new Outgoing(message, label);
            }
            catch (MessageValidationException ex)
            {
                // A bad row is this row's problem: nothing is sent for it; it is reported in its turn, among the results.
                item = new Outgoing(ex, label, Subject ?? "");
            }

            if (item.Message != null) status.Sending(label);
            var queue = _queue!;
            if (!queue.Writer.TryWrite(item))
            {
                // The sender is busy: show its results while waiting for room (or for its end, after a failure that stops the run).
                var sender = _sender!;
                PumpUntil(() => queue.Reader.Count <= RoomAt || sender.IsCompleted || StopToken.IsCancellationRequested);
                ThrowIfStopped();
                if (StopToken.IsCancellationRequested) throw new PipelineStoppedException();
                if (!queue.Writer.TryWrite(item)) return; // the sender ended: the stop error is raised below
            }
            Drain();
            ThrowIfStopped();
        }

        /// <summary>On the pipeline thread, in input order: the result object, and an error when it failed.</summary>
        private void Finished(Outgoing item)
        {
            if (item.Invalid != null)
            {
                WriteError(Errors.For(item.Invalid, item.Label));
                _status!.Count(DeliveryStatus.Failed);
                Log?.Result(item.Label, "Failed", 0, null, null, item.Invalid.Message, "Permanent", TimeSpan.Zero);
                WriteObject(new MailDeliveryResult
                {
                    To = item.Label, Status = MailDeliveryStatus.Failed, Error = item.Invalid.Message, FailureKind = "Permanent",
                    Subject = item.Subject, Timestamp = DateTimeOffset.Now,
                });
                return;
            }
            var result = item.Result!;
            _status!.Count(result.Status);
            Log?.Result(item.Label, result.Status.ToString(), result.Attempts, result.MessageId, result.ServerReply, result.Failure?.Message,
                result.Failure == null ? null : $"{result.Failure.Kind}, {result.Failure.Reason}", result.Duration);
            WriteObject(ToOutput(result, item.Subject));
            if (result.Failure == null || result.Error == null) return;
            if (result.Failure.StopsRun)
            {
                _stopped = item;
                _queue?.Writer.TryComplete();
                return;
            }
            // Recipients with their own fate: one error per address that did not get the message, naming it.
            if (result.Refused.Count > 0 && (result.Refused.Count > 1 || result.Delivered.Count > 0 || result.Failure.Refused != null))
                foreach (var refused in result.Refused)
                    WriteError(Errors.For(new MailDeliveryException(refused.Failure, result.Error), refused.Failure, refused.Address));
            else
                WriteError(Errors.For(result.Error, result.Failure, item.Label));
        }

        private void ThrowIfStopped()
        {
            var item = _stopped;
            if (item == null) return;
            var status = _status!;
            var failure = item.Result!.Failure!;
            int notSent = _received - status.Sent;
            var stopped = new InvalidOperationException(
                $"Sending stopped: {failure.Message} Sent {status.Sent} of the {_received} message(s) received so far; {notSent} not sent (this one included), and the rest of the input was not read." +
                (failure.Reason == FailureReason.ConnectivityLost ? " Run the command again for the remaining rows once the network is back." : ""),
                item.Result.Error);
            var record = Errors.For(stopped, failure, item.Label);
            Log?.End(stopped.Message);
            status.Complete();
            ThrowTerminatingError(record);
        }

        protected override void EndProcessing()
        {
            if (_courier != null)
            {
                _queue!.Writer.TryComplete();
                Await(_sender!);
                ThrowIfStopped();
                var courier = _courier;
                Await(token => courier.CloseAsync(token));
                var end = $"Closed {courier.Transport.Description}. Sent {_status!.Sent}, failed {_status.Failed}, uncertain {_status.Uncertain}.";
                Log?.End(end);
                Streams.Verbose(this, end);
            }
            _status?.Complete();
        }

        protected override void OnIdle() => _status?.Tick();

        private protected override string? StoppedSummary()
        {
            if (_received == 0) return null;
            int sent = Volatile.Read(ref _sentCount), failed = Volatile.Read(ref _failedCount), uncertain = Volatile.Read(ref _uncertainCount);
            int notSent = Math.Max(0, _received - sent - failed - uncertain);
            return $"Send-ResilientMail stopped: sent {sent}, failed {failed}, uncertain {uncertain}, not sent {notSent} of the {_received} message(s) read; " +
                   "the rest of the input was not read." + (uncertain > 0 ? " An uncertain message was on its way when it stopped: check whether it arrived before sending it again." : "");
        }

        protected override void ReleaseSending()
        {
            var courier = _courier;
            _courier = null;
            if (courier == null) return;
            _queue?.Writer.TryComplete();
            // After Ctrl+C or a terminating error: let the sender end (its token is cancelled on Ctrl+C), say QUIT
            // if the connection still stands, but never hang on it.
            try { _sender?.Wait(TimeSpan.FromSeconds(1)); }
            catch (Exception) { /* it ended with the cancellation or the failure already reported */ }
            using (var quick = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
            {
                try { courier.CloseAsync(quick.Token).Wait(TimeSpan.FromSeconds(1)); }
                catch (Exception) { /* best effort */ }
            }
            courier.Dispose();
        }

        /// <summary>
        /// What is given once on the command line (not bound from each record) and wrong would fail every message alike:
        /// -From, -Attachments, -ReplyTo, -Headers. A terminating error before anything is sent.
        /// </summary>
        private void CheckFixedParts()
        {
            try
            {
                new MessageTemplate(Spec() with { To = new[] { "placeholder@example.com" } }).CheckFixedParts(subject: false);
            }
            catch (MessageValidationException ex)
            {
                var record = Errors.For(ex, From);
                ThrowTerminatingError(new ErrorRecord(new MessageValidationException(ex.Problem, $"Nothing was sent: {ex.Message} This applies to every message.", ex.Field, ex),
                    record.FullyQualifiedErrorId, record.CategoryInfo.Category, record.TargetObject));
            }
        }

        // The template only changes when a bound parameter changes (e.g. -Subject from a column): reuse it otherwise.
        private MessageTemplate? _template;
        private MessageSpec? _templateSpec;

        private MessageTemplate CurrentTemplate()
        {
            var spec = Spec();
            if (_template == null || !SameSpec(spec, _templateSpec!))
            {
                _template = new MessageTemplate(spec, _template);
                _templateSpec = spec;
            }
            return _template;
        }

        private static bool SameSpec(MessageSpec a, MessageSpec b) =>
            a.From == b.From && a.Subject == b.Subject && a.TextBody == b.TextBody && a.HtmlBody == b.HtmlBody && a.Priority == b.Priority &&
            a.To.SequenceEqual(b.To) && a.Cc.SequenceEqual(b.Cc) && a.Bcc.SequenceEqual(b.Bcc) && a.ReplyTo.SequenceEqual(b.ReplyTo) &&
            a.Attachments.SequenceEqual(b.Attachments) && a.Headers.SequenceEqual(b.Headers);

        private MessageSpec Spec() => new MessageSpec
        {
            From = From,
            To = To,
            Cc = Cc ?? new string[0],
            Bcc = Bcc ?? new string[0],
            ReplyTo = ReplyTo ?? new string[0],
            Subject = Subject ?? "",
            TextBody = BodyAsHtml ? null : Body,
            HtmlBody = BodyAsHtml ? Body : HtmlBody,
            Attachments = (Attachments ?? new string[0]).Select(p => GetUnresolvedProviderPathFromPSPath(p)).ToArray(),
            Headers = Headers == null
                ? new KeyValuePair<string, string>[0]
                : Headers.Cast<DictionaryEntry>().Select(e => new KeyValuePair<string, string>(e.Key?.ToString() ?? "", e.Value?.ToString() ?? "")).ToArray(),
            Priority = (Core.Messages.MessagePriority)(int)Priority,
        };

        /// <summary>The row's columns for {{Column}} templates: a PSObject's properties, or a hashtable's keys.</summary>
        internal static IReadOnlyDictionary<string, object?> RowOf(PSObject? input)
        {
            if (input == null) return Template.EmptyRow;
            if (input.BaseObject is IDictionary dictionary)
                return Template.Row(dictionary.Cast<DictionaryEntry>().Select(e => new KeyValuePair<string, object?>(e.Key?.ToString() ?? "", Unwrap(e.Value))));
            return Template.Row(input.Properties.Select(p => new KeyValuePair<string, object?>(p.Name, SafeValue(p))));
        }

        /// <summary>Only the columns a template uses: looking up a few properties costs far less than copying every one.</summary>
        internal static IReadOnlyDictionary<string, object?> RowOf(PSObject? input, IReadOnlyList<string> columns)
        {
            if (input == null || columns.Count == 0) return Template.EmptyRow;
            if (input.BaseObject is IDictionary) return RowOf(input);
            var row = new Dictionary<string, object?>(columns.Count, StringComparer.OrdinalIgnoreCase);
            foreach (var name in columns)
            {
                var property = input.Properties[name];
                if (property != null) row[name] = SafeValue(property);
            }
            return row;
        }

        private static object? SafeValue(PSPropertyInfo property)
        {
            try { return Unwrap(property.Value); }
            catch (GetValueException) { return null; }
        }

        private static object? Unwrap(object? value) => value is PSObject ps ? ps.BaseObject : value;

        private static MailDeliveryResult ToOutput(DeliveryResult result, string subject) => new MailDeliveryResult
        {
            To = result.Recipients,
            Status = OutputMapping.Of(result.Status),
            Delivered = result.Delivered.ToArray(),
            Refused = result.Refused.Select(r => $"{r.Address}: {r.Failure.ServerReply ?? r.Failure.Message}").ToArray(),
            Attempts = result.Attempts,
            MessageId = result.MessageId,
            ServerReply = result.ServerReply,
            Error = result.Failure?.Message,
            FailureKind = result.Failure?.Kind.ToString(),
            Duration = result.Duration,
            Subject = subject,
            Timestamp = DateTimeOffset.Now,
        };
    }
}
