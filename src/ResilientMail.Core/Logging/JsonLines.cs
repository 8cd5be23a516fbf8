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

        public JsonLinesWriter(FileStream file, TimeProvider? time = null) : this(new FileLineTarget(file ?? throw new ArgumentNullException(nameof(file))), time) { }

        /// <summary>Lines to any target: a file, or a journal store that keeps them until they are made durable.</summary>
        public JsonLinesWriter(ILineTarget target, TimeProvider? time = null)
        {
            Target = target ?? throw new ArgumentNullException(nameof(target));
            _time = time ?? TimeProvider.System;
            _json = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        }

        public ILineTarget Target { get; }
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
                Target.Write(_buffer.GetBuffer(), (int)_buffer.Length);
                if (flush || durable) Target.Flush(durable);
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
                Target.Dispose();
            }
        }
    }

    /// <summary>Where whole lines go. Write hands the bytes on at once; Flush(true) makes everything written so far durable.</summary>
    public interface ILineTarget : IDisposable
    {
        void Write(byte[] buffer, int count);
        /// <summary>false: to the OS (a killed process keeps it); true: forced to the disk, or the store.</summary>
        void Flush(bool durable);
    }

    /// <summary>A file: each line goes to the OS when written and flushed.</summary>
    public sealed class FileLineTarget : ILineTarget
    {
        public FileLineTarget(FileStream file) => File = file;
        public FileStream File { get; }
        public void Write(byte[] buffer, int count) => File.Write(buffer, 0, count);
        public void Flush(bool durable) => File.Flush(durable);
        public void Dispose() => File.Dispose();
    }
}
