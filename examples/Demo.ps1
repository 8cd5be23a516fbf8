<#
.SYNOPSIS
    The ResilientMail demo: sends examples/recipients.csv to a local smtp4dev through a 15-second outage.
.DESCRIPTION
    Run it with `dotnet pwsh ./build.ps1 -Task Demo`. Everything stays on 127.0.0.1: smtp4dev is
    started on free loopback ports, stopped in the middle of the run and started again, and the
    module waits for it and carries on by itself. At the end the demo checks that the server holds
    every message exactly once.
#>
param(
    [Parameter(Mandatory)][string]$ModulePath,
    [int]$OutageSeconds = 15,
    [int]$StopBeforeRow = 13
)
$ErrorActionPreference = 'Stop'
$repo = Split-Path -Parent $PSScriptRoot
Import-Module $ModulePath -Force
Import-Module (Join-Path $repo 'build/Smtp4dev.psm1') -Force

$data = Join-Path ([IO.Path]::GetTempPath()) "resilientmail-demo-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
Write-Host "Starting smtp4dev on loopback..." -ForegroundColor Cyan
$server = Start-Smtp4dev -Persistent -DataDirectory $data
Write-Host "smtp4dev: SMTP on 127.0.0.1:$($server.SmtpPort), web page at $($server.ApiUrl)" -ForegroundColor Cyan
$rows = Import-Csv (Join-Path $PSScriptRoot 'recipients.csv')
$body = Get-Content (Join-Path $PSScriptRoot 'body.txt') -Raw
Write-Host "Sending $($rows.Count) messages with short gaps; the server will be stopped for $OutageSeconds s as row $StopBeforeRow is read (Send-ResilientMail reads a few rows ahead of the message on the wire).`n" -ForegroundColor Cyan

