using System;
using System.Collections.Generic;
using System.Linq;

namespace ResilientMail.Core.Messages
{
    /// <summary>A message spec whose fields may hold {{Column}} placeholders, parsed once and rendered per row.</summary>
    public sealed class MessageTemplate
    {
        private readonly MessageSpec _spec;
        private readonly Template _subject, _text, _html, _from;
        private readonly Template[] _to, _cc, _bcc, _replyTo, _attachments;
        private readonly (string Name, Template Value)[] _headers;

        public MessageTemplate(MessageSpec spec) : this(spec, null) { }

        /// <summary>
        /// A template for <paramref name="spec"/> that takes over the parsed fields of <paramref name="previous"/>
        /// whose text did not change: a pipeline binds -To (and often only -To) anew for every record.
        /// </summary>
        public MessageTemplate(MessageSpec spec, MessageTemplate? previous)
        {
            _spec = spec ?? throw new ArgumentNullException(nameof(spec));
            _subject = Template.Reuse(spec.Subject, previous?._subject);
            _text = Template.Reuse(spec.TextBody, previous?._text);
            _html = Template.Reuse(spec.HtmlBody, previous?._html);
            _from = Template.Reuse(spec.From, previous?._from);
            _to = Reuse(spec.To, previous?._to);
            _cc = Reuse(spec.Cc, previous?._cc);
            _bcc = Reuse(spec.Bcc, previous?._bcc);
            _replyTo = Reuse(spec.ReplyTo, previous?._replyTo);
            // Mail merge with a file per recipient: .\slips\{{EmployeeId}}.pdf.
            _attachments = Reuse(spec.Attachments, previous?._attachments);
            _headers = spec.Headers.Select((h, i) => (h.Key, Template.Reuse(h.Value, previous != null && i < previous._headers.Length ? previous._headers[i].Value : null))).ToArray();
            // No field gained or lost a placeholder (the usual case: -To bound anew to a plain address): the same columns.
            Columns = previous != null && UsesTheColumnsOf(previous)
                ? previous.Columns
                : Placeholders.Select(p => p.Name).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        }

        // Field by field, the same template or two without placeholders (a new -To address on every record).
        private bool UsesTheColumnsOf(MessageTemplate other)
        {
            if (!Same(_subject, other._subject) || !Same(_text, other._text) || !Same(_html, other._html) || !Same(_from, other._from) ||
                _headers.Length != other._headers.Length)
                return false;
            for (int i = 0; i < _headers.Length; i++)
                if (!Same(_headers[i].Value, other._headers[i].Value)) return false;
            return Same(_to, other._to) && Same(_cc, other._cc) && Same(_bcc, other._bcc) && Same(_replyTo, other._replyTo) && Same(_attachments, other._attachments);
        }

        private static bool Same(Template a, Template b) => ReferenceEquals(a, b) || a.Names.Count == 0 && b.Names.Count == 0;

        private static bool Same(Template[] a, Template[] b)
        {
            if (a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++)
                if (!Same(a[i], b[i])) return false;
            return true;
        }

        private static Template[] Reuse(IReadOnlyList<string> texts, Template[]? previous)
        {
            var result = new Template[texts.Count];
            for (int i = 0; i < result.Length; i++) result[i] = Template.Reuse(texts[i], previous != null && i < previous.Length ? previous[i] : null);
            return result;
        }

        /// <summary>The distinct column names the placeholders use: all that rendering needs from a row.</summary>
        public IReadOnlyList<string> Columns { get; }

        /// <summary>Every placeholder name used anywhere, with the field it is used in.</summary>
        public IEnumerable<(string Field, string Name)> Placeholders =>
            Fields().SelectMany(f => f.Template.Names.Select(n => (f.Field, n)));

