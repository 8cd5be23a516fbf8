# Dot-sourced by every *.Tests.ps1: imports the BUILT module (never the source) and the smtp4dev helpers.
$script:RepoRoot = Split-Path -Parent $PSScriptRoot
$script:ModulePath = if ($env:RESILIENTMAIL_MODULE) { $env:RESILIENTMAIL_MODULE } else { Join-Path $RepoRoot 'out/ResilientMail/ResilientMail.psd1' }
if (-not (Test-Path $ModulePath)) { throw "Built module not found at $ModulePath; run build.ps1 -Task Build." }
Import-Module $ModulePath -Force
Import-Module (Join-Path $RepoRoot 'build/Smtp4dev.psm1') -Force

function New-TestCredential([string]$User, [string]$Password) {
    [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
}

function Wait-Until([scriptblock]$Condition, [int]$TimeoutSeconds = 10) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not (& $Condition)) {
        if ([DateTime]::UtcNow -gt $deadline) { return $false }
        Start-Sleep -Milliseconds 100
    }
    $true
}
