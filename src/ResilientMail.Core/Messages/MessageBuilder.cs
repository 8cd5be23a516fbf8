using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using MimeKit;
using MimeKit.Utils;

namespace ResilientMail.Core.Messages
{
    /// <summary>Turns a rendered, untrusted spec into a MimeMessage, or says exactly why it cannot.</summary>
    public static class MessageBuilder
    {
        // Strict RFC 5322 parsing; UTF-8 local parts and IDN domains are still allowed.
        private static readonly ParserOptions StrictAddresses = new ParserOptions
        {
            AddressParserComplianceMode = RfcComplianceMode.Strict,
            AllowAddressesWithoutDomain = false,
            AllowUnquotedCommasInAddresses = false,
        };

        // Headers the builder owns; letting a CSV column set them would let it rewrite the message.
        private static readonly HashSet<string> ReservedHeaders = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        {
            "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-Id", "MIME-Version",
            "Content-Type", "Content-Transfer-Encoding", "Sender", "Return-Path",
        };

        private static readonly IEnumerable<Header> NoHeaders = new Header[0];

        /// <summary>Builds the message; its Date is <paramref name="time"/>'s local now (the system clock when null).</summary>
        public static MimeMessage Build(MessageSpec spec, TimeProvider? time = null)
        {
            if (spec == null) throw new ArgumentNullException(nameof(spec));

            // Not new MimeMessage(): that one makes a Message-Id of its own (from the machine's DNS name, IDNA-encoded
            // every time) which is then replaced, and costs three times what the rest of an empty message does.
            var message = new MimeMessage(NoHeaders);
            var from = ParseList(spec.From, "From");
            if (from.Count != 1)
                throw new MessageValidationException(ValidationProblem.InvalidAddress, "From must be exactly one address.", "From");
            message.From.AddRange(from);
            foreach (var t in spec.To) message.To.AddRange(ParseList(t, "To"));
            // An empty Cc, Bcc or Reply-To (a CSV cell left blank on some rows) means none, not an invalid address.
            foreach (var t in spec.Cc) if (!IsBlank(t)) message.Cc.AddRange(ParseList(t, "Cc"));
            foreach (var t in spec.Bcc) if (!IsBlank(t)) message.Bcc.AddRange(ParseList(t, "Bcc"));
            foreach (var t in spec.ReplyTo) if (!IsBlank(t)) message.ReplyTo.AddRange(ParseList(t, "ReplyTo"));
            if (message.To.Count + message.Cc.Count + message.Bcc.Count == 0)
                throw new MessageValidationException(ValidationProblem.MissingRecipient, "The message has no recipient (To, Cc or Bcc).", "To");

            RejectLineBreaks(spec.Subject, "Subject");
            message.Subject = spec.Subject ?? "";

            foreach (var header in spec.Headers)
            {
                CheckHeader(header.Key, header.Value);
                message.Headers.Add(header.Key, header.Value);
            }

            switch (spec.Priority)
            {
                // The headers Send-MailMessage writes for -Priority: X-Priority 1 or 5, Priority, Importance.
                case MessagePriority.High: message.Priority = MimeKit.MessagePriority.Urgent; message.XPriority = XMessagePriority.Highest; message.Importance = MessageImportance.High; break;
                case MessagePriority.Low: message.Priority = MimeKit.MessagePriority.NonUrgent; message.XPriority = XMessagePriority.Lowest; message.Importance = MessageImportance.Low; break;
            }

            var body = new BodyBuilder { TextBody = spec.TextBody, HtmlBody = spec.HtmlBody };
            if (spec.TextBody == null && spec.HtmlBody == null) body.TextBody = "";
            foreach (var path in spec.Attachments)
            {
                CheckAttachment(path);
                body.Attachments.Add(path);
            }
            message.Body = body.ToMessageBody();
            if (spec.BodyEncoding != null && !(spec.BodyEncoding is System.Text.UTF8Encoding))
            {
                // As asked (Send-MailMessage's -Encoding): text the charset cannot hold becomes '?', as it does there.
                foreach (var part in message.BodyParts.OfType<TextPart>())
                    if (!part.IsAttachment) part.SetText(spec.BodyEncoding, part.Text);
            }

            message.Date = (time ?? TimeProvider.System).GetLocalNow();
            message.MessageId = NewMessageId(from.Mailboxes.First().Domain);
            return message;
        }

