using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using MimeKit;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports.Http;
using SendGrid;
using SendGrid.Helpers.Mail;
using SendGrid.Helpers.Reliability;

namespace ResilientMail.Core.Transports.SendGrid
{
    public sealed record SendGridOptions
    {
        public static readonly Uri DefaultBaseUri = new Uri("https://api.sendgrid.com");

        public Secret? ApiKey { get; init; }
        /// <summary>The API's root: the global endpoint by default, the EU one (https://api.eu.sendgrid.com) or a test server.</summary>
        public Uri BaseUri { get; init; } = DefaultBaseUri;
        public TimeSpan Timeout { get; init; } = Defaults.Timeout;
    }

    /// <summary>
    /// SendGrid's v3 mail/send through the official package. The package's own retry stays off (the engine
    /// retries, once); 202 is success and X-Message-Id is the message id.
    /// </summary>
    public sealed class SendGridTransport : HttpMailTransport
    {
        private readonly SendGridClient _client;

        public SendGridTransport(SendGridOptions options) : this(options, null, null) { }

        /// <summary>With another clock or HTTP handler (tests).</summary>
        internal SendGridTransport(SendGridOptions options, TimeProvider? time, HttpMessageHandler? handler)
            : base("SendGrid", (options ?? throw new ArgumentNullException(nameof(options))).BaseUri, options.Timeout, time, handler)
        {
            if (options.ApiKey == null) throw new ArgumentException("A SendGrid API key is required.", nameof(options));
            _client = new SendGridClient(Http, new SendGridClientOptions
            {
                ApiKey = options.ApiKey.Reveal(),
                Host = BaseUri.GetLeftPart(UriPartial.Path).TrimEnd('/'),
                ReliabilitySettings = new ReliabilitySettings(), // no retries: ours wrap this call
                HttpErrorAsException = false,
            });
        }

        public override string Description => $"SendGrid {BaseUri.GetLeftPart(UriPartial.Authority)}";

        protected override async Task<Receipt> SendCoreAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var response = await _client.SendEmailAsync(SendGridMapper.Map(message), cancellationToken).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (status >= 200 && status < 300)
            {
                var id = response.Headers != null && response.Headers.TryGetValues("X-Message-Id", out var ids) ? ids.FirstOrDefault() : null;
                return new Receipt(id ?? "", $"{status} {response.StatusCode}");
            }
            var body = response.Body == null ? "" : await response.Body.ReadAsStringAsync().ConfigureAwait(false);
            var retryAfter = response.Headers == null ? null : HttpFailures.RetryAfter(response.Headers, Time.GetUtcNow());
            throw new MailDeliveryException(HttpFailures.FromStatus(Provider, status, ErrorText(body), retryAfter, response.Headers?.Location));
        }

        /// <summary>SendGrid's {"errors":[{"field":..,"message":..}]} as "field: message; message".</summary>
        internal static string ErrorText(string body)
        {
            if (string.IsNullOrWhiteSpace(body)) return "";
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
                {
                    var parts = new List<string>();
                    foreach (var e in errors.EnumerateArray())
                    {
                        var field = e.TryGetProperty("field", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
                        var text = e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
                        if (text == null) continue;
                        parts.Add(string.IsNullOrEmpty(field) ? text : $"{field}: {text}");
                    }
                    if (parts.Count > 0) return string.Join("; ", parts);
                }
            }
            catch (JsonException)
            {
                // Not JSON (a proxy's error page): fall through to the raw text.
            }
            var trimmed = body.Trim();
            return trimmed.Length > 300 ? trimmed.Substring(0, 300) + "..." : trimmed;
        }
    }

    /// <summary>The same MIME-level content SMTP would send, as SendGrid's JSON.</summary>
    public static class SendGridMapper
    {
        // Set from the message's own fields, or owned by SendGrid (its docs list these as reserved).
        private static readonly HashSet<string> MappedHeaders = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        {
            "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-Id", "MIME-Version",
            "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Received", "DKIM-Signature",
            "X-SG-ID", "X-SG-EID", "Return-Path", "Sender",
        };

        public static SendGridMessage Map(MimeMessage message)
        {
            var sg = new SendGridMessage();
            var from = message.From.Mailboxes.First();
            sg.From = Address(from);
            sg.Subject = message.Subject ?? "";

            // SendGrid refuses an address that appears twice in one personalization.
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var to = message.To.Mailboxes.Where(m => seen.Add(m.Address)).Select(Address).ToList();
            var cc = message.Cc.Mailboxes.Where(m => seen.Add(m.Address)).Select(Address).ToList();
            var bcc = message.Bcc.Mailboxes.Where(m => seen.Add(m.Address)).Select(Address).ToList();
            sg.Personalizations = new List<Personalization>
            {
                new Personalization { Tos = to.Count > 0 ? to : null, Ccs = cc.Count > 0 ? cc : null, Bccs = bcc.Count > 0 ? bcc : null },
            };
            if (to.Count == 0)
            {
                // A personalization needs a "to"; a Bcc-only message goes to its first Bcc address.
                sg.Personalizations[0].Tos = new List<EmailAddress> { bcc.Count > 0 ? bcc[0] : cc[0] };
                if (bcc.Count > 0) bcc.RemoveAt(0); else cc.RemoveAt(0);
                sg.Personalizations[0].Ccs = cc.Count > 0 ? cc : null;
                sg.Personalizations[0].Bccs = bcc.Count > 0 ? bcc : null;
            }

            var replyTo = message.ReplyTo.Mailboxes.Select(Address).ToList();
            if (replyTo.Count == 1) sg.ReplyTo = replyTo[0];
            else if (replyTo.Count > 1) sg.ReplyTos = replyTo;

            // text/plain must come before text/html; SendGrid refuses an empty content value.
            var text = message.TextBody;
            var html = message.HtmlBody;
            if (text != null || html == null) sg.AddContent(MimeType.Text, string.IsNullOrEmpty(text) ? " " : text);
            if (html != null) sg.AddContent(MimeType.Html, html.Length == 0 ? " " : html);

            foreach (var part in message.BodyParts.OfType<MimePart>())
            {
                bool inline = !part.IsAttachment && !string.IsNullOrEmpty(part.ContentId);
                if (!part.IsAttachment && !inline) continue;
                using var buffer = new MemoryStream();
                part.Content?.DecodeTo(buffer);
                sg.AddAttachment(new Attachment
                {
                    Content = Convert.ToBase64String(buffer.GetBuffer(), 0, (int)buffer.Length),
                    Filename = part.FileName ?? "attachment",
                    Type = part.ContentType.MimeType,
                    Disposition = inline ? "inline" : "attachment",
                    ContentId = inline ? part.ContentId : null,
                });
            }

            // Message-level headers (SendGridMessage.AddHeader would put them on the personalization).
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var header in message.Headers)
            {
                if (MappedHeaders.Contains(header.Field) || headers.ContainsKey(header.Field)) continue;
                headers[header.Field] = header.Value;
            }
            if (headers.Count > 0) sg.Headers = headers;
            return sg;
        }

        private static EmailAddress Address(MailboxAddress m) => new EmailAddress(m.Address, string.IsNullOrEmpty(m.Name) ? null : m.Name);
    }
}
