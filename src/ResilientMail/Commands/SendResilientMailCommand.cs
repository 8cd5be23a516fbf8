using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Security;
using System.Threading;
using ResilientMail.Core.Campaigns;
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

        /// <summary>
        /// Binds from the columns people's lists have: Email, EmailAddress, Outlook's and Google's exports, Get-ADUser's mail,
        /// Get-Mailbox's PrimarySmtpAddress, Get-MgUser's Mail (the same set a campaign looks for).
        /// </summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Email", "EmailAddress", "E-mail Address", "Email Address", "E-mail 1 - Value", "PrimarySmtpAddress", "Mail", "Recipient")]
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

        /// <summary>The body's character set, as Send-MailMessage's -Encoding (a name or an Encoding); UTF-8 when not given.</summary>
        [Parameter]
        [Alias("BodyEncoding")]
        [EncodingArgument]
        public System.Text.Encoding? Encoding { get; set; }

        /// <summary>$PSEmailServer when not given, as with Send-MailMessage.</summary>
        [Parameter(Position = 3, ParameterSetName = "Smtp")]
        [Alias("ComputerName")]
        [ValidateNotNullOrEmpty]
        public string? SmtpServer { get; set; }

        /// <summary>Write the result objects also when called through a Send-MailMessage alias (which, like Send-MailMessage, writes none).</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

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

        /// <summary>Do not ask the CA whether the certificate was revoked (an internal CA whose CRL cannot be reached); everything else is still checked.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter SkipRevocationCheck { get; set; }

        /// <summary>Delivery status notifications (DSN) to ask of the server, as Send-MailMessage's: None, OnSuccess, OnFailure, Delay, Never.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [Alias("DNO")]
        public System.Net.Mail.DeliveryNotificationOptions DeliveryNotificationOption { get; set; }

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

        /// <summary>
        /// Called through an alias named Send-MailMessage (Set-Alias Send-MailMessage Send-ResilientMail): behave as the scripts
        /// written for it expect. No output unless -PassThru, and every failure a non-terminating error whose exception is
        /// an SmtpException, as Send-MailMessage writes them; the module never takes that name by itself.
        /// </summary>
        private bool AsSendMailMessage => string.Equals(MyInvocation.InvocationName, "Send-MailMessage", StringComparison.OrdinalIgnoreCase);

        private Courier? _courier;
        private SendQueue? _queue;
        private StatusReporter? _status;
        private readonly TemplateCache _templates = new TemplateCache();
        private int _received;
        private bool _stopReported;

        protected override void BeginProcessing()
        {
            var options = BuildCourierOptions();
            var transport = Transport ?? SmtpParameters.Transport(this, SmtpServerOrDefault(), Port, UseSsl, UseStartTls, SecureSocketOptions, Credential,
                OAuthCredential, UserName, OAuthToken, SkipCertificateCheck, SkipRevocationCheck, Timeout, DeliveryNotificationOption);
            CheckFixedParts();
            _status = new StatusReporter(this, "Send-ResilientMail");
            var sink = EventSink(_status);
            // The provider's own pace (Microsoft 365: 30 a minute per mailbox) holds here too, pacing gaps or not.
            options = options with { RateLimit = transport.Description.ProviderRate };
            _courier = new Courier(transport.Open(sink), options, new TcpProbe(), sink);
            var start = $"Sending through {_courier.Transport.Description}; retries {options.Retry.MaxRetries}, timeout {transport.Timeout.TotalSeconds:0.#} s, " +
                        (options.RateLimit != null ? $"at most {options.RateLimit} (the provider's limit), " : "") +
                        (options.Pacing.IsOff ? "no pacing." : $"gap {options.Pacing.MinGap.TotalSeconds:0.#}-{options.Pacing.MaxGap.TotalSeconds:0.#} s, pause {options.Pacing.BatchPause.TotalSeconds:0} s every {options.Pacing.BatchSize}.");
            OpenLog(start);
            Streams.Verbose(this, start);
            // Results need no wake-up each: drained at the next one, or within 250 ms.
            // The progress bar names the message being sent, not the one being read ahead.
            var status = _status;
            _queue = new SendQueue(_courier, item => Post(() => Finished(item), urgent: false), Wake, item => Post(() => status.Sending(item.Label), urgent: false));
            _queue.Start(StopToken);
        }

        private string SmtpServerOrDefault()
        {
            var server = SmtpServer ?? GetVariableValue("PSEmailServer")?.ToString();
            if (string.IsNullOrWhiteSpace(server))
                ThrowTerminatingError(new ErrorRecord(new ArgumentException("No SMTP server: pass -SmtpServer (or -Transport), or set $PSEmailServer."), "MissingSmtpServer", ErrorCategory.InvalidArgument, null));
            return server!;
        }

        // Files piped in (Get-ChildItem *.log | Send-ResilientMail ...) are attachments of one message, as with Send-MailMessage.
        private readonly List<string> _pipedFiles = new List<string>();

        protected override void ProcessRecord()
        {
            if (InputObject?.BaseObject is System.IO.FileInfo file)
            {
                _pipedFiles.Add(file.FullName);
                return;
            }
            Enqueue(Spec(), InputObject);
        }

        private void Enqueue(MessageSpec spec, PSObject? row)
        {
            string label = string.Join(", ", To);
            QueuedMessage item;
            _received++;
            try
            {
                if (spec.To.Count == 0 && spec.Cc.Count == 0 && spec.Bcc.Count == 0)
                    throw new MessageValidationException(ValidationProblem.MissingRecipient, row == null
                        ? "No recipient: pass -To (or -Cc, -Bcc)."
                        : $"This record has no recipient: pass -To, or give it a column named {string.Join(", ", RecipientKey.AddressColumns.Where(c => c != "To" && c != "Address"))} or To.", "To");
                var template = _templates.For(spec);
                var message = MessageBuilder.Prepare(template, Rows.Of(row, template.Columns));
                label = message.Recipients;
                if (!ShouldProcess(label, $"Send mail '{message.Subject}' through {_courier!.Transport.Description}"))
                {
                    _received--;
                    return;
                }
                item = new QueuedMessage(message, label);
            }
            catch (MessageValidationException ex)
            {
                item = new QueuedMessage(ex, label, Subject ?? ""); // this row's problem, reported in its turn among the results
            }
            var queue = _queue!;
            if (!queue.TryAdd(item))
            {
                // The sender is busy: show its results while waiting for room (or for its end, after a failure that stops the run).
                PumpUntil(() => queue.ReadyForMore || StopToken.IsCancellationRequested);
                ThrowIfStopped();
                if (StopToken.IsCancellationRequested) throw new PipelineStoppedException();
                if (!queue.TryAdd(item)) return; // the sender ended: the stop error is raised below
            }
            Drain();
            ThrowIfStopped();
        }

        /// <summary>On the pipeline thread, in input order: the result object, and the errors when it failed.</summary>
        private void Finished(QueuedMessage item)
        {
            if (item.Invalid != null)
            {
                Error(Errors.For(item.Invalid, item.Label));
                _status!.Count(DeliveryStatus.Failed);
                Log?.Result(item.Label, "Failed", 0, null, null, item.Invalid.Message, "Permanent", TimeSpan.Zero);
                Output(OutputMapping.Refused(item.Label, item.Subject, item.Invalid.Message));
                return;
            }
            var result = item.Result!;
            _status!.Count(result.Status);
            Log?.Result(item.Label, result.Status.ToString(), result.Attempts, result.MessageId, result.ServerReply, result.Failure?.Message,
                result.Failure == null ? null : $"{result.Failure.Kind}, {result.Failure.Reason}", result.Duration);
            Output(OutputMapping.Result(result, item.Subject));
            if (result.Failure == null || result.Error == null || result.Failure.StopsRun) return; // a stop is one terminating error, below
            foreach (var error in Errors.ForResult(result, item.Label)) Error(error);
        }

        private void Output(MailDeliveryResult result)
        {
            if (!AsSendMailMessage || PassThru) WriteObject(result);
        }

        private void Error(ErrorRecord record) => WriteError(AsSendMailMessage ? Errors.AsSmtpException(record) : record);

        private void ThrowIfStopped()
        {
            var item = _queue?.StoppedBy;
            if (item == null) return;
            Drain(); // its result, and those before it, are shown first
            var failure = item.Result!.Failure!;
            int sent = _queue!.Sent;
            var stopped = new InvalidOperationException(
                $"Sending stopped: {Errors.Explain(failure)} Sent {sent} of the {_received} message(s) received so far; {_received - sent} not sent (this one included), and the rest of the input was not read." +
                (failure.Reason == FailureReason.ConnectivityLost ? " Run the command again for the remaining rows once the network is back." : ""),
                item.Result.Error);
            Log?.End(stopped.Message);
            _status!.Complete();
            if (AsSendMailMessage && !_stopReported)
            {
                // As Send-MailMessage: a non-terminating error; the script goes on (and nothing more is sent).
                _stopReported = true;
                WriteError(Errors.AsSmtpException(Errors.For(stopped, failure, item.Label)));
                return;
            }
            if (AsSendMailMessage) return;
            ThrowTerminatingError(Errors.For(stopped, failure, item.Label));
        }

        protected override void EndProcessing()
        {
            if (_courier != null && _pipedFiles.Count > 0)
            {
                var spec = Spec();
                Enqueue(spec with { Attachments = spec.Attachments.Concat(_pipedFiles).ToArray() }, null);
            }
            if (_courier != null)
            {
                _queue!.Complete();
                Await(_queue.Completion);
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
            if (_received == 0 || _queue == null) return null;
            int sent = _queue.Sent, failed = _queue.Failed, uncertain = _queue.Uncertain;
            return $"Send-ResilientMail stopped: sent {sent}, failed {failed}, uncertain {uncertain}, not sent {Math.Max(0, _received - sent - failed - uncertain)} of the {_received} message(s) read; " +
                   "the rest of the input was not read." + (uncertain > 0 ? " An uncertain message was on its way when it stopped: check whether it arrived before sending it again." : "");
        }

        protected override void ReleaseSending()
        {
            var courier = _courier;
            _courier = null;
            if (courier == null) return;
            _queue?.Complete();
            // After Ctrl+C or a terminating error: let the sender end (its token is cancelled on Ctrl+C), say QUIT
            // if the connection still stands, but never hang on it.
            try { _queue?.Completion.Wait(TimeSpan.FromSeconds(1)); }
            catch (Exception) { /* it ended with the cancellation or the failure already reported */ }
            using (var quick = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
            {
                try { courier.CloseAsync(quick.Token).Wait(TimeSpan.FromSeconds(1)); }
                catch (Exception) { /* best effort */ }
            }
            courier.Dispose();
        }

        /// <summary>What is given once on the command line and wrong would fail every message alike: a terminating error before anything is sent.</summary>
        private void CheckFixedParts()
        {
            try { new MessageTemplate(Spec() with { To = new[] { "placeholder@example.com" } }).CheckFixedParts(subject: false); }
            catch (MessageValidationException ex)
            {
                var record = Errors.For(ex, From);
                ThrowTerminatingError(new ErrorRecord(new MessageValidationException(ex.Problem, $"Nothing was sent: {ex.Message} This applies to every message.", ex.Field, ex),
                    record.FullyQualifiedErrorId, record.CategoryInfo.Category, record.TargetObject));
            }
        }

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
            Priority = OutputMapping.Of(Priority),
            BodyEncoding = Encoding,
        };
    }
}
