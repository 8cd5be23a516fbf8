<#
  One benchmark run in a fresh process. Prints one JSON line: seconds (the sending part only), count,
  peakMB (this process's peak working set), cpuUsPerMessage (its CPU time per message in the sending part, all threads).
  Called by Bench.ps1; not a test.
#>
param(
    [Parameter(Mandatory)][string]$Scenario,
    [string]$ModulePath,
    [int]$Port,
    [int]$Count = 100,
    [int]$Concurrency = 1,
    [string]$Csv,
    [string]$WorkDir = ([IO.Path]::GetTempPath()),
    [string]$RateLimit,
    [double]$CheckInterval = 10,
    # Steady state: run the same command over this many other rows first, untimed, in runs of -Count (JIT and tiering warm).
    [int]$Warmup = 0
)
$ErrorActionPreference = 'Stop'
$WarningPreference = 'SilentlyContinue'
$ProgressPreference = 'SilentlyContinue'
if ($ModulePath) { Import-Module $ModulePath }
$env:RESILIENTMAIL_DATA = Join-Path $WorkDir "data-$([guid]::NewGuid().ToString('n'))"
$rows = if (-not $Csv) { 1..$Count | ForEach-Object { [pscustomobject]@{ Email = "r$_@example.com"; FirstName = "N$_" } } }
$body = "A benchmark message body.`r`nSecond line."
if ($Warmup -gt 0) {
    # In runs of $Count, as the timed run will be: PowerShell keeps compiling for the first few invocations of a
    # command (about 1,000 ms of JIT in the second one, 30-80 ms from the fourth on), so one long warm-up run would
    # leave that to the timed one.
    $warm = 1..$Warmup | ForEach-Object { [pscustomobject]@{ Email = "w$_@example.com"; FirstName = "W$_" } }
    $chunk = [Math]::Max(1, [Math]::Min($Count, $Warmup))
    for ($i = 0; $i -lt $Warmup; $i += $chunk) {
        $part = $warm[$i..([Math]::Min($Warmup, $i + $chunk) - 1)]
        switch ($Scenario) {
            'SendResilientMail' { $part | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $Port -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay | Out-Null }
            'Campaign' {
                $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $Port
                $part | Start-MailCampaign -Name "bench-warmup-$i" -Transport $t -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay -Concurrency $Concurrency | Out-Null
            }
            default { throw "No warm-up for $Scenario" }
        }
    }
}
$me = [System.Diagnostics.Process]::GetCurrentProcess()
$cpu0 = $me.TotalProcessorTime
$clock = [System.Diagnostics.Stopwatch]::StartNew()
switch ($Scenario) {
    'SendMailMessage' {
        foreach ($r in $rows) { Send-MailMessage -SmtpServer 127.0.0.1 -Port $Port -From bench@example.com -To $r.Email -Subject "Bench $($r.FirstName)" -Body $body }
    }
    'SendResilientMail' {
        $rows | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $Port -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay | Out-Null
    }
    'Campaign' {
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $Port
        $rows | Start-MailCampaign -Name bench -Transport $t -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay -Concurrency $Concurrency | Out-Null
    }
    'CampaignRateLimited' {
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $Port
        $rows | Start-MailCampaign -Name bench -Transport $t -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay -RateLimit $RateLimit | Out-Null
    }
    'PickupCsv' {
        $t = New-MailTransport -PickupDirectory (Join-Path $WorkDir "pickup-$([guid]::NewGuid().ToString('n'))")
        # Streamed to Out-Null: `$null = ...` would first collect every result object.
        Start-MailCampaign -Name bench -Path $Csv -Transport $t -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay | Out-Null
    }
    'Recovery' {
        # The server is down when this starts; the harness brings it up later. One message, sent when it is back.
        $r = [pscustomobject]@{ Email = 'recover@example.com' } |
            Send-ResilientMail -SmtpServer 127.0.0.1 -Port $Port -From bench@example.com -Subject 'Recovery' -Body $body -NoDelay `
                -ConnectionCheckInterval $CheckInterval -ConnectionWaitTimeout 120 -ProbeTimeout 1
        $extra = @{ acceptedAtMs = $r.Timestamp.ToUnixTimeMilliseconds(); status = "$($r.Status)" }
    }
    default { throw "Unknown scenario $Scenario" }
}
$seconds = $clock.Elapsed.TotalSeconds
$me.Refresh()
$cpuTotal = ($me.TotalProcessorTime - $cpu0).TotalMilliseconds * 1000
$peak = $me.PeakWorkingSet64 / 1MB
if ($Scenario -ne 'Recovery') { $extra = @{} }
if ($Scenario -eq 'CampaignRateLimited') {
    # Start times of every send, from the journal (ms resolution): the achieved rate and the busiest 1 s window.
    $times = Get-Content (Get-ChildItem -Recurse $env:RESILIENTMAIL_DATA -Filter *.jsonl).FullName |
        Where-Object { $_ -match '"state":"sending"' } | ForEach-Object {
            # Read the timestamp as text: ConvertFrom-Json would turn it into a DateTime and drop the milliseconds.
            if ($_ -match '"at":"([^"]+)"') { [DateTimeOffset]::Parse($Matches[1], [Globalization.CultureInfo]::InvariantCulture).ToUnixTimeMilliseconds() }
        } | Sort-Object
    $max = 0; $j = 0
    for ($i = 0; $i -lt $times.Count; $i++) { while ($times[$i] - $times[$j] -ge 1000) { $j++ }; $max = [Math]::Max($max, $i - $j + 1) }
    # Whole windows only: the messages before the last window's share, over the time from the first send to
    # the start of that share (a burst-then-wait limiter is judged on its window starts, not its last burst).
    $k = [int]($RateLimit -replace '/.*$', '')
    $extra = @{ maxInAnySecond = $max; rate = ($times.Count - $k) / (($times[$times.Count - $k] - $times[0]) / 1000.0) }
}
if (-not $Csv) { $n = $Count } else { $n = (Get-Content $Csv | Measure-Object -Line).Lines - 1 }
Remove-Item -Recurse -Force $env:RESILIENTMAIL_DATA -ErrorAction SilentlyContinue
([ordered]@{ seconds = $seconds; count = $n; peakMB = [Math]::Round($peak, 1); cpuUsPerMessage = [Math]::Round($cpuTotal / [Math]::Max(1, $n), 1) } + $extra) | ConvertTo-Json -Compress
