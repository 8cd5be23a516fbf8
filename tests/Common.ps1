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

# How to start another pwsh like this one (the pinned tool runs as `dotnet pwsh.dll`).
function Get-PwshArgs {
    $exe = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { @{ File = $exe; Pre = @((Join-Path $PSHOME 'pwsh.dll')) } } else { @{ File = $exe; Pre = @() } }
}

# Runs a script in a fresh pwsh and returns its output lines (stderr included); throws with the output when it fails.
function Invoke-FreshPwsh([string]$Script, [hashtable]$Environment = @{}) {
    $pwsh = Get-PwshArgs
    $file = Join-Path ([IO.Path]::GetTempPath()) "rm-fresh-$([guid]::NewGuid().ToString('n')).ps1"
    Set-Content -Path $file -Value $Script
    $saved = @{}
    foreach ($k in $Environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $Environment[$k]) }
    try { $out = & $pwsh.File @($pwsh.Pre) -NoProfile -NonInteractive -File $file 2>&1 | ForEach-Object { "$_" } }
    finally {
        foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
        Remove-Item $file -ErrorAction SilentlyContinue
    }
    if ($LASTEXITCODE -ne 0) { throw "The fresh pwsh failed ($LASTEXITCODE):`n$($out -join "`n")" }
    $out
}