        private IEnumerable<(string Field, Template Template)> Fields()
        {
            yield return ("Subject", _subject);
            yield return ("Body", _text);
            yield return ("HtmlBody", _html);
            yield return ("From", _from);
            foreach (var t in _to) yield return ("To", t);
            foreach (var t in _cc) yield return ("Cc", t);
            foreach (var t in _bcc) yield return ("Bcc", t);
            foreach (var t in _replyTo) yield return ("ReplyTo", t);
            foreach (var t in _attachments) yield return ("Attachments", t);
            foreach (var h in _headers) yield return (h.Name, h.Value);
        }

        /// <summary>
        /// Checks every part that is the same for all rows (no placeholder): From, Cc, Bcc, Reply-To, headers and
        /// attachments. Such a part that is wrong would fail every row, so it is a setup error before anything is sent.
        /// Throws <see cref="MessageValidationException"/> for the first problem.
        /// </summary>
        /// <param name="subject">Also the subject (a campaign's is fixed for good; a pipeline may bind it per record).</param>
        public void CheckFixedParts(bool subject = true)
        {
            if (!_from.HasPlaceholders)
            {
                var from = MessageBuilder.ParseList(_spec.From, "From");
                if (from.Count != 1) throw new MessageValidationException(ValidationProblem.InvalidAddress, "From must be exactly one address.", "From");
            }
            CheckFixed(_cc, _spec.Cc, "Cc");
            CheckFixed(_bcc, _spec.Bcc, "Bcc");
            CheckFixed(_replyTo, _spec.ReplyTo, "ReplyTo");
            for (int i = 0; i < _headers.Length; i++)
                if (!_headers[i].Value.HasPlaceholders) MessageBuilder.CheckHeader(_headers[i].Name, _spec.Headers[i].Value);
            if (subject && !_subject.HasPlaceholders && _spec.Subject != null && _spec.Subject.IndexOfAny(new[] { '\r', '\n', '\0' }) >= 0)
                throw new MessageValidationException(ValidationProblem.HeaderInjection, "Subject contains a line break (CR or LF); a header value must be one line, so nothing was sent.", "Subject");
            for (int i = 0; i < _attachments.Length; i++)
                if (!_attachments[i].HasPlaceholders) MessageBuilder.CheckAttachment(_spec.Attachments[i]); // a per-row file is that row's
        }

        private static void CheckFixed(Template[] templates, IReadOnlyList<string> texts, string field)
        {
            for (int i = 0; i < templates.Length; i++)
                if (!templates[i].HasPlaceholders && !MessageBuilder.IsBlank(texts[i])) MessageBuilder.ParseList(texts[i], field);
        }

        /// <summary>The spec with every placeholder filled from <paramref name="row"/>; a missing column throws.</summary>
        public MessageSpec Render(IReadOnlyDictionary<string, object?> row)
        {
            return _spec with
            {
                Subject = _subject.Render(row, "Subject"),
                TextBody = _spec.TextBody == null ? null : _text.Render(row, "Body"),
                HtmlBody = _spec.HtmlBody == null ? null : _html.Render(row, "HtmlBody"),
                From = _from.Render(row, "From"),
                To = RenderAll(_to, row, "To"),
                Cc = RenderAll(_cc, row, "Cc"),
                Bcc = RenderAll(_bcc, row, "Bcc"),
                ReplyTo = RenderAll(_replyTo, row, "ReplyTo"),
                Attachments = _attachments.Length == 0 ? None : RenderAll(_attachments, row, "Attachments"),
                Headers = _headers.Length == 0 ? NoHeaders : _headers.Select(h => new KeyValuePair<string, string>(h.Name, h.Value.Render(row, h.Name))).ToArray(),
            };
        }

        private static readonly KeyValuePair<string, string>[] NoHeaders = new KeyValuePair<string, string>[0];
        private static readonly string[] None = new string[0];

        // A loop rather than Select: this runs once per message.
        private static string[] RenderAll(Template[] templates, IReadOnlyDictionary<string, object?> row, string field)
        {
            if (templates.Length == 0) return None;
            var result = new string[templates.Length];
            for (int i = 0; i < templates.Length; i++) result[i] = templates[i].Render(row, field);
            return result;
        }
    }
}
