using System;
using System.Management.Automation;
using System.Net;
using System.Security;
using ResilientMail.Core.Campaigns;

namespace ResilientMail.Internal
{
    /// <summary>
    /// Where a campaign's journal is, as the user named it (-JournalPath, or -JournalStore with its secret, and -Shard),
    /// resolved to a Core store, and written back into the commands a warning or a pause suggests.
    /// </summary>
    internal sealed class JournalWhere
    {
        public static readonly JournalWhere Default = new JournalWhere(null, null, false, null, null);

        private JournalWhere(string? journalPath, string? storeAddress, bool storeSecret, Shard? shard, JournalStore? store, bool sasInAddress = false)
        {
            SasInAddress = sasInAddress;
            JournalPath = journalPath;
            StoreAddress = storeAddress;
            StoreSecret = storeSecret;
            Shard = shard;
            Store = store;
        }

        /// <summary>A journal file outside the default folder, as given.</summary>
        public string? JournalPath { get; }
        /// <summary>The store's address as it may be shown (no SAS).</summary>
        public string? StoreAddress { get; }
        public bool StoreSecret { get; }
        /// <summary>The store's address was given with a SAS in it: the command shown asks for it again without showing it.</summary>
        public bool SasInAddress { get; }
        public Shard? Shard { get; }
        /// <summary>The store, or null for the default folder (or the -JournalPath file).</summary>
        public JournalStore? Store { get; }

        /// <summary>The parameters as they are typed again to name the same journal.</summary>
        public string Arguments =>
            (JournalPath != null ? $" -JournalPath '{Quote(JournalPath)}'" : "") +
            (StoreAddress != null ? $" -JournalStore '{Quote(StoreAddress)}{(SasInAddress ? "?<SAS>" : "")}'" : "") +
            (StoreSecret ? " -JournalStoreSecret $journalStoreSecret" : "") +
            (Shard != null ? $" -Shard {Shard}" : "");

        /// <summary>The same journal's place with another shard (or none).</summary>
        public JournalWhere WithShard(Shard? shard) => new JournalWhere(JournalPath, StoreAddress, StoreSecret, shard, Store, SasInAddress);

        /// <summary>A journal file named by its path (outside the default folder).</summary>
        public static JournalWhere File(string path) => new JournalWhere(path, null, false, null, null);

        private static string Quote(string s) => s.Replace("'", "''");

        /// <summary>The parameters resolved; a store that cannot be used is a terminating error of the cmdlet.</summary>
        public static JournalWhere From(PSCmdlet cmdlet, string? journalPath, string? storeAddress, SecureString? storeSecret, string? shard, TimeSpan? timeout = null)
        {
            Shard? part = null;
            if (shard != null)
            {
                try { part = Shard.Parse(shard); }
                catch (FormatException ex) { Fail(cmdlet, ex, "InvalidShard", ErrorCategory.InvalidArgument, shard); }
            }
            if (storeAddress == null) return new JournalWhere(journalPath, null, false, part, null);
            if (journalPath != null)
                Fail(cmdlet, new ArgumentException("-JournalPath names a journal file and -JournalStore a store of journals: give one of them."), "InvalidJournalStore", ErrorCategory.InvalidArgument, storeAddress);
            // A SAS in the address is accepted, and never shown: the address shown and typed again is without it.
            bool sasInAddress = storeAddress.IndexOf('?') >= 0;
            try
            {
                var secret = storeSecret == null ? null : new NetworkCredential("", storeSecret).Password;
                var store = BlobJournalStore.Connect(storeAddress, secret, timeout);
                return new JournalWhere(null, store.Location, storeSecret != null, part, store, sasInAddress && storeSecret == null);
            }
            catch (ArgumentException ex)
            {
                Fail(cmdlet, new ArgumentException(ex.Message), "InvalidJournalStore", ErrorCategory.InvalidArgument, BlobJournalStore.Redact(storeAddress));
                throw; // not reached
            }
            catch (FormatException)
            {
                Fail(cmdlet, new ArgumentException("The -JournalStoreSecret is neither a connection string (AccountName=...;AccountKey=...) nor a SAS token (sv=...&sig=...)."),
                    "InvalidJournalStore", ErrorCategory.InvalidArgument, BlobJournalStore.Redact(storeAddress));
                throw; // not reached
            }
        }

        private static void Fail(PSCmdlet cmdlet, Exception ex, string id, ErrorCategory category, object target) =>
            cmdlet.ThrowTerminatingError(new ErrorRecord(ex, id, category, target));
    }
}
