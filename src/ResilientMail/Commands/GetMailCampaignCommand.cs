using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using ResilientMail.Core.Campaigns;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Reads campaign journals: a summary per campaign (with its shards), or one row per recipient with -Recipients.</summary>
    [Cmdlet(VerbsCommon.Get, "MailCampaign", DefaultParameterSetName = "Name")]
    [OutputType(typeof(MailCampaignInfo), typeof(MailCampaignRecipient))]
    public sealed class GetMailCampaignCommand : PSCmdlet
    {
        [Parameter(Position = 0, ParameterSetName = "Name", ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(CampaignNameCompleter))]
        public string Name { get; set; } = "*";

        [Parameter(Mandatory = true, ParameterSetName = "Path", ValueFromPipelineByPropertyName = true)]
        public string JournalPath { get; set; } = "";

        /// <summary>An Azure Blob Storage container of journals (Start-MailCampaign -JournalStore) instead of the local folder.</summary>
        [Parameter(ParameterSetName = "Name")]
        public string? JournalStore { get; set; }

        /// <summary>The store's connection string or SAS token.</summary>
        [Parameter(ParameterSetName = "Name")]
        public System.Security.SecureString? JournalStoreSecret { get; set; }

        /// <summary>One row per recipient instead of the summary.</summary>
        [Parameter]
        public SwitchParameter Recipients { get; set; }

        /// <summary>With -Recipients: only these states (Pending, Sent, Deferred, Failed, Uncertain).</summary>
        [Parameter]
        [ValidateSet("Pending", "Sent", "Deferred", "Failed", "Uncertain")]
        public string[]? Status { get; set; }

        protected override void ProcessRecord()
        {
            var where = ParameterSetName == "Path" ? JournalWhere.Default : JournalWhere.From(this, null, JournalStore, JournalStoreSecret, null);
            var store = where.Store ?? FileJournalStore.Default;
            string[] ids;
            try
            {
                ids = ParameterSetName == "Path" ? new[] { GetUnresolvedProviderPathFromPSPath(JournalPath) } : CampaignInfo.Find(Name, store);
            }
            catch (IOException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "JournalStoreUnavailable", ErrorCategory.ConnectionError, store.Location));
                return;
            }
            if (ParameterSetName == "Path") store = new FileJournalStore(Path.GetDirectoryName(Path.GetFullPath(ids[0]))!);
            if (ids.Length == 0 && !WildcardPattern.ContainsWildcardCharacters(Name))
            {
                WriteError(new ErrorRecord(new FileNotFoundException($"No campaign named '{Name}' (looked in {store.Location})."),
                    "CampaignNotFound", ErrorCategory.ObjectNotFound, Name));
                return;
            }
            // A campaign split among workers is one campaign: its shards' journals are summed, and kept beside it.
            foreach (var campaign in ids.GroupBy(id => Shard.FromStem(store.NameOf(id))?.Campaign ?? store.NameOf(id)))
            {
                var infos = new List<MailCampaignInfo>();
                foreach (var id in campaign)
                {
                    if (ParameterSetName == "Path" && !store.Exists(id)) // a listed journal exists: no second look at the store
                    {
                        WriteError(new ErrorRecord(new FileNotFoundException($"No journal at {store.Where(id)}."), "CampaignNotFound", ErrorCategory.ObjectNotFound, store.Where(id)));
                        continue;
                    }
                    var snapshot = JournalSnapshot.Load(store, id, withRecipients: Recipients);
                    var name = snapshot.Definition?.Name ?? store.NameOf(id);
                    if (Recipients)
                    {
                        foreach (var r in snapshot.Recipients!.Values.OrderBy(r => r.Row))
                        {
                            var row = CampaignInfo.From(name, r);
                            if (Status == null || Status.Contains(row.Status, System.StringComparer.OrdinalIgnoreCase)) WriteObject(row);
                        }
                        continue;
                    }
                    // A CSV campaign can say how many rows it has not read yet (a shard's part of them is not known).
                    var source = snapshot.Definition?.SourcePath;
                    long unread = snapshot.Definition?.Shard == null && source != null && File.Exists(source)
                        ? System.Math.Max(0, CsvRecords.CountRows(source) - snapshot.Rows - snapshot.Duplicates) : 0;
                    infos.Add(CampaignInfo.From(snapshot, where, unread));
                }
                if (infos.Count == 1 && infos[0].Shard == null) WriteObject(infos[0]);
                else if (infos.Count > 0) WriteObject(CampaignInfo.Whole(infos));
            }
        }
    }
}
