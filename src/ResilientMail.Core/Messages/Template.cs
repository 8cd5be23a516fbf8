using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace ResilientMail.Core.Messages
{
    /// <summary>
    /// A text with {{Column}} placeholders. Column names match case-insensitively, as PowerShell
    /// property names do. Rendering is strict: a placeholder with no value is an error, never an empty string.
    /// </summary>
    public sealed class Template
    {
        private static readonly Regex Placeholder = new Regex(@"\{\{\s*([^{}\s][^{}]*?)\s*\}\}", RegexOptions.Compiled | RegexOptions.CultureInvariant);
        private readonly string _text;
        private readonly MatchCollection _matches;

        public Template(string? text)
        {
            _text = text ?? "";
            _matches = Placeholder.Matches(_text);
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var names = new List<string>();
            foreach (Match m in _matches)
            {
                if (seen.Add(m.Groups[1].Value)) names.Add(m.Groups[1].Value);
            }
            _names = names.ToArray();
        }

        private readonly string[] _names;

        public bool HasPlaceholders => _matches.Count > 0;

        /// <summary><paramref name="previous"/> when it was made from the same text, else a new template.</summary>
        public static Template Reuse(string? text, Template? previous) =>
            previous != null && string.Equals(previous._text, text ?? "", StringComparison.Ordinal) ? previous : new Template(text);

        /// <summary>The distinct placeholder names, in order of first use.</summary>
        public IReadOnlyList<string> Names => _names;

        /// <summary>Fills the placeholders. <paramref name="field"/> names the template in the error.</summary>
        public string Render(IReadOnlyDictionary<string, object?> values, string field)
        {
            if (_matches.Count == 0) return _text;
            List<string>? missing = null;
            foreach (var name in _names)
            {
                if (!values.ContainsKey(name)) (missing ??= new List<string>()).Add(name);
            }
            if (missing != null) throw MessageValidationException.MissingPlaceholders(field, missing);

            var sb = new StringBuilder(_text.Length + 64);
            int last = 0;
            foreach (Match m in _matches)
            {
                sb.Append(_text, last, m.Index - last);
                sb.Append(Format(values[m.Groups[1].Value]));
                last = m.Index + m.Length;
            }
            sb.Append(_text, last, _text.Length - last);
            return sb.ToString();
        }

        private static string Format(object? value) => value switch
        {
            null => "",
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };

        /// <summary>A case-insensitive view of a row, for templates.</summary>
        public static IReadOnlyDictionary<string, object?> Row(IEnumerable<KeyValuePair<string, object?>> properties)
        {
            var d = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
            foreach (var p in properties)
            {
                if (!d.ContainsKey(p.Key)) d[p.Key] = p.Value;
            }
            return d;
        }

        public static readonly IReadOnlyDictionary<string, object?> EmptyRow = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
    }
}
