using System;
using System.IO;
using System.Management.Automation;
using ResilientMail.Core.Campaigns;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Deletes a campaign's journal (every shard's), after which the same name starts afresh.</summary>
    [Cmdlet(VerbsCommon.Remove, "MailCampaign", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = "Name")]
    [OutputType(typeof(void))]
    public sealed class RemoveMailCampaignCommand : PSCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Name", ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(CampaignNameCompleter))]
        public string Name { get; set; } = "";

        [Parameter(Mandatory = true, ParameterSetName = "Path", ValueFromPipelineByPropertyName = true)]
        public string JournalPath { get; set; } = "";

        /// <summary>An Azure Blob Storage container of journals (Start-MailCampaign -JournalStore) instead of the local folder.</summary>
        [Parameter(ParameterSetName = "Name")]
        public string? JournalStore { get; set; }

        /// <summary>The store's connection string or SAS token.</summary>
        [Parameter(ParameterSetName = "Name")]
        public System.Security.SecureString? JournalStoreSecret { get; set; }

        protected override void ProcessRecord()
        {
            var where = ParameterSetName == "Path" ? JournalWhere.Default : JournalWhere.From(this, null, JournalStore, JournalStoreSecret, null);
            JournalStore store = where.Store ?? FileJournalStore.Default;
            string[] ids;
            try
            {
                if (ParameterSetName == "Path")
                {
                    var path = GetUnresolvedProviderPathFromPSPath(JournalPath);
                    store = new FileJournalStore(Path.GetDirectoryName(Path.GetFullPath(path))!);
                    ids = new[] { Path.GetFullPath(path) };
                }
                else ids = CampaignInfo.Find(Name, store);
            }
            catch (IOException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "JournalStoreUnavailable", ErrorCategory.ConnectionError, store.Location));
                return;
            }
            if (ids.Length == 0 && (ParameterSetName == "Path" || !WildcardPattern.ContainsWildcardCharacters(Name)))
            {
                WriteError(new ErrorRecord(new FileNotFoundException($"No campaign named '{Name}'."), "CampaignNotFound", ErrorCategory.ObjectNotFound, Name));
                return;
            }
            foreach (var id in ids)
            {
                var where_ = store.Where(id);
                if (!store.Exists(id) && ParameterSetName == "Path") { WriteError(new ErrorRecord(new FileNotFoundException($"No journal at {where_}."), "CampaignNotFound", ErrorCategory.ObjectNotFound, where_)); continue; }
                var name = store.NameOf(id);
                if (!ShouldProcess($"{name} ({where_})", "Delete the campaign journal")) continue;
                try
                {
                    // Taking the journal's lock proves no run is using it; the delete is made while holding it.
                    CampaignJournal.Open(store, id).Delete();
                    Streams.Verbose(this, $"Deleted {where_}.");
                }
                catch (JournalLockedException ex)
                {
                    WriteError(new ErrorRecord(ex, "JournalLocked", ErrorCategory.ResourceBusy, name));
                }
                catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
                {
                    WriteError(new ErrorRecord(ex, "JournalNotDeleted", ErrorCategory.WriteError, name));
                }
            }
        }
    }
}
