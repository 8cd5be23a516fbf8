@{
    RootModule           = 'ResilientMail.dll'
    # Stamped by build.ps1 from Directory.Build.props, the one place the version lives.
    ModuleVersion        = '0.0.0'
    GUID                 = '5f0d2c1e-7a43-4b8e-9d51-3c6e2a9b8f14'
    Author               = 'ResilientMail contributors'
    CompanyName          = 'ResilientMail'
    Copyright            = '(c) ResilientMail contributors. MIT licence.'
    Description          = 'Sends email through SMTP, SendGrid or Amazon SES with retry, timeouts, connectivity-aware waiting and pacing, and runs campaigns with a durable journal, so that mail from scripts and runbooks survives bad networks.'
    # Built against PowerShell Standard (netstandard2.0), but only PowerShell 7 is tested; Desktop is not claimed until it is.
    CompatiblePSEditions = @('Core')
    PowerShellVersion    = '7.2'
    FormatsToProcess     = @('ResilientMail.Format.ps1xml')
    CmdletsToExport      = @('Send-ResilientMail', 'Test-InternetConnection', 'Wait-InternetConnection', 'New-MailTransport', 'Start-MailCampaign', 'Get-MailCampaign', 'Remove-MailCampaign')
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('Email', 'Mail', 'SMTP', 'MailKit', 'SendGrid', 'SES', 'Campaign', 'Retry', 'Resilience', 'Send-MailMessage', 'PSEdition_Core', 'Linux', 'Windows', 'MacOS')
            ProjectUri   = 'https://github.com/resilientmail/ResilientMail'
            LicenseUri   = 'https://github.com/resilientmail/ResilientMail/blob/main/LICENSE'
            ReleaseNotes = 'First release: Send-ResilientMail and Start-MailCampaign over SMTP, SendGrid, Amazon SES or a pickup folder; Test-InternetConnection, Wait-InternetConnection.'
        }
    }
}
