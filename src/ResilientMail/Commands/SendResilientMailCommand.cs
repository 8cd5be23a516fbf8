using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using MimeKit;
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

        /// <summary>The limit on each SMTP attempt.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [TimeSpanArgument]
        public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

        private Courier? _courier;
        private StatusReporter? _status;

        protected override void BeginProcessing()
        {
            var options = BuildCourierOptions();
            var transport = Transport;
            if (transport == null)
            {
                var security = SmtpParameters.Resolve(this, UseSsl, UseStartTls, SecureSocketOptions);
                try
                {
                    transport = MailTransport.Smtp(SmtpServer, Port, security, Credential, SkipCertificateCheck, Timeout);
                }
                catch (ArgumentException ex)
                {
                    ThrowTerminatingError(new ErrorRecord(ex, "InvalidSmtpSettings", ErrorCategory.InvalidArgument, SmtpServer));
                    return;
                }
            }
            _status = new StatusReporter(this, "Send-ResilientMail");
            DeliveryEventSink sink = e => { if (_status.Wants(e)) Post(() => _status.OnEvent(e)); };
            _courier = new Courier(transport.Open(sink), options, new TcpProbe(), TimeProvider.System, new Random(), sink);
            WriteVerbose($"Sending through {_courier.Transport.Description}; retries {options.Retry.MaxRetries}, timeout {transport.Timeout.TotalSeconds:0.#} s, " +
                         (options.Pacing.IsOff ? "no pacing." : $"gap {options.Pacing.MinGap.TotalSeconds:0.#}-{options.Pacing.MaxGap.TotalSeconds:0.#} s, pause {options.Pacing.BatchPause.TotalSeconds:0} s every {options.Pacing.BatchSize}."));
        }

        protected override void ProcessRecord()
        {
            var courier = _courier!;
            var status = _status!;
            string label = string.Join(", ", To);
            MimeMessage message;
            try
            {
                message = MessageBuilder.Build(new MessageTemplate(Spec()), RowOf(InputObject));
                label = Courier.Recipients(message);
            }
            catch (MessageValidationException ex)
            {
                // A bad row is this row's problem: report it, send nothing, go on with the next.
                WriteError(Errors.For(ex, label));
                status.Count(DeliveryStatus.Failed);
                WriteObject(new MailDeliveryResult
                {
                    To = label, Status = MailDeliveryStatus.Failed, Error = ex.Message, FailureKind = "Permanent",
                    Subject = Subject ?? "", Timestamp = DateTimeOffset.Now,
                });
                return;
            }

            if (!ShouldProcess(label, $"Send mail '{message.Subject}' through {courier.Transport.Description}")) return;

            status.Sending(label);
            // Started here rather than on a pool thread: the send runs until its first real wait without a hop.
            var result = Await(courier.DeliverAsync(message, StopToken));
            status.Count(result.Status);
            WriteObject(ToOutput(result, message.Subject ?? ""));

            if (result.Failure == null || result.Error == null) return;
            if (result.Failure.StopsRun)
            {
                var stopped = new InvalidOperationException(
                    $"Sending stopped: {result.Failure.Message} Sent {status.Sent} of the {status.Done} message(s) received so far; {status.Done - status.Sent} not sent (this one included), and the rest of the input was not read." +
                    (result.Failure.Reason == FailureReason.ConnectivityLost ? " Run the command again for the remaining rows once the network is back." : ""),
                    result.Error);
                var record = Errors.For(stopped, result.Failure, label);
                status.Complete();
                ThrowTerminatingError(record);
            }
            WriteError(Errors.For(result.Error, result.Failure, label));
        }

        protected override void EndProcessing()
        {
            if (_courier != null)
            {
                var courier = _courier;
                Await(token => courier.CloseAsync(token));
                WriteVerbose($"Closed {courier.Transport.Description}. Sent {_status!.Sent}, failed {_status.Failed}, uncertain {_status.Uncertain}.");
            }
            _status?.Complete();
        }

        protected override void OnIdle() => _status?.Tick();

        protected override void Release()
        {
            var courier = _courier;
            _courier = null;
            if (courier == null) return;
            // After Ctrl+C or a terminating error: say QUIT if the connection still stands, but never hang on it.
            using (var quick = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
            {
                try { courier.CloseAsync(quick.Token).Wait(TimeSpan.FromSeconds(1)); }
                catch (Exception) { /* best effort */ }
            }
            courier.Dispose();
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

        private static object? SafeValue(PSPropertyInfo property)
        {
            try { return Unwrap(property.Value); }
            catch (GetValueException) { return null; }
        }

        private static object? Unwrap(object? value) => value is PSObject ps ? ps.BaseObject : value;

        private static MailDeliveryResult ToOutput(DeliveryResult result, string subject) => new MailDeliveryResult
        {
            To = result.Recipients,
            Status = (MailDeliveryStatus)(int)result.Status,
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
