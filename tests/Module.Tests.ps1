BeforeAll {
    . $PSScriptRoot/Common.ps1
    $script:module = Get-Module ResilientMail
    $script:moduleDir = Split-Path $ModulePath
}

Describe 'The built module' {
    It 'exports exactly the cmdlets that exist' {
        $exported = $module.ExportedCmdlets.Keys | Sort-Object
        $compiled = [ResilientMail.Commands.SendResilientMailCommand].Assembly.GetTypes() |
            Where-Object { $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false) } |
            ForEach-Object { $a = $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]; "$($a.VerbName)-$($a.NounName)" } | Sort-Object
        $exported | Should -Be $compiled
        $exported | Should -Be @('Get-MailCampaign', 'New-MailTransport', 'Remove-MailCampaign', 'Send-ResilientMail', 'Start-MailCampaign', 'Test-InternetConnection', 'Wait-InternetConnection')
    }

    It 'carries the version from Directory.Build.props and filled-in metadata' {
        $version = (Select-Xml -Path (Join-Path $RepoRoot 'Directory.Build.props') -XPath '//Version').Node.InnerText
        $module.Version.ToString() | Should -Be $version
        $data = Import-PowerShellDataFile $ModulePath
        $data.Description | Should -Not -BeNullOrEmpty
        $data.PrivateData.PSData.Tags | Should -Contain 'SMTP'
        $data.PrivateData.PSData.ProjectUri | Should -Not -BeNullOrEmpty
        $data.PrivateData.PSData.LicenseUri | Should -Not -BeNullOrEmpty
        $data.CompatiblePSEditions | Should -Be @('Core')
        [ResilientMail.Commands.SendResilientMailCommand].Assembly.GetName().Version.ToString() | Should -BeLike "$version*"
    }

    It 'does not ship PowerShellStandard.Library' {
        Join-Path $moduleDir 'System.Management.Automation.dll' | Should -Not -Exist
    }

    It 'declares an output type on every cmdlet' {
        foreach ($c in Get-Command -Module ResilientMail) { $c.OutputType | Should -Not -BeNullOrEmpty -Because $c.Name }
    }

    It 'has SupportsShouldProcess on every cmdlet that sends or deletes' {
        foreach ($name in 'Send-ResilientMail', 'Start-MailCampaign', 'Remove-MailCampaign') {
            (Get-Command $name).Parameters.Keys | Should -Contain 'WhatIf' -Because $name
            (Get-Command $name).Parameters.Keys | Should -Contain 'Confirm' -Because $name
        }
    }

    It 'exposes no third-party or Core type in a public cmdlet-assembly signature' {
        # Every public signature: base types, properties, fields, method parameters and return types, constructors.
        $foreign = '^(MailKit|MimeKit|Polly|SendGrid|AWSSDK|BouncyCastle|Microsoft\.Bcl|System\.Threading\.Channels|ResilientMail\.Core)'
        function Test-Foreign([type]$Type) {
            if ($null -eq $Type) { return $false }
            if ($Type.HasElementType) { return Test-Foreign $Type.GetElementType() }
            if ($Type.IsGenericType -and @($Type.GetGenericArguments() | Where-Object { Test-Foreign $_ }).Count -gt 0) { return $true }
            $Type.Assembly.GetName().Name -match $foreign
        }
        $asm = [ResilientMail.Commands.SendResilientMailCommand].Assembly
        $public = [System.Reflection.BindingFlags]'Public, Instance, Static, DeclaredOnly'
        $checked = 0
        $leaks = foreach ($t in $asm.GetExportedTypes()) {
            if (Test-Foreign $t.BaseType) { "$($t.Name) : $($t.BaseType)" }
            foreach ($p in $t.GetProperties($public)) { $checked++; if (Test-Foreign $p.PropertyType) { "$($t.Name).$($p.Name)" } }
            foreach ($f in $t.GetFields($public)) { $checked++; if (Test-Foreign $f.FieldType) { "$($t.Name).$($f.Name)" } }
            foreach ($m in @($t.GetMethods($public)) + @($t.GetConstructors())) {
                $checked++
                if ($m -is [System.Reflection.MethodInfo] -and (Test-Foreign $m.ReturnType)) { "$($t.Name).$($m.Name) returns $($m.ReturnType)" }
                foreach ($a in $m.GetParameters()) { if (Test-Foreign $a.ParameterType) { "$($t.Name).$($m.Name)($($a.Name))" } }
            }
        }
        $checked | Should -BeGreaterThan 100 # it looked at the whole surface
        $leaks | Should -BeNullOrEmpty
    }

    It 'maps every member of the Core enums that have a PowerShell twin, by name' {
        $null = New-MailTransport -PickupDirectory (Join-Path $TestDrive 'mirror') # Core loads when a cmdlet first needs it
        $core = [System.Runtime.Loader.AssemblyLoadContext]::All.Assemblies | Where-Object { $_.GetName().Name -eq 'ResilientMail.Core' } | Select-Object -First 1
        $core | Should -Not -BeNullOrEmpty
        $mapping = [ResilientMail.MailTransport].Assembly.GetType('ResilientMail.Internal.OutputMapping')
        $pairs = @(
            @{ Core = 'ResilientMail.Core.Delivery.DeliveryStatus'; Twin = [ResilientMail.MailDeliveryStatus] }
            @{ Core = 'ResilientMail.Core.Campaigns.CampaignRecipientStatus'; Twin = [ResilientMail.CampaignRecipientStatus] }
            @{ Core = 'ResilientMail.Core.Transports.SmtpSecurity'; Twin = [ResilientMail.MailSecurity] }
            @{ Core = 'ResilientMail.Core.Messages.MessagePriority'; Twin = [ResilientMail.MailPriority] }
        )
        foreach ($pair in $pairs) {
            $coreType = $core.GetType($pair.Core, $true)
            # The same members on both sides: a member added to one side fails here.
            ([enum]::GetNames($coreType) | Sort-Object) | Should -Be ([enum]::GetNames($pair.Twin) | Sort-Object) -Because $pair.Core
            # And each maps to its namesake in the direction the code maps it.
            $toTwin = $mapping.GetMethod('Of', [type[]]@($coreType))
            $fromTwin = $mapping.GetMethod('Of', [type[]]@($pair.Twin))
            ($toTwin -or $fromTwin) | Should -BeTrue -Because "OutputMapping maps $($pair.Core)"
            foreach ($name in [enum]::GetNames($coreType)) {
                if ($toTwin) { "$($toTwin.Invoke($null, @([enum]::Parse($coreType, $name))))" | Should -Be $name }
                if ($fromTwin) { "$($fromTwin.Invoke($null, @([enum]::Parse($pair.Twin, $name))))" | Should -Be $name }
            }
        }
    }
}

