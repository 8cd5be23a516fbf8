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
    # The journal in Azure Blob Storage (Azurite's container address and its connection string) instead of the local file.
    [string]$JournalStore,
    [string]$JournalStoreSecret,
    # Steady state: the same run first, untimed, over at least this many messages, until the JIT is quiet (see below).
    [int]$Warmup = 0
)
$ErrorActionPreference = 'Stop'
$WarningPreference = 'SilentlyContinue'
$ProgressPreference = 'SilentlyContinue'
if ($ModulePath) { Import-Module $ModulePath }
$env:RESILIENTMAIL_DATA = Join-Path $WorkDir "data-$([guid]::NewGuid().ToString('n'))"
$rows = if (-not $Csv) { 1..$Count | ForEach-Object { [pscustomobject]@{ Email = "r$_@example.com"; FirstName = "N$_" } } }
$body = "A benchmark message body.`r`nSecond line."
$extra = @{}
$store = @{}
if ($JournalStore) { $store = @{ JournalStore = $JournalStore; JournalStoreSecret = (ConvertTo-SecureString $JournalStoreSecret -AsPlainText -Force) } }
$run = switch ($Scenario) {
    'SendMailMessage' {
        { foreach ($r in $rows) { Send-MailMessage -SmtpServer 127.0.0.1 -Port $Port -From bench@example.com -To $r.Email -Subject "Bench $($r.FirstName)" -Body $body } }
    }
    'SendResilientMail' {
        { $rows | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $Port -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay | Out-Null }
    }
    'Campaign' {
        {
            $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $Port
            $rows | Start-MailCampaign -Name "bench-$runs-$([guid]::NewGuid().ToString('n').Substring(0, 6))" -Transport $t -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay -Concurrency $Concurrency @store | Out-Null
        }
    }
    'CampaignRateLimited' {
        {
            $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $Port
            $rows | Start-MailCampaign -Name bench -Transport $t -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay -RateLimit $RateLimit | Out-Null
        }
    }
    'PickupCsv' {
        {
            $t = New-MailTransport -PickupDirectory (Join-Path $WorkDir "pickup-$([guid]::NewGuid().ToString('n'))")
            # Streamed to Out-Null: `$null = ...` would first collect every result object.
            Start-MailCampaign -Name "bench-$([guid]::NewGuid().ToString('n').Substring(0, 6))" -Path $Csv -Transport $t -From bench@example.com -Subject 'Bench {{FirstName}}' -Body $body -NoDelay -Concurrency $Concurrency @store | Out-Null
        }
    }
    'Recovery' {
        {
            # The server is down when this starts; the harness brings it up later. One message, sent when it is back.
            $r = [pscustomobject]@{ Email = 'recover@example.com' } |
                Send-ResilientMail -SmtpServer 127.0.0.1 -Port $Port -From bench@example.com -Subject 'Recovery' -Body $body -NoDelay `
                    -ConnectionCheckInterval $CheckInterval -ConnectionWaitTimeout 120 -ProbeTimeout 1
            $extra = @{ acceptedAtMs = $r.Timestamp.ToUnixTimeMilliseconds(); status = "$($r.Status)" }
        }
    }
    default { throw "Unknown scenario $Scenario" }
}

# Steady state (-Warmup): the same run, untimed, over the same rows, at least -Warmup messages and then on until two runs
# in a row compile fewer than 25 methods each (at most 16 runs); the next run is the one reported. PowerShell keeps compiling for
# several invocations of a command (about 1,000 ms of JIT in the second one, then bursts of 50-350 ms as its script
# code, dynamic PGO and call counting catch up), so a fixed short warm-up leaves part of that to the timed run. Every
# run, warm-up or not, goes through the same statements (measurement included): a statement PowerShell runs for the
# first time in the timed run would compile there. The bare loop is warmed up by the same rule (BenchTool bare).
$me = [System.Diagnostics.Process]::GetCurrentProcess()
$runs = 0; $sent = 0; $quiet = 0
while ($true) {
    $timed = $Warmup -le 0 -or ($sent -ge $Warmup -and ($quiet -ge 2 -or $runs -ge 16))
    $me.Refresh(); $cpu0 = $me.TotalProcessorTime
    $jit0 = [System.Runtime.JitInfo]::GetCompiledMethodCount($false); $jitTime = [System.Runtime.JitInfo]::GetCompilationTime($false)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    . $run
    $seconds = $clock.Elapsed.TotalSeconds
    $jitMethods = [System.Runtime.JitInfo]::GetCompiledMethodCount($false) - $jit0
    $jitMs = ([System.Runtime.JitInfo]::GetCompilationTime($false) - $jitTime).TotalMilliseconds
    $me.Refresh(); $cpuTotal = ($me.TotalProcessorTime - $cpu0).TotalMilliseconds * 1000
    if ($timed) { break }
    $runs++; $sent += $Count
    $quiet = if ($jitMethods -lt 25) { $quiet + 1 } else { 0 }
}
$warmRuns = $runs
$peak = $me.PeakWorkingSet64 / 1MB
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
([ordered]@{ seconds = $seconds; count = $n; peakMB = [Math]::Round($peak, 1); cpuUsPerMessage = [Math]::Round($cpuTotal / [Math]::Max(1, $n), 1); warmRuns = $warmRuns; jitMethods = $jitMethods; jitMs = [Math]::Round($jitMs) } + $extra) | ConvertTo-Json -Compress
