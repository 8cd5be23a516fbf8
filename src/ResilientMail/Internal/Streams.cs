using System;
using System.Management.Automation;
using System.Management.Automation.Host;

namespace ResilientMail.Internal
{
    /// <summary>
    /// Warnings and progress that never end a run. A runbook may set any preference: -Debug turns a warning into a prompt,
    /// which a non-interactive host cannot show, and $WarningPreference = 'Stop' turns it into an error. A wait for the
    /// network, or a summary, must survive both: then the text goes to the verbose stream instead (the -LogPath log has it too).
    /// </summary>
    internal static class Streams
    {
        public static void Warn(Cmdlet cmdlet, string text)
        {
            try { cmdlet.WriteWarning(text); }
            catch (Exception ex) when (ex is PSInvalidOperationException || ex is HostException || ex is ActionPreferenceStopException)
            {
                Verbose(cmdlet, "WARNING: " + text);
            }
        }

        /// <summary>A verbose line; under -Debug PowerShell asks before each one, which a runbook cannot answer.</summary>
        public static void Verbose(Cmdlet cmdlet, string text)
        {
            try { cmdlet.WriteVerbose(text); }
            catch (Exception ex) when (ex is PSInvalidOperationException || ex is HostException || ex is ActionPreferenceStopException) { }
        }

        public static void Progress(Cmdlet cmdlet, ProgressRecord record)
        {
            try { cmdlet.WriteProgress(record); }
            catch (Exception ex) when (ex is PSInvalidOperationException || ex is HostException || ex is ActionPreferenceStopException) { }
        }
    }
}