Describe 'Read at a glance' {
    It 'has a table view and a list view with every property for <Type>' -ForEach @(
        @{ Type = 'MailDeliveryResult' }, @{ Type = 'ConnectivityTestResult' }, @{ Type = 'CampaignRecipientResult' },
        @{ Type = 'MailCampaignInfo' }, @{ Type = 'MailCampaignRecipient' }, @{ Type = 'MailTransport' }
    ) {
        $views = Get-FormatData -TypeName "ResilientMail.$Type" -PowerShellVersion $PSVersionTable.PSVersion
        $kinds = $views.FormatViewDefinition.Control | ForEach-Object { $_.GetType().Name }
        $kinds | Should -Contain 'TableControl'
        $kinds | Should -Contain 'ListControl'
        $list = ($views.FormatViewDefinition | Where-Object { $_.Control -is [System.Management.Automation.ListControl] }).Control
        $shown = $list.Entries[0].Items.DisplayEntry.Value
        $all = ("ResilientMail.$Type" -as [type]).GetProperties().Name
        $all | Where-Object { $_ -notin $shown } | Should -BeNullOrEmpty
    }

    It 'shows a result as To, Status, Attempts, Duration and a short error' {
        $r = [ResilientMail.MailDeliveryResult]@{ To = 'a@example.com'; Status = 'Failed'; Attempts = 4; Error = 'x' * 200; Duration = [timespan]::FromSeconds(7.5) }
        $text = $r | Format-Table | Out-String -Width 200
        $text | Should -Match 'To\s+Status\s+Attempts\s+Duration\s+Error'
        $text | Should -Match 'a@example.com\s+Failed\s+4\s+7.50s\s+x{77}\.\.\.'
    }

    It 'completes campaign names, SES regions and transport variables' {
        $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
        try {
            $t = New-MailTransport -PickupDirectory (Join-Path $TestDrive 'outbox')
            $null = [pscustomobject]@{ Email = 'c@example.com' } | Start-MailCampaign -Name 'spring sale' -Transport $t -From a@example.com -Subject s -Body b -NoDelay
            $null = [pscustomobject]@{ Email = 'c@example.com' } | Start-MailCampaign -Name 'summer' -Transport $t -From a@example.com -Subject s -Body b -NoDelay
            function Complete([string]$line) { (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText }
            Complete 'Get-MailCampaign -Name s' | Should -Be @("'spring sale'", 'summer')
            Complete 'Remove-MailCampaign -Name sum' | Should -Be @('summer')
            Complete 'New-MailTransport -Ses -Region eu-we' | Should -Contain 'eu-west-1'
            Complete 'Get-MailCampaign -Recipients -Status Unc' | Should -Be @('Uncertain')
            $global:rmCompletionTransport = $t
            Complete 'Send-ResilientMail -Transport $rmCompletion' | Should -Be @('$rmCompletionTransport')
        }
        finally { Remove-Item Env:RESILIENTMAIL_DATA; Remove-Variable rmCompletionTransport -Scope Global -ErrorAction SilentlyContinue }
    }
}

Describe 'Help' {
    It '<Name> has a synopsis, a description and examples' -ForEach @(
        @{ Name = 'Send-ResilientMail' }, @{ Name = 'Test-InternetConnection' }, @{ Name = 'Wait-InternetConnection' },
        @{ Name = 'New-MailTransport' }, @{ Name = 'Start-MailCampaign' }, @{ Name = 'Get-MailCampaign' }, @{ Name = 'Remove-MailCampaign' }
    ) {
        $help = Get-Help $Name -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match '^\s*\S+\s+\[' # not the auto-generated syntax line
        $help.description.Text | Should -Not -BeNullOrEmpty
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
    }

    It 'describes every parameter of every exported cmdlet' {
        $common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
        $missing = foreach ($c in Get-Command -Module ResilientMail) {
            $help = Get-Help $c.Name -Full
            foreach ($p in $c.Parameters.Keys | Where-Object { $_ -notin $common }) {
                $ph = $help.parameters.parameter | Where-Object name -eq $p
                if (-not $ph -or -not ($ph.description.Text -join '')) { "$($c.Name) -$p" }
            }
        }
        $missing | Should -BeNullOrEmpty
    }

    It 'shows an Import-Csv pipeline example for Send-ResilientMail' {
        (Get-Help Send-ResilientMail -Examples | Out-String) | Should -Match 'Import-Csv'
    }

    It 'has an about_ResilientMail topic that covers <Topic>' -ForEach @(
        @{ Topic = 'Installation' }, @{ Topic = 'Providers and credentials' }, @{ Topic = 'OAuth2 for SMTP' }, @{ Topic = 'MICROSOFT 365' }, @{ Topic = 'GOOGLE WORKSPACE' }, @{ Topic = 'Defaults' },
        @{ Topic = 'Campaigns and the journal' }, @{ Topic = 'Logs' }, @{ Topic = 'Troubleshooting' }
    ) {
        (Get-Help about_ResilientMail | Out-String) | Should -Match ([regex]::Escape($Topic))
    }

    It 'has an about_ResilientMail topic with the defaults' {
        $about = Get-Help about_ResilientMail | Out-String
        $about | Should -Match 'Waiting for connection'
        $about | Should -Match 'Test-InternetConnection\s+defaults\s+to\s+\S+:53'
    }
}