        /// <summary>
        /// A globally unique Message-Id at the sender's domain (RFC 5322 3.6.4): a random (version 4) GUID, then the domain in
        /// its ASCII (IDNA) form. MimeUtils.GenerateMessageId does the same but encodes the domain again for every
        /// message, which cost more than the rest of the headers together; here the encoding is kept per domain.
        /// </summary>
        internal static string NewMessageId(string? domain)
        {
            var name = string.IsNullOrEmpty(domain) ? "localhost" : domain!;
            var last = _lastDomain; // one reference, so a reader on another thread never sees half of a pair
            if (last == null || !string.Equals(last.Domain, name, StringComparison.Ordinal))
            {
                string ascii = name;
                if (ascii.Any(c => c > 127))
                {
                    try { ascii = new System.Globalization.IdnMapping().GetAscii(ascii); }
                    catch (ArgumentException) { return MimeUtils.GenerateMessageId(name); } // not valid IDNA: MimeKit's own encoding
                }
                _lastDomain = last = new DomainForm(name, ascii);
            }
            return Guid.NewGuid().ToString("N") + "@" + last.Ascii;
        }

        private sealed class DomainForm
        {
            public DomainForm(string domain, string ascii) { Domain = domain; Ascii = ascii; }
            public string Domain { get; }
            public string Ascii { get; }
        }

        private static volatile DomainForm? _lastDomain;

        /// <summary>Renders then builds: the one call a sending loop needs.</summary>
        public static MimeMessage Build(MessageTemplate template, IReadOnlyDictionary<string, object?> row) => Build(template.Render(row));

        /// <summary>Renders and builds, for a caller that only needs to hand the message on.</summary>
        public static OutgoingMessage Prepare(MessageTemplate template, IReadOnlyDictionary<string, object?> row) => new OutgoingMessage(Build(template.Render(row)));

        internal static bool IsBlank(string? text) => string.IsNullOrWhiteSpace(text) && (text == null || text.IndexOfAny(LineBreaks) < 0);

        internal static void CheckHeader(string name, string value)
        {
            RejectLineBreaks(name, "header name");
            RejectLineBreaks(value, name);
            if (name.Length == 0 || name.Any(c => c <= 32 || c >= 127 || c == ':'))
                throw new MessageValidationException(ValidationProblem.InvalidHeader, $"'{name}' is not a valid header name.", name);
            if (ReservedHeaders.Contains(name))
                throw new MessageValidationException(ValidationProblem.InvalidHeader, $"The {name} header is set from its own field of the message, not as a custom header.", name);
        }

        internal static void CheckAttachment(string path)
        {
            if (Directory.Exists(path))
                throw new MessageValidationException(ValidationProblem.AttachmentNotFound, $"Attachment '{path}' is a folder, not a file.", "Attachments");
            if (!File.Exists(path))
                throw new MessageValidationException(ValidationProblem.AttachmentNotFound, $"Attachment '{path}' does not exist.", "Attachments");
        }

        // One mailbox whose display name holds an unquoted comma ("Doe, Jane <jane@example.com>"), as Send-MailMessage takes it.
        private static readonly ParserOptions OneMailbox = new ParserOptions
        {
            AddressParserComplianceMode = RfcComplianceMode.Strict,
            AllowAddressesWithoutDomain = false,
            AllowUnquotedCommasInAddresses = true,
        };

        /// <summary>
        /// One -To (or Cc, Bcc, Reply-To) element: a list of addresses ("a@x, b@y": both), or one mailbox whose display name
        /// has a comma. A single-label domain (it@intranet, backup@localhost) is an address internal relays deliver.
        /// </summary>
        internal static InternetAddressList ParseList(string? text, string field)
        {
            RejectLineBreaks(text, field);
            if (string.IsNullOrWhiteSpace(text))
                throw new MessageValidationException(ValidationProblem.InvalidAddress, $"{field} is empty.", field);
            if (InternetAddressList.TryParse(StrictAddresses, text, out var list) && list.Count > 0 && list.All(IsMailbox))
                return list;
            if (MailboxAddress.TryParse(OneMailbox, text, out var one) && IsMailbox(one) && text!.IndexOf('<') >= 0)
                return new InternetAddressList(new InternetAddress[] { one });
            if (list == null || list.Count == 0)
                throw new MessageValidationException(ValidationProblem.InvalidAddress, $"'{text}' in {field} is not a valid email address.", field);
            var bad = list.First(a => !IsMailbox(a));
            throw new MessageValidationException(ValidationProblem.InvalidAddress, $"'{bad}' in {field} is not a deliverable mailbox address.", field);
        }

        private static bool IsMailbox(InternetAddress address) =>
            address is MailboxAddress mailbox && !string.IsNullOrEmpty(mailbox.Domain) && !string.IsNullOrEmpty(mailbox.LocalPart) &&
            (mailbox.Domain.StartsWith("[", StringComparison.Ordinal) || mailbox.Domain.Split('.').All(label => label.Length > 0));

        private static void RejectLineBreaks(string? value, string field)
        {
            if (value != null && value.IndexOfAny(LineBreaks) >= 0)
                throw new MessageValidationException(ValidationProblem.HeaderInjection,
                    $"{field} contains a line break (CR or LF); a header value must be one line, so the message was not sent.", field);
        }

        private static readonly char[] LineBreaks = { '\r', '\n', '\0' };
    }
}
