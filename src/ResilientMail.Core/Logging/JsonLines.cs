using System;
using System.Globalization;
using System.IO;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace ResilientMail.Core.Logging
{
    /// <summary>
    /// One JSON object a line, each starting with "at" (UTC, milliseconds), written to the operating system whole and
    /// at once (a killed process leaves every line it wrote, and at worst one torn last line). The campaign journal and
    /// the -LogPath log both write through it. Safe from any thread; the lock is reentrant, so a caller may hold it
    /// around several lines that must reach the file together.
    /// </summary>
    public sealed class JsonLinesWriter : IDisposable
    {
        private readonly MemoryStream _buffer = new MemoryStream(512);
        private readonly Utf8JsonWriter _json;
        private readonly TimeProvider _time;
        private bool _disposed;

        public JsonLinesWriter(FileStream file, TimeProvider? time = null)
        {
            File = file ?? throw new ArgumentNullException(nameof(file));
            _time = time ?? TimeProvider.System;
            _json = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        }

        public FileStream File { get; }
        public object Lock { get; } = new object();
        public bool IsDisposed => _disposed;

        /// <summary>Writes one line. <paramref name="flush"/>: hand it to the OS now; <paramref name="durable"/>: and force it to disk.</summary>
        /// <returns>False when the writer was already closed (the line is dropped).</returns>
        public bool Write(Action<Utf8JsonWriter> body, bool flush = true, bool durable = false)
        {
            lock (Lock)
            {
                if (_disposed) return false;
                _buffer.SetLength(0);
                _json.Reset(_buffer);
                _json.WriteStartObject();
                _json.WriteString("at", _time.GetUtcNow().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
                body(_json);
                _json.WriteEndObject();
                _json.Flush();
                _buffer.WriteByte((byte)'\n');
                File.Write(_buffer.GetBuffer(), 0, (int)_buffer.Length);
                if (flush || durable) File.Flush(durable);
                return true;
            }
        }

        public void Dispose()
        {
            lock (Lock)
            {
                if (_disposed) return;
                _disposed = true;
                _json.Dispose();
                File.Dispose();
            }
        }
    }
}
