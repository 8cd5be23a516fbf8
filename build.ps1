#!/usr/bin/env pwsh
<#
.SYNOPSIS
    The one entry point: Build | Test | Demo | Docs | Bench | Package | Clean.
.DESCRIPTION
    Run through the pinned local PowerShell:  dotnet tool restore && dotnet pwsh ./build.ps1 -Task Test
    Build writes the loadable module to out/ResilientMail. Test runs the xunit tests and the Pester
    tests (against the built module and servers the tests start on loopback) and ends with one line
    "N passed, N failed". Demo sends examples/recipients.csv to a local smtp4dev through an outage.
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Docs', 'Bench', 'Package', 'Clean')]
    [string]$Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string]$Configuration = 'Release',
    # Pester tests to run (a path or wildcard under tests/); all by default.
    [string]$PesterPath = 'tests',
    # Bench: a short run (about a minute or two) instead of the full one.
    [switch]$Quick
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$Out = Join-Path $Root 'out'
$ModuleOut = Join-Path $Out 'ResilientMail'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

function Invoke-Dotnet {
    & dotnet @args
    if ($LASTEXITCODE -ne 0) { throw "dotnet $($args -join ' ') failed with exit code $LASTEXITCODE" }
}

function Get-ModuleVersion {
    # The one version number lives in Directory.Build.props; the manifest and the assemblies take it from there.
    $node = Select-Xml -Path (Join-Path $Root 'Directory.Build.props') -XPath '//Version' | Select-Object -First 1
    $node.Node.InnerText.Trim()
}

function Get-PwshCommand {
    # The PowerShell running this script, whether it is a native pwsh or `dotnet pwsh` (the pinned tool).
    $exe = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { return @($exe, (Join-Path $PSHOME 'pwsh.dll')) }
    @($exe)
}

function Invoke-ChildPwsh([string]$Command) {
    $pwsh = Get-PwshCommand
    $rest = @($pwsh | Select-Object -Skip 1)
    & $pwsh[0] @rest -NoProfile -NonInteractive -Command $Command | Out-Host
    $LASTEXITCODE
}

function Get-NuGetPackagesFolder {
    if ($env:NUGET_PACKAGES) { return $env:NUGET_PACKAGES }
    $line = & dotnet nuget locals global-packages --list
    ($line -replace '^global-packages:\s*', '').Trim()
}

function Invoke-Build {
    Write-Host "== Build ($Configuration)" -ForegroundColor Cyan
    Invoke-Dotnet build (Join-Path $Root 'src/ResilientMail/ResilientMail.csproj') -c $Configuration --nologo -v q
    $bin = Join-Path $Root "src/ResilientMail/bin/$Configuration/netstandard2.0"
    if (Test-Path $ModuleOut) { Remove-Item -Recurse -Force $ModuleOut }
    $null = New-Item -ItemType Directory -Force -Path $ModuleOut
    # The cmdlet assembly at the root; ResilientMail.Core and every dependency in Dependencies/, which default
    # assembly probing never looks in: ModuleLoader loads them into their own load context (see DESIGN.md).
    # PowerShell provides System.Management.Automation itself; never ship the reference assembly.
    $deps = Join-Path $ModuleOut 'Dependencies'
    $null = New-Item -ItemType Directory -Force -Path $deps
    Copy-Item (Join-Path $bin 'ResilientMail.dll'), (Join-Path $bin 'ResilientMail.pdb') -Destination $ModuleOut
    Get-ChildItem $bin -Filter *.dll | Where-Object Name -notin 'System.Management.Automation.dll', 'ResilientMail.dll' | Copy-Item -Destination $deps
    Copy-Item (Join-Path $bin 'ResilientMail.Core.pdb') -Destination $deps
    Copy-Item (Join-Path $Root 'src/ResilientMail/ResilientMail.Format.ps1xml') $ModuleOut
    $version = Get-ModuleVersion
    $manifest = Get-Content (Join-Path $Root 'ResilientMail.psd1') -Raw
    $manifest = $manifest -replace "ModuleVersion\s*=\s*'[^']*'", "ModuleVersion = '$version'"
    Set-Content -Path (Join-Path $ModuleOut 'ResilientMail.psd1') -Value $manifest -Encoding utf8NoBOM -NoNewline
    Invoke-Docs
    Write-Host "Module $version written to $ModuleOut" -ForegroundColor Green
}

