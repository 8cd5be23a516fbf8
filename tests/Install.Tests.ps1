# The module as a user gets it: the package from build.ps1 -Task Package installed with PSResourceGet, and
# living beside other modules that bring other MailKit/MimeKit versions (its own load context on PowerShell 7).
BeforeAll {
    . $PSScriptRoot/Common.ps1
    $script:server = Start-Smtp4dev
    $script:ModuleDir = Split-Path -Parent $ModulePath
    [xml]$props = Get-Content (Join-Path $RepoRoot 'Directory.Build.props')
    $script:Version = $props.Project.PropertyGroup.Version | Where-Object { $_ } | Select-Object -First 1
    $script:Nupkg = Join-Path $RepoRoot "out/packages/ResilientMail.$Version.nupkg"
}

AfterAll { if ($server) { Stop-Smtp4dev $server } }

Describe 'The package' {
    It 'carries the one version number in the manifest, the assemblies and the package' {
        Test-Path $Nupkg | Should -BeTrue -Because 'build.ps1 -Task Test builds the package first (-Task Package)'
        (Import-PowerShellDataFile $ModulePath).ModuleVersion | Should -Be $Version
        [Reflection.AssemblyName]::GetAssemblyName((Join-Path $ModuleDir 'ResilientMail.dll')).Version | Should -Be ([version]"$Version.0")
        [Reflection.AssemblyName]::GetAssemblyName((Join-Path $ModuleDir 'Dependencies/ResilientMail.Core.dll')).Version | Should -Be ([version]"$Version.0")
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($Nupkg)
        try {
            $nuspec = $zip.Entries | Where-Object FullName -eq 'ResilientMail.nuspec'
            $reader = [IO.StreamReader]::new($nuspec.Open()); [xml]$spec = $reader.ReadToEnd(); $reader.Dispose()
            $spec.package.metadata.version | Should -Be $Version
            $zip.Entries.FullName | Should -Contain 'Dependencies/MailKit.dll'
            $zip.Entries.FullName | Should -Contain 'en-US/ResilientMail.dll-Help.xml'
        } finally { $zip.Dispose() }
    }

    It 'installs from a local PSResourceGet repository and sends from a fresh pwsh' {
        # A private HOME: the repository registration and the install never touch the user's own settings.
        $home2 = Join-Path $TestDrive 'home'
        $repo = Join-Path $TestDrive 'repo'
        $null = New-Item -ItemType Directory -Force $home2, $repo
        Copy-Item $Nupkg $repo
        $out = Invoke-FreshPwsh -Environment @{ HOME = $home2; XDG_DATA_HOME = $null; XDG_CONFIG_HOME = $null; XDG_CACHE_HOME = $null; PSModulePath = $null } @"
`$ErrorActionPreference = 'Stop'
Import-Module Microsoft.PowerShell.PSResourceGet
Register-PSResourceRepository -Name RmLocal -Uri '$repo' -Trusted
Install-PSResource -Name ResilientMail -Repository RmLocal -Scope CurrentUser -TrustRepository -Quiet
`$installed = Get-InstalledPSResource -Name ResilientMail
"installed `$(`$installed.Version) at `$(`$installed.InstalledLocation)"
"@
        ($out -join "`n") | Should -Match "installed $([regex]::Escape($Version)) at"
        $sent = Invoke-FreshPwsh -Environment @{ HOME = $home2; XDG_DATA_HOME = $null; PSModulePath = $null } @"
`$ErrorActionPreference = 'Stop'
Import-Module ResilientMail
`$m = Get-Module ResilientMail
"module `$(`$m.Version) from `$(`$m.ModuleBase)"
(Send-ResilientMail -SmtpServer 127.0.0.1 -Port $($server.SmtpPort) -From installer@example.com -To installed@example.com -Subject 'From the package' -Body 'b' -NoDelay).Status
"@
        ($sent -join "`n") | Should -Match "module $([regex]::Escape($Version)) from $([regex]::Escape($home2))"
        $sent[-1] | Should -Be 'Sent'
        (Get-Smtp4devMessage $server | Where-Object subject -eq 'From the package').Count | Should -Be 1
    }
}

Describe 'Beside other modules' {
    BeforeAll {
        # Another module's MailKit, restored by NuGet into this test's own folder.
        $proj = Join-Path $TestDrive 'other'
        $null = New-Item -ItemType Directory -Force $proj
        Set-Content (Join-Path $proj 'other.csproj') @'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="MailKit" Version="[4.2.0]" /></ItemGroup>
</Project>
'@
        & dotnet restore (Join-Path $proj 'other.csproj') --packages (Join-Path $proj 'packages') -v q | Out-Null
        $script:OtherMailKit = Join-Path $proj 'packages/mailkit/4.2.0/lib/net6.0/MailKit.dll'
        $script:LoadOther = "Add-Type -Path '$OtherMailKit'; `$null = [MailKit.Net.Smtp.SmtpClient].Assembly"
        $script:Send = "(Send-ResilientMail -SmtpServer 127.0.0.1 -Port $($server.SmtpPort) -From alc@example.com -To alc@example.com -Subject 'alc {0}' -Body 'b' -NoDelay).Status"
        $script:Versions = "[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'MailKit' } | ForEach-Object { 'MailKit v' + `$_.GetName().Version.ToString(2) + ' default=' + ([Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_) -eq [Runtime.Loader.AssemblyLoadContext]::Default) }"
    }

    It 'the cmdlet assembly references no third-party assembly (so the default context never loads one for it)' {
        $refs = [Reflection.Assembly]::LoadFile((Join-Path $ModuleDir 'ResilientMail.dll')).GetReferencedAssemblies().Name
        $refs | Should -Contain 'ResilientMail.Core'
        $refs | Where-Object { $_ -notmatch '^(netstandard|System\..*|System|ResilientMail\.Core)$' } | Should -BeNullOrEmpty
        Test-Path (Join-Path $ModuleDir 'MailKit.dll') | Should -BeFalse
    }

    It 'sends when another MailKit version was loaded first' {
        Test-Path $OtherMailKit | Should -BeTrue
        $out = Invoke-FreshPwsh @"
`$ErrorActionPreference = 'Stop'
$LoadOther
Import-Module '$ModulePath'
$($Send -f 'other first')
$Versions
"@
        $out | Should -Contain 'Sent'
        $out | Should -Contain 'MailKit v4.2 default=True'
        $out | Should -Contain 'MailKit v4.18 default=False'
    }

    It 'sends when the other MailKit is loaded after it, and after Remove-Module and Import-Module -Force' {
        $out = Invoke-FreshPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
$($Send -f 'ours first')
$LoadOther
$($Send -f 'then other')
Remove-Module ResilientMail
Import-Module '$ModulePath' -Force
$($Send -f 're-imported')
$Versions
"@
        @($out | Where-Object { $_ -eq 'Sent' }).Count | Should -Be 3
        $out | Should -Contain 'MailKit v4.2 default=True'
        $subjects = (Get-Smtp4devMessage $server).subject
        foreach ($s in 'alc ours first', 'alc then other', 'alc re-imported') { $subjects | Should -Contain $s }
    }
}
