using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Text.Json;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>One recipient as the journal last saw it.</summary>
    public sealed class RecipientRecord
    {
        public string Key { get; set; } = "";
        public string? To { get; set; }
        public RecipientState State { get; set; }
        public long Row { get; set; }
        public int Attempts { get; set; }
        public string? MessageId { get; set; }
        public string? Reply { get; set; }
        public string? Error { get; set; }
        public string? Reason { get; set; }
        public DateTimeOffset Updated { get; set; }
    }

    /// <summary>A pending row kept in the journal, replayed when a campaign resumes without its input.</summary>
    public sealed record JournalRow(string Key, long Row, KeyValuePair<string, object?>[] Data);

    /// <summary>
    /// The journal replayed: the campaign's definition, the state of every recipient (by key hash, so a
    /// million fit in a few tens of megabytes) and the counts. A torn last line is skipped.
    /// </summary>
    public sealed class JournalSnapshot
    {
        private readonly Dictionary<ulong, RecipientState> _states = new Dictionary<ulong, RecipientState>();
        private readonly HashSet<ulong> _duplicateRows = new HashSet<ulong>();
        // Recipients whose last record is an intent, with the boot of the OS the run that wrote it was in.
        private readonly Dictionary<ulong, string?> _intents = new Dictionary<ulong, string?>();
        private string? _runBoot;
        private bool _runHandOverDurable;
        private bool _inputEnd, _formatKnown;

        public string Path { get; private set; } = "";
        public CampaignDefinition? Definition { get; private set; }
        /// <summary>Distinct duplicate rows (a resume that reads the same input again does not count them twice).</summary>
        public long Duplicates => _duplicateRows.Count;
        public long Rows { get; private set; }
        public int Runs { get; private set; }
        public int SkippedLines { get; private set; }
        public string? LastError { get; private set; }
        public string? LastPause { get; private set; }
        public bool Completed { get; private set; }
        /// <summary>
        /// Some run read the campaign's input to its end, so every row of it is in the journal. A journal of an earlier
        /// version (no format number) did not record this; its "completed" is taken as the end of the input.
        /// </summary>
        public bool InputComplete => _inputEnd || Completed && !_formatKnown;
        /// <summary>Only a journal of an earlier version says the input was read (by its "completed"): a resume records it in today's form.</summary>
        public bool InputCompleteByLegacy => !_inputEnd && Completed && !_formatKnown;
        /// <summary>The most rows any run read from the input (row numbers count from 1 in each run).</summary>
        public long RowsRead { get; private set; }
        /// <summary>The last run ended with every row it had done, but without the end of its input.</summary>
        public bool Incomplete { get; private set; }
        /// <summary>The last run was stopped by the user (Ctrl+C).</summary>
        public bool Stopped { get; private set; }
        public DateTimeOffset? FirstAt { get; private set; }
        public DateTimeOffset? LastAt { get; private set; }

        private readonly Queue<DateTimeOffset> _recentSends = new Queue<DateTimeOffset>();

        /// <summary>When the rows sent in the last 24 hours of the journal were sent (for a provider's daily cap); older ones are not kept.</summary>
        public IReadOnlyCollection<DateTimeOffset> RecentSends => _recentSends;
        /// <summary>Per-recipient detail, kept only when asked for (Get-MailCampaign -Recipients).</summary>
        public Dictionary<string, RecipientRecord>? Recipients { get; private set; }

        public IReadOnlyDictionary<ulong, RecipientState> States => _states;

        public bool IsKnownDuplicate(string key, long row) => _duplicateRows.Contains(RecipientKey.Hash(key + "#" + row));

        public RecipientState? StateOf(string key) => _states.TryGetValue(RecipientKey.Hash(key), out var s) ? s : (RecipientState?)null;

        public long Count(RecipientState state)
        {
            long n = 0;
            foreach (var s in _states.Values) if (s == state) n++;
            return n;
        }

        /// <summary>
        /// The state the journal was left in: Completed, Paused, Stopped (Ctrl+C), Incomplete (all it was given is done,
        /// its input never read to the end), New, or Running (started and not ended: running now, or killed).
        /// </summary>
        public string Status =>
            Completed ? "Completed" : LastPause != null ? "Paused" : Stopped ? "Stopped" : Incomplete ? "Incomplete" : Runs == 0 ? "New" : "Running";

        /// <summary>The campaign's counts as the journal has them: the same summary a run ends with.</summary>
        public CampaignSummary Summary() => new CampaignCounts(this).Summary(Definition?.Name ?? JournalStore.Stem(System.IO.Path.GetFileName(Path)),
            Completed ? CampaignState.Completed : LastPause != null ? CampaignState.Paused : CampaignState.Incomplete) with
        {
            JournalPath = Path,
            PauseReason = LastPause,
            LastError = LastError,
            InputComplete = InputComplete,
            RowsRead = RowsRead,
        };

        /// <summary>The campaign's own name, from the journal's first record (file names are made safe, so they may differ); null if unreadable.</summary>
        public static string? ReadName(JournalStore store, string id)
        {
            try
            {
                foreach (var line in Lines(store, id))
                {
                    using var doc = JsonDocument.Parse(line);
                    return doc.RootElement.TryGetProperty("campaign", out var c) && c.TryGetProperty("name", out var n) ? n.GetString() : null;
                }
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException || ex is JsonException) { }
            return null;
        }

        /// <summary>A journal file, replayed (an empty snapshot when it does not exist).</summary>
        public static JournalSnapshot Load(string path, bool withRecipients = false) => Load(FileStoreOf(path), path, withRecipients);

        /// <summary>The snapshot of a campaign that has no journal yet.</summary>
        public static JournalSnapshot None() => new JournalSnapshot();

        /// <summary>A journal of a store, replayed (an empty snapshot when it does not exist).</summary>
        public static JournalSnapshot Load(JournalStore store, string id, bool withRecipients = false)
        {
            var snapshot = new JournalSnapshot { Path = store.Where(id) };
            if (withRecipients) snapshot.Recipients = new Dictionary<string, RecipientRecord>(StringComparer.Ordinal);
            foreach (var line in Lines(store, id))
            {
                JsonDocument doc;
                try { doc = JsonDocument.Parse(line); }
                catch (JsonException) { snapshot.SkippedLines++; continue; }
                using (doc) snapshot.Apply(doc.RootElement);
            }
            snapshot.ResolveIntents(BootId.Current);
            return snapshot;
        }

        private static FileJournalStore FileStoreOf(string path) => new FileJournalStore(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);

        /// <summary>The rows recorded as pending, first time each key was seen, in order.</summary>
        public static IEnumerable<JournalRow> PendingRows(string path) => PendingRows(FileStoreOf(path), path);

        public static IEnumerable<JournalRow> PendingRows(JournalStore store, string id)
        {
            var seen = new HashSet<ulong>();
            foreach (var line in Lines(store, id))
            {
                JsonDocument doc;
                try { doc = JsonDocument.Parse(line); }
                catch (JsonException) { continue; }
                using (doc)
                {
                    var root = doc.RootElement;
                    if (root.ValueKind != JsonValueKind.Object || Str(root, "state") != RecordKind.Pending) continue;
                    var key = Str(root, "key") ?? "";
                    if (!seen.Add(RecipientKey.Hash(key))) continue;
                    var data = new List<KeyValuePair<string, object?>>();
                    if (root.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.Object)
                        foreach (var p in d.EnumerateObject()) data.Add(new KeyValuePair<string, object?>(p.Name, p.Value.ValueKind == JsonValueKind.Null ? null : p.Value.GetString()));
                    yield return new JournalRow(key, root.TryGetProperty("row", out var r) ? r.GetInt64() : 0, data.ToArray());
                }
            }
        }

        /// <summary>Complete lines only: a last line without its newline was torn by a crash and is not a record.</summary>
        private static IEnumerable<string> Lines(JournalStore store, string id)
        {
            using var stream = store.OpenRead(id);
            if (stream == null) yield break;
            using var reader = new StreamReader(stream, new UTF8Encoding(false), false, 1 << 16);
            var sb = new StringBuilder();
            int c;
            while ((c = reader.Read()) >= 0)
            {
                if (c == '\n')
                {
                    if (sb.Length > 0) yield return sb.ToString();
                    sb.Clear();
                }
                else sb.Append((char)c);
            }
            // Anything left without a newline is a torn record: ignored.
        }

        private void Apply(JsonElement e)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("state", out var st)) { SkippedLines++; return; }
            var state = st.GetString();
            DateTimeOffset at = default;
            if (e.TryGetProperty("at", out var atEl) && atEl.TryGetDateTimeOffset(out var parsed))
            {
                at = parsed;
                FirstAt ??= parsed;
                LastAt = parsed;
            }
            string? key = e.TryGetProperty("key", out var k) ? k.GetString() : null;
            switch (state)
            {
                case RecordKind.Definition:
                    if (e.TryGetProperty("campaign", out var def)) Definition = JsonSerializer.Deserialize<CampaignDefinition>(def.GetRawText(), CampaignJournal.Json);
                    return;
                case RecordKind.RunStarted:
                    Runs++; Completed = false; Stopped = false; Incomplete = false; LastPause = null; _runBoot = Str(e, "boot");
                    _runHandOverDurable = Str(e, "handOver") == "durable";
                    if (e.TryGetProperty("format", out _)) _formatKnown = true;
                    return;
                case RecordKind.Paused: LastPause = Text(e); Completed = false; return;
                case RecordKind.Stopped: Stopped = true; return;
                case RecordKind.Completed: Completed = true; LastPause = null; return;
                case RecordKind.Incomplete: Incomplete = true; LastPause = null; return;
                case RecordKind.InputEnd:
                    _inputEnd = true;
                    if (e.TryGetProperty("rows", out var ir) && ir.GetInt64() > RowsRead) RowsRead = ir.GetInt64();
                    return;
                case RecordKind.Duplicate:
                    long duplicateRow = e.TryGetProperty("row", out var dr) ? dr.GetInt64() : 0;
                    _duplicateRows.Add(RecipientKey.Hash((key ?? "") + "#" + duplicateRow));
                    if (duplicateRow > RowsRead) RowsRead = duplicateRow;
                    return;
            }
            if (key == null) return;
            ulong h = RecipientKey.Hash(key);
            if (state == RecordKind.Intent)
            {
                // Decided when the whole journal has been read (ResolveIntents); until then it is as it was. A run whose
                // "sending" is durable never needs one: its intent without "sending" was not handed over, on any machine.
                if (_runHandOverDurable) return;
                _intents[h] = _runBoot;
                if (!_states.ContainsKey(h)) _states[h] = RecipientState.Pending;
                return;
            }
            if (state != RecordKind.Pending) _intents.Remove(h);
            RecipientState? next = state switch
            {
                RecordKind.Pending => _states.ContainsKey(h) ? (RecipientState?)null : RecipientState.Pending,
                RecordKind.Sending => RecipientState.Sending,
                RecordKind.Released => RecipientState.Pending,
                RecordKind.Sent => RecipientState.Sent,
                RecordKind.Deferred => RecipientState.FailedTransient,
                RecordKind.Failed => RecipientState.FailedPermanent,
                RecordKind.Uncertain => RecipientState.Uncertain,
                _ => null,
            };
            if (state == RecordKind.Pending && !_states.ContainsKey(h)) Rows++;
            if (state == RecordKind.Pending && e.TryGetProperty("row", out var pr) && pr.GetInt64() > RowsRead) RowsRead = pr.GetInt64();
            if (next == null) return;
            if (state == RecordKind.Sent && at != default)
            {
                _recentSends.Enqueue(at);
                while (_recentSends.Peek() <= at - Resilience.RecipientQuota.Window) _recentSends.Dequeue();
            }
            _states[h] = next.Value;
            if (state == RecordKind.Deferred || state == RecordKind.Failed || state == RecordKind.Uncertain) LastError = Str(e, "error");

            if (Recipients == null) return;
            if (!Recipients.TryGetValue(key, out var r)) Recipients[key] = r = new RecipientRecord { Key = key };
            r.State = next.Value;
            r.Updated = at;
            if (state == RecordKind.Pending && e.TryGetProperty("row", out var row)) r.Row = row.GetInt64();
            if (e.TryGetProperty("to", out var to)) r.To = to.GetString();
            if (e.TryGetProperty("attempts", out var att)) r.Attempts = att.GetInt32();
            if (e.TryGetProperty("messageId", out var mid)) r.MessageId = mid.GetString();
            if (e.TryGetProperty("reply", out var rep)) r.Reply = rep.GetString();
            if (e.TryGetProperty("reason", out var rea)) r.Reason = rea.GetString();
            if (state == RecordKind.Sent) r.Error = null;
            if (e.TryGetProperty("error", out var err)) r.Error = err.GetString();
        }

        /// <summary>
        /// An intent with no "sending" after it was never handed over when the run that wrote it was in this
        /// boot of the OS (its "sending" record could not have been lost); otherwise it may have been: Uncertain.
        /// </summary>
        internal void ResolveIntents(string? currentBoot)
        {
            // One pass over the intents, one over the recipients' details: linear in the journal's size.
            Dictionary<ulong, RecipientRecord>? byHash = null;
            if (Recipients != null && _intents.Count > 0)
            {
                byHash = new Dictionary<ulong, RecipientRecord>(Recipients.Count);
                foreach (var r in Recipients.Values) byHash[RecipientKey.Hash(r.Key)] = r;
            }
            foreach (var intent in _intents)
            {
                if (intent.Value != null && intent.Value == currentBoot) continue; // stays as it was before the intent
                _states[intent.Key] = RecipientState.Sending;
                if (byHash != null && byHash.TryGetValue(intent.Key, out var record)) record.State = RecipientState.Sending;
            }
            _intents.Clear();
        }

        private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;
        private static string? Text(JsonElement e) => Str(e, "text");
    }
}