function Invoke-Docs {
    Write-Host '== Docs -> MAML' -ForegroundColor Cyan
    if (-not (Test-Path (Join-Path $ModuleOut 'ResilientMail.dll'))) { throw 'Build the module first (-Task Build).' }
    # A child process, so the build's own session never holds the module.
    $code = Invoke-ChildPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModuleOut/ResilientMail.psd1'
Import-Module '$Root/build/HelpBuilder.psm1'
Write-MamlHelp -Command (Get-Command -Module ResilientMail) -DocsPath '$Root/docs' -OutFile '$ModuleOut/en-US/ResilientMail.dll-Help.xml'
Get-ChildItem '$Root/docs' -Filter 'about_*.md' | ForEach-Object { Write-AboutHelp -Source `$_.FullName -OutDir '$ModuleOut/en-US' }
"@
    if ($code -ne 0) { throw 'Help generation failed.' }
}

function Invoke-Test {
    Invoke-Package
    $results = Join-Path $Out 'test-results'
    if (Test-Path $results) { Remove-Item -Recurse -Force $results }
    $null = New-Item -ItemType Directory -Force -Path $results

    # The emulators the tests start (the blob-store tests of xunit use Azurite too).
    if (-not (Get-Command npm -ErrorAction SilentlyContinue)) { throw 'npm (Node.js) is needed for the emulators the tests start (SES, Azurite).' }
    foreach ($emulator in 'ses', 'azurite') {
        & npm ci --prefix (Join-Path $Root "tests/$emulator") --ignore-scripts --no-audit --no-fund --loglevel=error
        if ($LASTEXITCODE -ne 0) { throw "npm ci in tests/$emulator failed ($LASTEXITCODE)." }
    }
    # Postfix itself, for the tests of real server policy: Debian's package unpacked into out/postfix, never installed.
    Import-Module (Join-Path $Root 'build/Postfix.psm1') -Force
    Install-Postfix
    Write-Host '== xunit' -ForegroundColor Cyan
    & dotnet test (Join-Path $Root 'tests/ResilientMail.Core.Tests/ResilientMail.Core.Tests.csproj') -c $Configuration --nologo `
        --logger 'trx;LogFileName=xunit.trx' --logger 'console;verbosity=minimal' --results-directory $results
    $xunitExit = $LASTEXITCODE
    $xPassed = 0; $xFailed = 0
    $trx = Join-Path $results 'xunit.trx'
    if (Test-Path $trx) {
        $counters = (Select-Xml -Path $trx -XPath '//*[local-name()="Counters"]').Node
        $xPassed = [int]$counters.passed
        $xFailed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout + [int]$counters.aborted
    }
    if ($xunitExit -ne 0 -and $xFailed -eq 0) { $xFailed = 1; Write-Host "dotnet test exited with $xunitExit" -ForegroundColor Red }

    Write-Host '== Pester' -ForegroundColor Cyan
    Invoke-Dotnet restore (Join-Path $Root 'tools/tools.csproj') --nologo -v q
    # The HTTP fakes (SendGrid, the SES proxy) and the SES emulator the provider tests start.
    Invoke-Dotnet build (Join-Path $Root 'tests/ResilientMail.TestServers/ResilientMail.TestServers.csproj') -c $Configuration --nologo -v q -o (Join-Path $Out 'testservers')
    $pester = Join-Path (Get-NuGetPackagesFolder) 'pester/6.2.0/tools/Pester.psd1'
    if (-not (Test-Path $pester)) { throw "Pester 6.2.0 was not restored to $pester" }
    $summary = Join-Path $results 'pester.json'
    $code = Invoke-ChildPwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$pester' -RequiredVersion 6.2.0
`$config = New-PesterConfiguration
`$config.Run.Path = '$(Join-Path $Root $PesterPath)'
`$config.Run.PassThru = `$true
`$config.Output.Verbosity = 'Detailed'
`$config.TestResult.Enabled = `$true
`$config.TestResult.OutputPath = '$results/pester.xml'
`$env:RESILIENTMAIL_MODULE = '$ModuleOut/ResilientMail.psd1'
# Tests name their AWS credentials and region; the SDK must never look for an instance role off this machine.
`$env:AWS_EC2_METADATA_DISABLED = 'true'
`$r = Invoke-Pester -Configuration `$config
@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount } | ConvertTo-Json | Set-Content '$summary'
"@
    $pPassed = 0; $pFailed = 0
    if (Test-Path $summary) { $s = Get-Content $summary -Raw | ConvertFrom-Json; $pPassed = $s.Passed; $pFailed = $s.Failed }
    if ($code -ne 0 -and $pFailed -eq 0) { $pFailed = 1; Write-Host "Pester run exited with $code" -ForegroundColor Red }

    Write-Host "xunit: $xPassed passed, $xFailed failed; Pester: $pPassed passed, $pFailed failed"
    $passed = $xPassed + $pPassed; $failed = $xFailed + $pFailed
    Write-Host "$passed passed, $failed failed"
    if ($failed -gt 0 -or $passed -eq 0) { exit 1 }
}

