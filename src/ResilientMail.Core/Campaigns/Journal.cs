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

        public JournalLockedException(string message) : base(message) { }
    }

    /// <summary>The journal's store could not be written for longer than the wait limit, or another run took the journal over: nothing more is sent.</summary>
    public sealed class JournalStoreException : IOException
    {
        public JournalStoreException(string message, Exception? inner = null) : base(message, inner) { }
    }

    /// <summary>
    /// An append-only JSON-lines journal: one record per state change, readable by a person, in a file or in a store
    /// (<see cref="JournalStore"/>). Before a message is sent its record is durable: in a file, an "intent" forced to
    /// disk, then a "sending" record written to the OS (not forced) at the moment it is handed to the transport; an
    /// intent without "sending" was never started when the journal is read in the same boot of the OS, and is
    /// Uncertain after a restart. Because only the intent waits for the disk, the intent of the next message is forced
    /// while the current one is on the wire. In a store another machine reads (Azure Blob Storage), the boot cannot be
    /// shared, so the "sending" record itself is made durable before the message leaves (it carries every record written
    /// before it), and intents are not written: "sending" without an outcome is Uncertain, anything else is exact.
    /// </summary>
    public sealed class CampaignJournal : IDisposable
    {
        internal static readonly JsonSerializerOptions Json = new JsonSerializerOptions
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        };

        private readonly Logging.JsonLinesWriter _lines;
        private readonly JournalAppender _sink;
        private readonly object _lock;

        private CampaignJournal(JournalStore store, string id, JournalAppender sink, TimeProvider time)
        {
            Store = store;
            Id = id;
            Path = store.Where(id);
            _sink = sink;
            _lines = new Logging.JsonLinesWriter(sink, time);
            _lock = _lines.Lock;
        }

        /// <summary>Where the journal is, as a person reads it (a path; a blob's address without a secret).</summary>
        public string Path { get; }
        public JournalStore Store { get; }
        public string Id { get; }

        /// <summary>The run's events sink: a store that cannot be written waits as an outage does, and says so here.</summary>
        public Delivery.DeliveryEventSink? Events { get => _sink.Events; set => _sink.Events = value; }

        /// <summary>How long a store that cannot be written is waited for, and how often it is checked (the run's own rules for an outage).</summary>
        public Resilience.ConnectivityOptions StoreWait { get => _sink.Connectivity; set => _sink.Connectivity = value; }

        /// <summary>The hand-over record is durable before a message leaves (a store read from other machines); no intents are written.</summary>
        public bool DurableHandOver => _sink.DurableHandOver;

        /// <summary>Opens (creating it if needed) for appending; only one run may hold it.</summary>
        public static CampaignJournal Open(string path) => Open(path, TimeProvider.System);

        public static CampaignJournal Open(string path, TimeProvider time) => Open(new FileJournalStore(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!), System.IO.Path.GetFullPath(path), time);

        /// <summary>Opens a journal of a store for appending, taking the run's lock on it (a lease in a blob store).</summary>
        public static CampaignJournal Open(JournalStore store, string id) => Open(store, id, TimeProvider.System);

        // (No optional TimeProvider on the overload above: the cmdlets may name no third-party type, TimeProvider included.)
        public static CampaignJournal Open(JournalStore store, string id, TimeProvider time) =>
            new CampaignJournal(store, id, store.OpenAppend(id, time), time);

        /// <summary>Deletes the journal this run holds (Remove-MailCampaign: holding it proves no run uses it).</summary>
        public void Delete()
        {
            lock (_lock)
            {
                Store.Delete(Id, _sink); // still holding the lock (a lease: the delete is made under it), then ends it
                _lines.Dispose();
            }
        }

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
                if (DurableHandOver) w.WriteString("handOver", "durable"); // "sending" is durable; an intent is never needed
                else if (BootId.Current != null) w.WriteString("boot", BootId.Current);
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

        /// <summary>Several intents, forced to disk together (one wait for the disk). A store whose "sending" is durable writes none.</summary>
        public Task IntentsAsync(IEnumerable<(string Key, string To)> messages)
        {
            if (DurableHandOver) return Task.CompletedTask;
            lock (_lock)
            {
                foreach (var (key, to) in messages) Write(RecordKind.Intent, key, w => w.WriteString("to", to), flush: false);
                if (_lines.IsDisposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                return _sink.ForceAsync(); // to the OS in one write; then forced to disk on a pool thread
            }
        }

        /// <summary>
        /// Handed to the transport now. In a file, written, not forced (the intent before it is on disk already); in a
        /// store read from other machines, durable when the task ends (with every record before it), and only then may
        /// the message leave.
        /// </summary>
        public Task SendingAsync(string key, string to)
        {
            Write(RecordKind.Sending, key, w => w.WriteString("to", to), flush: !DurableHandOver);
            return DurableHandOver ? _sink.ForceAsync() : Task.CompletedTask;
        }

        /// <summary>Everything written so far, durable (a store's records are otherwise carried by the next durable one).</summary>
        public Task ForceAsync() => _sink.ForceAsync();

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
                _lines.Dispose(); // the sink makes what is left durable and ends the run's lock
            }
        }
    }
}
