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

    It 'has SupportsShouldProcess on Send-ResilientMail' {
        (Get-Command Send-ResilientMail).Parameters.Keys | Should -Contain 'WhatIf'
    }

    It 'exposes no third-party or Core type in a public cmdlet-assembly signature' {
        $asm = [ResilientMail.Commands.SendResilientMailCommand].Assembly
        $leaks = foreach ($t in $asm.GetExportedTypes()) {
            foreach ($p in $t.GetProperties()) { if ($p.PropertyType.Assembly.GetName().Name -match '^(MailKit|MimeKit|Polly|ResilientMail\.Core)') { "$($t.Name).$($p.Name)" } }
        }
        $leaks | Should -BeNullOrEmpty
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

    It 'has an about_ResilientMail topic with the defaults' {
        $about = Get-Help about_ResilientMail | Out-String
        $about | Should -Match 'Waiting for connection'
        $about | Should -Match 'Test-InternetConnection\s+defaults\s+to\s+\S+:53'
    }
}