function Invoke-Demo {
    Invoke-Build
    Write-Host '== Demo' -ForegroundColor Cyan
    $code = Invoke-ChildPwsh "& '$Root/examples/Demo.ps1' -ModulePath '$ModuleOut/ResilientMail.psd1'"
    if ($code -ne 0) { exit $code }
}

function Invoke-Bench {
    Invoke-Build
    Invoke-Dotnet build (Join-Path $Root 'bench/BenchTool/BenchTool.csproj') -c Release --nologo -v q
    # Azurite, for the journal-store figures.
    & npm ci --prefix (Join-Path $Root 'tests/azurite') --ignore-scripts --no-audit --no-fund --loglevel=error
    if ($LASTEXITCODE -ne 0) { throw "npm ci in tests/azurite failed ($LASTEXITCODE)." }
    # Postfix and the SES emulator, for the figures under server policy and provider quotas.
    & npm ci --prefix (Join-Path $Root 'tests/ses') --ignore-scripts --no-audit --no-fund --loglevel=error
    if ($LASTEXITCODE -ne 0) { throw "npm ci in tests/ses failed ($LASTEXITCODE)." }
    Import-Module (Join-Path $Root 'build/Postfix.psm1') -Force
    Install-Postfix
    Invoke-Dotnet build (Join-Path $Root 'tests/ResilientMail.TestServers/ResilientMail.TestServers.csproj') -c $Configuration --nologo -v q -o (Join-Path $Out 'testservers')
    $code = Invoke-ChildPwsh "& '$Root/bench/Bench.ps1' -ModulePath '$ModuleOut/ResilientMail.psd1' $(if ($Quick) { '-Quick' })"
    if ($code -ne 0) { exit $code }
}

function Invoke-Package {
    Invoke-Build
    $packages = Join-Path $Out 'packages'
    $null = New-Item -ItemType Directory -Force -Path $packages
    Get-ChildItem $packages -Filter 'ResilientMail.*.nupkg' | Remove-Item
    Write-Host '== Package' -ForegroundColor Cyan
    # PSResourceGet (bundled with PowerShell 7.4+) builds the .nupkg a gallery would serve; nothing is published.
    $code = Invoke-ChildPwsh "`$ErrorActionPreference = 'Stop'; Import-Module Microsoft.PowerShell.PSResourceGet; Compress-PSResource -Path '$ModuleOut' -DestinationPath '$packages'"
    $nupkg = Join-Path $packages "ResilientMail.$(Get-ModuleVersion).nupkg"
    if ($code -ne 0 -or -not (Test-Path $nupkg)) { throw "Packaging failed: $nupkg was not written." }
    Write-Host "Package written to $nupkg" -ForegroundColor Green
}

function Invoke-Clean {
    foreach ($p in @($Out) + (Get-ChildItem $Root -Recurse -Directory -Include bin, obj -ErrorAction SilentlyContinue | Where-Object FullName -notmatch 'node_modules').FullName) {
        if ($p -and (Test-Path $p)) { Remove-Item -Recurse -Force $p }
    }
    Write-Host 'Cleaned.'
}

switch ($Task) {
    'Build' { Invoke-Build }
    'Docs' { Invoke-Docs }
    'Test' { Invoke-Test }
    'Demo' { Invoke-Demo }
    'Bench' { Invoke-Bench }
    'Package' { Invoke-Package }
    'Clean' { Invoke-Clean }
}
