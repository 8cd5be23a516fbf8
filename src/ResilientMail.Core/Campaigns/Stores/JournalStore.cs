using System;
using System.Collections.Generic;
using System.IO;
using System.Threading.Tasks;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// Where campaign journals live: the local folder (the default) or an Azure Blob Storage container. A journal is
    /// named by an id that only its store understands (a file path; a blob name). Every store keeps the same promises:
    /// one run at a time holds a journal, and a message's record is durable before the message is handed over.
    /// </summary>
    public abstract class JournalStore
    {
        /// <summary>What to call the store in messages: a folder, or the container's address without any secret in it.</summary>
        public abstract string Location { get; }

        /// <summary>The journal of a campaign (or one shard of it) in this store.</summary>
        public abstract string IdFor(string campaignName, Shard? shard = null);

        /// <summary>Every journal in the store (its ids).</summary>
        public abstract IReadOnlyList<string> List();

        /// <summary>True when the journal has at least one record.</summary>
        public abstract bool Exists(string id);

        /// <summary>The journal's records, oldest first, as one stream; null when it does not exist.</summary>
        public abstract Stream? OpenRead(string id);

        /// <summary>Where one journal is, as a person reads it (a path; an address without a secret).</summary>
        public abstract string Where(string id);

        /// <summary>The campaign name a journal's id stands for (names are made safe, so the journal's own first record is the better source).</summary>
        public abstract string NameOf(string id);

        /// <summary>Takes the run's lock on the journal (creating it if needed) and opens it for appending.</summary>
        internal abstract JournalAppender OpenAppend(string id, TimeProvider time);

        /// <summary>Deletes the journal; the caller holds its lock (the appender), which this ends.</summary>
        internal abstract void Delete(string id, JournalAppender held);

        /// <summary>Whether the journal of a run in this store can tell "never started" from "maybe sent" by the OS boot (the file store).</summary>
        public abstract bool SharesBoot { get; }

        /// <summary>A campaign or shard name as it may appear in a journal's id.</summary>
        public static string SafeName(string name)
        {
            var sb = new System.Text.StringBuilder(name.Length);
            foreach (var ch in name.Trim())
                sb.Append(char.IsLetterOrDigit(ch) || ch == '-' || ch == '_' || ch == '.' ? ch : '_');
            if (sb.Length == 0) throw new ArgumentException("A campaign needs a name.");
            return sb.ToString();
        }

        public const string Extension = ".journal.jsonl";

        /// <summary>The name part of a journal file or blob name ("launch.shard-1-of-2" for a shard).</summary>
        public static string Stem(string fileName) =>
            fileName.EndsWith(Extension, StringComparison.OrdinalIgnoreCase) ? fileName.Substring(0, fileName.Length - Extension.Length) : fileName;
    }

    /// <summary>
    /// An open journal's lock and its sink. Lines are written whole; <see cref="ForceAsync"/> makes everything written
    /// so far durable. A store that cannot share the reader's boot of the OS makes the hand-over record ("sending")
    /// durable before the message leaves (<see cref="DurableHandOver"/>).
    /// </summary>
    internal abstract class JournalAppender : Logging.ILineTarget
    {
        public abstract void Write(byte[] buffer, int count);
        public abstract void Flush(bool durable);
        public abstract Task ForceAsync();
        public abstract bool DurableHandOver { get; }
        public abstract void Dispose();
        /// <summary>Receives the store's waits (an outage of the store) as the network's are reported.</summary>
        public Delivery.DeliveryEventSink? Events { get; set; }
        /// <summary>A store that is out is waited for with these rules (the run's wait limit and check interval).</summary>
        public Resilience.ConnectivityOptions Connectivity { get; set; } = new Resilience.ConnectivityOptions();
    }

    /// <summary>Journals as files in a folder (by default the per-user data folder); ids are full paths.</summary>
    public sealed class FileJournalStore : JournalStore
    {
        public FileJournalStore(string folder) => Folder = Path.GetFullPath(folder);

        /// <summary>The per-user data folder's campaigns (RESILIENTMAIL_DATA overrides it), read when asked: the variable may change.</summary>
        public static FileJournalStore Default => new FileJournalStore(Path.Combine(DataRoot(), "ResilientMail", "campaigns"));

        /// <summary>%LOCALAPPDATA% on Windows, $XDG_DATA_HOME or ~/.local/share elsewhere; RESILIENTMAIL_DATA overrides both.</summary>
        public static string DataRoot()
        {
            var overridden = Environment.GetEnvironmentVariable("RESILIENTMAIL_DATA");
            if (!string.IsNullOrEmpty(overridden)) return overridden!;
            var local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
            if (!string.IsNullOrEmpty(local)) return local;
            var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            if (!string.IsNullOrEmpty(xdg)) return xdg!;
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        }

        public string Folder { get; }
        public override string Location => Folder;
        public override bool SharesBoot => true;

        public override string IdFor(string campaignName, Shard? shard = null) =>
            Path.Combine(Folder, SafeName(campaignName) + (shard?.Suffix ?? "") + Extension);

        public override IReadOnlyList<string> List() =>
            Directory.Exists(Folder) ? Directory.GetFiles(Folder, "*" + Extension) : new string[0];

        public override bool Exists(string id) => File.Exists(id) && new FileInfo(id).Length > 0;

        public override Stream? OpenRead(string id) =>
            File.Exists(id) ? new FileStream(id, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16) : null;

        public override string Where(string id) => id;

        public override string NameOf(string id) => Stem(Path.GetFileName(id));

        internal override JournalAppender OpenAppend(string id, TimeProvider time) => FileJournalAppender.Open(id);

        internal override void Delete(string id, JournalAppender held)
        {
            held.Dispose();
            File.Delete(id);
        }
    }
}
