using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Tasks;
using Microsoft.Win32.SafeHandles;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>The fate of one recipient in the journal. "Pending" is a row that was read but not yet handed on.</summary>
    public enum RecipientState : byte { Pending, Sending, Sent, FailedTransient, FailedPermanent, Uncertain }

    /// <summary>The kinds of journal record ("state"), one set shared by the writer and the reader.</summary>
    public static class RecordKind
    {
        public const string Definition = "definition", RunStarted = "run-started", Paused = "paused", Stopped = "stopped", Completed = "completed",
            Incomplete = "incomplete", InputEnd = "input-end", Pending = "pending", Duplicate = "duplicate", Intent = "intent", Sending = "sending",
            Released = "released", Sent = "sent", Deferred = "deferred", Failed = "failed", Uncertain = "uncertain";
    }

    /// <summary>The journal is locked by another run of the same campaign.</summary>
    public sealed class JournalLockedException : IOException
    {
        public JournalLockedException(string path, Exception inner)
            : base($"The journal {path} is in use by another run of this campaign. Wait for it to finish, or stop it first.", inner) { }
    }

    /// <summary>
    /// An append-only JSON-lines file: one record per state change, readable by a person. Each record is
    /// written to the operating system at once (a killed process loses nothing it wrote). Before a message
    /// is sent, an "intent" record is forced to disk, and a "sending" record is written (not forced) at the
    /// moment it is handed to the transport. After any crash a message is known unsent, known sent, or
    /// reported Uncertain - never silently sent twice: an intent without "sending" was never started when
    /// the journal is read in the same boot of the OS (the written record cannot have been lost), and is
    /// Uncertain after a restart of the OS. Because only the intent waits for the disk, the intent of the
    /// next message is forced while the current one is on the wire.
    /// </summary>
    public sealed class CampaignJournal : IDisposable
    {
        internal static readonly JsonSerializerOptions Json = new JsonSerializerOptions
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        };

        private readonly Logging.JsonLinesWriter _lines;
        private readonly FileStream _file;
        private readonly object _lock;

        private CampaignJournal(string path, FileStream file, TimeProvider time)
        {
            Path = path;
            _lines = new Logging.JsonLinesWriter(file, time);
            _file = file;
            _lock = _lines.Lock;
        }

        public string Path { get; }

        /// <summary>The default journal of a campaign: a per-user data folder, one file per campaign name.</summary>
        public static string DefaultPath(string campaignName, string? dataRoot = null)
        {
            var root = dataRoot ?? DataRoot();
            return System.IO.Path.Combine(root, "ResilientMail", "campaigns", SafeFileName(campaignName) + Extension);
        }

        /// <summary>%LOCALAPPDATA% on Windows, $XDG_DATA_HOME or ~/.local/share elsewhere; RESILIENTMAIL_DATA overrides both.</summary>
        public static string DataRoot()
        {
            var overridden = Environment.GetEnvironmentVariable("RESILIENTMAIL_DATA");
            if (!string.IsNullOrEmpty(overridden)) return overridden!;
            var local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
            if (!string.IsNullOrEmpty(local)) return local;
            var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            if (!string.IsNullOrEmpty(xdg)) return xdg!;
            return System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        }

        /// <summary>The folder of the default journals.</summary>
        public static string Folder(string? dataRoot = null) => System.IO.Path.GetDirectoryName(DefaultPath("x", dataRoot))!;

        /// <summary>Every journal in the default folder.</summary>
        public static string[] All(string? dataRoot = null)
        {
            var dir = Folder(dataRoot);
            return Directory.Exists(dir) ? Directory.GetFiles(dir, "*" + Extension) : new string[0];
        }

        public const string Extension = ".journal.jsonl";

        /// <summary>The campaign name a journal file stands for (its own name may have had characters replaced: see <see cref="JournalSnapshot.ReadName"/>).</summary>
        public static string NameFromPath(string path)
        {
            var file = System.IO.Path.GetFileName(path);
            return file.EndsWith(Extension, StringComparison.OrdinalIgnoreCase) ? file.Substring(0, file.Length - Extension.Length) : file;
        }

        /// <summary>The name the campaign was started with, else the one its file stands for.</summary>
        public static string DisplayName(string path) => JournalSnapshot.ReadName(path) ?? NameFromPath(path);

        public static string SafeFileName(string name)
        {
            var sb = new StringBuilder(name.Length);
            foreach (var ch in name.Trim())
                sb.Append(char.IsLetterOrDigit(ch) || ch == '-' || ch == '_' || ch == '.' ? ch : '_');
            if (sb.Length == 0) throw new ArgumentException("A campaign needs a name.");
            return sb.ToString();
        }

        /// <summary>Opens (creating it if needed) for appending; only one run may hold it.</summary>
        public static CampaignJournal Open(string path) => Open(path, TimeProvider.System);

        public static CampaignJournal Open(string path, TimeProvider time)
        {
            var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            var full = System.IO.Path.GetFullPath(path);
            lock (OpenHere)
            {
                if (!OpenHere.Add(full)) throw new JournalLockedException(path, new IOException("Open in this process."));
            }
            FileStream file;
            try
            {
                file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 4096, FileOptions.None);
            }
            catch (IOException ex) when (File.Exists(path))
            {
                Forget(full);
                throw new JournalLockedException(path, ex);
            }
            try
            {
                // FileShare.Read is not a lock between processes on every platform; a record lock is.
                LockRegion(file);
            }
            catch (IOException ex)
            {
                file.Dispose();
                Forget(full);
                throw new JournalLockedException(path, ex);
            }
            // A torn last record (the process died mid-write) is ignored by readers; start on a fresh line.
            if (file.Length > 0)
            {
                file.Seek(-1, SeekOrigin.End);
                bool endsWithNewline = file.ReadByte() == '\n';
                file.Seek(0, SeekOrigin.End);
                if (!endsWithNewline) { file.WriteByte((byte)'\n'); file.Flush(); }
            }
            return new CampaignJournal(full, file, time ?? TimeProvider.System);
        }

        private static void Forget(string full)
        {
            lock (OpenHere) OpenHere.Remove(full);
        }

        private static void LockRegion(FileStream file)
        {
            try { file.Lock(long.MaxValue - 1, 1); }
            catch (PlatformNotSupportedException) { /* macOS: FileShare is all there is */ }
        }

        // Record locks belong to a process, so two runs inside one PowerShell session would not see each other's.
        private static readonly HashSet<string> OpenHere = new HashSet<string>(StringComparer.Ordinal);

        public void WriteDefinition(CampaignDefinition definition) =>
            Write(RecordKind.Definition, null, w =>
            {
                w.WritePropertyName("campaign");
                JsonSerializer.Serialize(w, definition, Json);
            }, durable: true);

        /// <summary>The journal's own version, in every run-started record: 2 and later record the input's end ("input-end").</summary>
        public const int Format = 2;

        public void Run(string what, string? text = null) => Write(what, null, w =>
        {
            if (text != null) w.WriteString("text", text);
            if (what == RecordKind.RunStarted)
            {
                w.WriteNumber("format", Format);
                if (BootId.Current != null) w.WriteString("boot", BootId.Current);
            }
        }, durable: true);

        /// <summary>The campaign's input was read to its end: every row of it is in the journal (before this record).</summary>
        public void InputEnd(long rows, string? text = null) => Write(RecordKind.InputEnd, null, w =>
        {
            w.WriteNumber("rows", rows);
            if (text != null) w.WriteString("text", text);
        }, durable: true);

        /// <summary>Buffered: the next durable record (a "sending") carries it to disk before anything is sent.</summary>
        public void Pending(string key, long row, IEnumerable<KeyValuePair<string, object?>>? data) =>
            Write(RecordKind.Pending, key, flush: false, body: w =>
            {
                w.WriteNumber("row", row);
                if (data != null)
                {
                    w.WriteStartObject("data");
                    foreach (var kv in data) w.WriteString(kv.Key, kv.Value?.ToString());
                    w.WriteEndObject();
                }
            });

        public void Duplicate(string key, long row) => Write(RecordKind.Duplicate, key, flush: false, body: w => w.WriteNumber("row", row));

        /// <summary>
        /// The message is about to be sent: written, then forced to disk on a pool thread (the task ends when it
        /// is on disk). Other records can be written meanwhile. Await it before <see cref="Sending"/>.
        /// </summary>
        public Task IntentAsync(string key, string to) => IntentsAsync(new[] { (key, to) });

        /// <summary>Several intents, forced to disk together (one wait for the disk).</summary>
        public Task IntentsAsync(IEnumerable<(string Key, string To)> messages)
        {
            lock (_lock)
            {
                foreach (var (key, to) in messages) Write(RecordKind.Intent, key, w => w.WriteString("to", to), flush: false);
                if (_lines.IsDisposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                _file.Flush(false); // to the OS in one write; Sync then forces it to disk
            }
            return Task.Run(Sync);
        }

        /// <summary>Handed to the transport now. Written, not forced: the intent before it is on disk already.</summary>
        public void Sending(string key, string to) => Write(RecordKind.Sending, key, w => w.WriteString("to", to));

        /// <summary>Forces everything written so far to disk without holding the lock while the disk works.</summary>
        private void Sync()
        {
            SafeFileHandle handle;
            lock (_lock)
            {
                if (_lines.IsDisposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                handle = _file.SafeFileHandle; // the buffer was written to the OS by Write
            }
            if (DiskSync.TrySync(handle)) return;
            lock (_lock) _file.Flush(true);
        }

        /// <summary>The send was cancelled before any of the message left: the recipient is pending again.</summary>
        public void Released(string key) => Write(RecordKind.Released, key, null);

        /// <param name="refused">Other recipients of the message (a campaign-wide Cc or Bcc) that did not get it: kept as "refused".</param>
        public void Sent(string key, string? messageId, string? reply, int attempts, TimeSpan duration, IReadOnlyList<Resilience.RecipientRefusal>? refused = null) =>
            Write(RecordKind.Sent, key, w =>
            {
                if (messageId != null) w.WriteString("messageId", messageId);
                if (reply != null) w.WriteString("reply", reply);
                w.WriteNumber("attempts", attempts);
                w.WriteNumber("ms", (long)duration.TotalMilliseconds);
                if (refused != null && refused.Count > 0)
                {
                    w.WriteStartArray("refused");
                    foreach (var r in refused)
                    {
                        w.WriteStartObject();
                        w.WriteString("to", r.Address);
                        w.WriteString("error", r.Failure.Message);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
            });

        /// <param name="flush">False for a row refused before sending: losing that record to a crash only means it is checked again.</param>
        public void Failed(string key, bool permanent, string reason, string error, int attempts, bool flush = true) =>
            Write(permanent ? RecordKind.Failed : RecordKind.Deferred, key, flush: flush, body: w =>
            {
                w.WriteString("reason", reason);
                w.WriteString("error", error);
                w.WriteNumber("attempts", attempts);
            });

        public void Uncertain(string key, string? messageId, string error, int attempts) =>
            Write(RecordKind.Uncertain, key, w =>
            {
                if (messageId != null) w.WriteString("messageId", messageId);
                w.WriteString("error", error);
                w.WriteNumber("attempts", attempts);
            });

        private void Write(string state, string? key, Action<Utf8JsonWriter>? body, bool durable = false, bool flush = true)
        {
            bool written = _lines.Write(w =>
            {
                w.WriteString("state", state);
                if (key != null) w.WriteString("key", key);
                body?.Invoke(w);
            }, flush, durable);
            if (!written) throw new ObjectDisposedException(nameof(CampaignJournal));
        }

        public void Dispose()
        {
            lock (_lock)
            {
                if (_lines.IsDisposed) return;
                try { _file.Flush(true); } catch (IOException) { }
                _lines.Dispose();
                Forget(Path);
            }
        }
    }
}
