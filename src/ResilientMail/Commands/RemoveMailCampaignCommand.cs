using System;
using System.IO;
using System.Management.Automation;
using ResilientMail.Core.Campaigns;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Deletes a campaign's journal, after which the same name starts afresh.</summary>
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

        protected override void ProcessRecord()
        {
            var paths = ParameterSetName == "Path" ? new[] { GetUnresolvedProviderPathFromPSPath(JournalPath) } : CampaignInfo.Find(Name);
            if (paths.Length == 0 && (ParameterSetName == "Path" || !WildcardPattern.ContainsWildcardCharacters(Name)))
            {
                WriteError(new ErrorRecord(new FileNotFoundException($"No campaign named '{Name}'."), "CampaignNotFound", ErrorCategory.ObjectNotFound, Name));
                return;
            }
            foreach (var path in paths)
            {
                if (!File.Exists(path)) { WriteError(new ErrorRecord(new FileNotFoundException($"No journal at {path}."), "CampaignNotFound", ErrorCategory.ObjectNotFound, path)); continue; }
                var name = CampaignJournal.NameFromPath(path);
                if (!ShouldProcess($"{name} ({path})", "Delete the campaign journal")) continue;
                try
                {
                    // Taking the journal's lock proves no run is using it.
                    using (CampaignJournal.Open(path)) { }
                    File.Delete(path);
                    Streams.Verbose(this, $"Deleted {path}.");
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
