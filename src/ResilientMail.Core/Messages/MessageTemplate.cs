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
        private readonly Template[] _to, _cc, _bcc, _replyTo;
        private readonly (string Name, Template Value)[] _headers;

        public MessageTemplate(MessageSpec spec)
        {
            _spec = spec ?? throw new ArgumentNullException(nameof(spec));
            _subject = new Template(spec.Subject);
            _text = new Template(spec.TextBody);
            _html = new Template(spec.HtmlBody);
            _from = new Template(spec.From);
            _to = spec.To.Select(t => new Template(t)).ToArray();
            _cc = spec.Cc.Select(t => new Template(t)).ToArray();
            _bcc = spec.Bcc.Select(t => new Template(t)).ToArray();
            _replyTo = spec.ReplyTo.Select(t => new Template(t)).ToArray();
            _headers = spec.Headers.Select(h => (h.Key, new Template(h.Value))).ToArray();
        }

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
            foreach (var h in _headers) yield return (h.Name, h.Value);
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
                To = _to.Select(t => t.Render(row, "To")).ToArray(),
                Cc = _cc.Select(t => t.Render(row, "Cc")).ToArray(),
                Bcc = _bcc.Select(t => t.Render(row, "Bcc")).ToArray(),
                ReplyTo = _replyTo.Select(t => t.Render(row, "ReplyTo")).ToArray(),
                Headers = _headers.Select(h => new KeyValuePair<string, string>(h.Name, h.Value.Render(row, h.Name))).ToArray(),
            };
        }
    }
}