$restart = $null
$row = 0
$clock = [System.Diagnostics.Stopwatch]::StartNew()
try {
    $results = $rows | ForEach-Object {
        $row++
        if ($row -eq $StopBeforeRow) {
            Write-Host ">>> Stopping the SMTP server for $OutageSeconds seconds (as if the network dropped)." -ForegroundColor Magenta
            Stop-Smtp4dev $server
            $restart = Start-ThreadJob -ArgumentList (Join-Path $repo 'build/Smtp4dev.psm1'), $server.SmtpPort, $server.WebPort, $data, $OutageSeconds {
                param($helpers, $smtpPort, $webPort, $dir, $seconds)
                Import-Module $helpers
                Start-Sleep -Seconds $seconds
                Start-Smtp4dev -SmtpPort $smtpPort -WebPort $webPort -Persistent -DataDirectory $dir
            }
        }
        $_
    } | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $server.SmtpPort -From 'IT <it@example.com>' `
            -Subject 'Hello {{FirstName}}' -Body $body -MinGap 0.2 -MaxGap 0.6 -BatchSize 10 -BatchPause 3 `
            -ConnectionCheckInterval 3 -ConnectionWaitTimeout 120 |
        ForEach-Object {
            $color = if ($_.Status -eq 'Sent') { 'Green' } else { 'Red' }
            Write-Host ("{0,6:0.0}s  {1,-36} {2,-9} attempts {3}" -f $clock.Elapsed.TotalSeconds, $_.To, $_.Status, $_.Attempts) -ForegroundColor $color
            $_
        }
    if ($restart) { $server = $restart | Receive-Job -Wait -AutoRemoveJob }

    $results | Format-Table -AutoSize | Out-Host
    $held = @(Get-Smtp4devMessage $server)
    $unique = @($held.to | Sort-Object -Unique)
    $sent = @($results | Where-Object Status -eq 'Sent').Count
    Write-Host ("Results: {0} sent, {1} not sent, in {2:0} s." -f $sent, (@($results).Count - $sent), $clock.Elapsed.TotalSeconds) -ForegroundColor Cyan
    Write-Host "The server holds $($held.Count) messages for $($unique.Count) distinct recipients (expected $($rows.Count), each once)." -ForegroundColor Cyan
    Write-Host "smtp4dev web page: $($server.ApiUrl)" -ForegroundColor Cyan
    $ok = $held.Count -eq $rows.Count -and $unique.Count -eq $rows.Count -and $sent -eq $rows.Count
    if (-not $ok) { Write-Host 'Demo FAILED: the server does not hold every message exactly once.' -ForegroundColor Red; exit 1 }
    Write-Host 'Every message arrived exactly once, through the outage.' -ForegroundColor Green

    # ---- Act 2: a campaign that pauses past its wait limit, and resumes from its journal ----
    $env:RESILIENTMAIL_DATA = Join-Path $data 'journals'
    Clear-Smtp4dev $server
    $campaign = 'demo-newsletter'
    $transport = New-MailTransport -SmtpServer 127.0.0.1 -Port $server.SmtpPort
    Write-Host "`nAct 2: Start-MailCampaign '$campaign' from examples/recipients.csv. The server goes away for longer than the campaign's 6-second wait limit." -ForegroundColor Cyan
    $watcher = Start-ThreadJob -ArgumentList (Join-Path $repo 'build/Smtp4dev.psm1'), $server {
        param($helpers, $server)
        Import-Module $helpers
        while (@(Get-Smtp4devMessage $server).Count -lt 10) { Start-Sleep -Milliseconds 100 }
        Stop-Smtp4dev $server
    }
    try {
        Start-MailCampaign -Name $campaign -Path (Join-Path $PSScriptRoot 'recipients.csv') -Transport $transport -From 'News <news@example.com>' `
            -Subject 'News for {{FirstName}}' -BodyPath (Join-Path $PSScriptRoot 'body.txt') -UnsubscribeUrl 'https://example.com/unsub?e={{Email}}' `
            -MinGap 0.2 -MaxGap 0.5 -BatchSize 0 -ConnectionCheckInterval 2 -ConnectionWaitTimeout 6 -WarningAction SilentlyContinue -ErrorAction SilentlyContinue | Out-Null
    }
    catch {
        Write-Host ">>> $($_.Exception.Message)" -ForegroundColor Magenta
    }
    $watcher | Receive-Job -Wait -AutoRemoveJob
    Get-MailCampaign -Name $campaign | Format-Table Name, State, Sent, Uncertain, Remaining | Out-Host
    Write-Host 'Starting the server again and resuming the campaign by its name alone...' -ForegroundColor Cyan
    $server = Start-Smtp4dev -SmtpPort $server.SmtpPort -WebPort $server.WebPort -Persistent -DataDirectory $data
    $summary = Start-MailCampaign -Name $campaign -Resume -MinGap 0.1 -MaxGap 0.3 -WarningAction SilentlyContinue | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
    $summary | Format-List Name, State, Sent, Failed, Uncertain, Remaining, SentThisRun, JournalPath | Out-Host
    $held = @(Get-Smtp4devMessage $server)
    $uncertain = @(Get-MailCampaign -Name $campaign -Recipients -Status Uncertain).Key
    $unique = @($held.to | Sort-Object -Unique)
    Write-Host "The server holds $($held.Count) campaign messages for $($unique.Count) distinct recipients (expected $($rows.Count), each once$(if ($uncertain) { "; $($uncertain.Count) reported Uncertain" }))." -ForegroundColor Cyan
    $ok = $held.Count -eq $unique.Count -and ($unique.Count + $uncertain.Count) -ge $rows.Count -and $summary.State -eq 'Completed'
    if (-not $ok) { Write-Host 'Demo FAILED: the campaign did not deliver every recipient exactly once.' -ForegroundColor Red; exit 1 }
    Write-Host 'The campaign lost nobody and sent nobody twice.' -ForegroundColor Green
    Write-Host "smtp4dev web page: $($server.ApiUrl)" -ForegroundColor Cyan
    if (-not [Console]::IsInputRedirected -and -not $env:CI) {
        Write-Host "Open $($server.ApiUrl) to read the messages; press Enter to stop smtp4dev." -ForegroundColor Yellow
        $null = [Console]::ReadLine()
    }
}
finally {
    if ($restart -and -not ($server.Process)) { $server = $restart | Receive-Job -Wait -AutoRemoveJob }
    if ($server) { Stop-Smtp4dev $server }
    Remove-Item -Recurse -Force $data -ErrorAction SilentlyContinue
}
