using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// Streams an RFC 4180 CSV (header row, quoted fields with commas, quotes and line breaks) one
    /// record at a time, so a million-row list is never held in memory.
    /// </summary>
    public sealed class CsvRecords : IDisposable
    {
        private readonly TextReader _reader;
        private readonly char _delimiter;
        private readonly StringBuilder _field = new StringBuilder();

        public CsvRecords(TextReader reader, char delimiter = ',')
        {
            _reader = reader ?? throw new ArgumentNullException(nameof(reader));
            _delimiter = delimiter;
            var header = ReadRecord();
            Header = header == null ? new string[0] : header.ConvertAll(h => h.Trim()).ToArray();
        }

        public static CsvRecords Open(string path, char delimiter = ',') =>
            new CsvRecords(new StreamReader(path, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16), delimiter);

        public IReadOnlyList<string> Header { get; }

        /// <summary>Records after the header, as column -> value (missing trailing cells are empty).</summary>
        public IEnumerable<KeyValuePair<string, object?>[]> Rows()
        {
            while (true)
            {
                var record = ReadRecord();
                if (record == null) yield break;
                if (record.Count == 1 && record[0].Length == 0) continue; // blank line
                var row = new KeyValuePair<string, object?>[Header.Count];
                for (int i = 0; i < Header.Count; i++)
                    row[i] = new KeyValuePair<string, object?>(Header[i], i < record.Count ? record[i] : "");
                yield return row;
            }
        }

        /// <summary>Counts the data records without keeping them (for a progress percentage).</summary>
        public static long CountRows(string path, char delimiter = ',')
        {
            using var csv = Open(path, delimiter);
            long n = 0;
            while (true)
            {
                var r = csv.ReadRecord();
                if (r == null) return n;
                if (!(r.Count == 1 && r[0].Length == 0)) n++;
            }
        }

        private List<string>? ReadRecord()
        {
            int c = _reader.Read();
            if (c < 0) return null;
            var fields = new List<string>();
            _field.Clear();
            bool quoted = false, wasQuoted = false;
            while (true)
            {
                if (c < 0)
                {
                    fields.Add(_field.ToString());
                    return fields;
                }
                char ch = (char)c;
                if (quoted)
                {
                    if (ch == '"')
                    {
                        if (_reader.Peek() == '"') { _field.Append('"'); _reader.Read(); }
                        else quoted = false;
                    }
                    else _field.Append(ch);
                }
                else if (ch == '"' && _field.Length == 0 && !wasQuoted)
                {
                    quoted = true;
                    wasQuoted = true;
                }
                else if (ch == _delimiter)
                {
                    fields.Add(_field.ToString());
                    _field.Clear();
                    wasQuoted = false;
                }
                else if (ch == '\r' || ch == '\n')
                {
                    if (ch == '\r' && _reader.Peek() == '\n') _reader.Read();
                    fields.Add(_field.ToString());
                    return fields;
                }
                else _field.Append(ch);
                c = _reader.Read();
            }
        }

        public void Dispose() => _reader.Dispose();
    }
}
