<#
.SYNOPSIS
    Side-by-side benchmarks (build.ps1 -Task Bench [-Quick]). Not tests: they print ratios measured in one run.
.DESCRIPTION
    Everything runs on this machine against a loopback SMTP sink (bench/BenchTool sink) that answers at once
    (0 ms) or holds each reply batch 20 ms (a simulated round trip). Every figure is compared with a baseline
    measured in the same run; each cell is the median of several runs with min and max.
    Writes bench/results/latest.md, latest.json and latest.png.
#>
param(
    [Parameter(Mandatory)][string]$ModulePath,
    [switch]$Quick
)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
$tool = Join-Path $PSScriptRoot 'BenchTool/bin/Release/net10.0/BenchTool.dll'
$results = Join-Path $PSScriptRoot 'results'
$work = Join-Path ([IO.Path]::GetTempPath()) "rm-bench-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
$null = New-Item -ItemType Directory -Force -Path $results, $work
$runs = 3
# Steady state: every process first repeats the timed run, untimed, over at least 4x its messages and until the JIT
# is quiet (Scenario.ps1 and BenchTool bare apply the same rule). The bare loop itself still speeds up well past one
# run's worth (5,000 -> 20,000 warm-up messages: about 3,800 -> 5,000 msg/s here); PowerShell compiles for many
# invocations of a command.
$steadyRuns = if ($Quick) { 3 } else { 5 }
$n0 = if ($Quick) { 1000 } else { 5000 }          # messages at 0 ms
$n20 = if ($Quick) { 120 } else { 400 }           # messages at 20 ms
$memRows = if ($Quick) { @(10000, 100000) } else { @(100000, 1000000) }

$exe = [Environment]::ProcessPath
[string[]]$pre = if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { @((Join-Path $PSHOME 'pwsh.dll')) } else { @() }

function Start-Sink([int]$DelayMs) {
    $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
    foreach ($a in @($tool, 'sink', '--port', '0', '--delay-ms', "$DelayMs")) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $line = $p.StandardOutput.ReadLine()
    if ($line -notmatch '^READY (\d+)') { throw "sink did not start: $line" }
    [pscustomobject]@{ Process = $p; Port = [int]$Matches[1]; Delay = $DelayMs }
}

function Stop-Sink($sink) { $sink.Process.StandardInput.Close(); if (-not $sink.Process.WaitForExit(5000)) { $sink.Process.Kill() } }

function Invoke-Child([string[]]$Arguments) {
    $out = & $exe @pre -NoProfile -NonInteractive -File (Join-Path $PSScriptRoot 'Scenario.ps1') @Arguments 2>&1
    $json = $out | Where-Object { "$_" -match '^\{.*"seconds"' } | Select-Object -Last 1
    if (-not $json) { throw "Scenario failed: $($Arguments -join ' ')`n$($out -join "`n")" }
    $json | ConvertFrom-Json
}

function Invoke-Bare($sink, [int]$Count, [int]$Warmup = 0) {
    $json = & dotnet $tool bare --port $sink.Port --count $Count --warmup $Warmup
    $json | ConvertFrom-Json
}

function Measure-Case([string]$Label, [int]$Delay, [scriptblock]$Run) {
    $samples = foreach ($i in 1..$runs) { & $Run }
    Get-Summary $Label $Delay $samples
}

# Runs the cases in rotation (A B C, A B C, ...) rather than one after the other, so that a slow spell of a
# shared machine falls on all of them alike; for the ratios that must hold within a few per cent.
function Measure-Together([int]$Delay, [object[]]$Entries) {
    $samples = @{}
    foreach ($e in $Entries) { $samples[$e.Label] = [System.Collections.Generic.List[object]]::new() }
    foreach ($i in 1..$steadyRuns) { foreach ($e in $Entries) { $samples[$e.Label].Add((& $e.Run)) } }
    foreach ($e in $Entries) { Get-Summary $e.Label $Delay $samples[$e.Label] }
}

function Get-Summary([string]$Label, [int]$Delay, [object[]]$Samples) {
    $rates = @($Samples | ForEach-Object { $_.count / $_.seconds } | Sort-Object)
    $median = $rates[[int][Math]::Floor($rates.Count / 2)]
    $cpu = @($Samples | Where-Object { $null -ne $_.cpuUsPerMessage } | ForEach-Object { $_.cpuUsPerMessage } | Sort-Object)
    $cpuMedian = if ($cpu.Count) { $cpu[[int][Math]::Floor($cpu.Count / 2)] } else { $null }
    $jit = @($Samples | Where-Object { $null -ne $_.jitMs } | ForEach-Object { $_.jitMs } | Sort-Object)
    $jitMedian = if ($jit.Count) { $jit[[int][Math]::Floor($jit.Count / 2)] } else { $null }
    $warmRuns = @($Samples | Where-Object { $_.warmRuns } | ForEach-Object { $_.warmRuns } | Sort-Object)
    Write-Host ("{0,-40} {1,3} ms  {2,9:0.0} msg/s  ({3:0.0} - {4:0.0}){5}{6}" -f $Label, $Delay, $median, $rates[0], $rates[-1], $(if ($null -ne $cpuMedian) { ('  {0:0} us CPU/msg' -f $cpuMedian) } else { '' }), $(if ($warmRuns.Count) { "  JIT $jitMedian ms after $($warmRuns[0])-$($warmRuns[-1]) warm-up runs" } else { '' }))
    [pscustomobject]@{ label = $Label; delay = $Delay; count = $Samples[0].count; median = $median; min = $rates[0]; max = $rates[-1]
        cpuUs = $cpuMedian; jitMs = $jitMedian; warmRuns = $(if ($warmRuns.Count) { '{0}-{1}' -f $warmRuns[0], $warmRuns[-1] } else { '' })
        runs = $rates.Count; peakMB = ($Samples | Measure-Object peakMB -Maximum).Maximum }
}

Write-Host "== Benchmarks ($(if ($Quick) { 'quick' } else { 'full' }): $runs runs each)" -ForegroundColor Cyan
$cases = [System.Collections.Generic.List[object]]::new()
$sinks = @{ 0 = (Start-Sink 0); 20 = (Start-Sink 20) }
Import-Module (Join-Path $root 'build/TestServers.psm1') -Force
$azurite = Start-Azurite
try {
    foreach ($delay in 0, 20) {
        $s = $sinks[$delay]; $n = if ($delay -eq 0) { $n0 } else { $n20 }
        $smmCount = [Math]::Max(20, [int]($n / 5))
        $cases.Add((Measure-Case 'Bare MailKit loop (1 connection)' $delay { Invoke-Bare $s $n }))
        $cases.Add((Measure-Case 'Send-MailMessage loop' $delay { Invoke-Child @('-Scenario', 'SendMailMessage', '-Port', $s.Port, '-Count', $smmCount) }))
        $cases.Add((Measure-Case 'Send-ResilientMail (pipeline)' $delay { Invoke-Child @('-Scenario', 'SendResilientMail', '-ModulePath', $ModulePath, '-Port', $s.Port, '-Count', $n) }))
        foreach ($c in 1, 4, 8) {
            $cases.Add((Measure-Case "Start-MailCampaign -Concurrency $c" $delay { Invoke-Child @('-Scenario', 'Campaign', '-ModulePath', $ModulePath, '-Port', $s.Port, '-Count', $n, '-Concurrency', $c, '-WorkDir', $work) }))
        }
        if ($delay -eq 0) {
            # Steady state: the same runs after 4x as many messages in the same process (JIT and tiering done), in
            # rotation. Cold runs above pay .NET's and PowerShell's warm-up, larger for a pipeline than for a bare loop.
            $warm = 4 * $n
            $steady = Measure-Together $delay @(
                @{ Label = 'Bare MailKit loop (1 connection), warm'; Run = { Invoke-Bare $s $n $warm } }
                @{ Label = 'Send-ResilientMail (pipeline), warm'; Run = { Invoke-Child @('-Scenario', 'SendResilientMail', '-ModulePath', $ModulePath, '-Port', $s.Port, '-Count', $n, '-Warmup', $warm) } }
                @{ Label = 'Start-MailCampaign -Concurrency 1, warm'; Run = { Invoke-Child @('-Scenario', 'Campaign', '-ModulePath', $ModulePath, '-Port', $s.Port, '-Count', $n, '-Concurrency', 1, '-WorkDir', $work, '-Warmup', $warm) } }
            )
            foreach ($c in $steady) { $cases.Add($c) }
        }
    }
    # The journal in Azure Blob Storage (Azurite) against the local file, -Concurrency 8 at a 20 ms round trip, in rotation,
    # over enough messages (about 10 s a run) that the store client's one-time start (its JIT, the lease) is not the figure.
    $nStore = if ($Quick) { 1000 } else { 2000 }
    $blob = @('-JournalStore', $azurite.Container('bench'), '-JournalStoreSecret', $azurite.ConnectionString)
    $s20 = $sinks[20]
    $stores = Measure-Together 20 @(
        @{ Label = 'Start-MailCampaign -Concurrency 8, file journal'; Run = { Invoke-Child @('-Scenario', 'Campaign', '-ModulePath', $ModulePath, '-Port', $s20.Port, '-Count', $nStore, '-Concurrency', 8, '-WorkDir', $work) } }
        @{ Label = 'Start-MailCampaign -Concurrency 8, blob journal'; Run = { Invoke-Child (@('-Scenario', 'Campaign', '-ModulePath', $ModulePath, '-Port', $s20.Port, '-Count', $nStore, '-Concurrency', 8, '-WorkDir', $work) + $blob) } }
    )
    foreach ($c in $stores) { $cases.Add($c) }
    # Rate limit: 50/second for about 20 s (10 s in quick mode) against the 0 ms sink.
    $rlCount = if ($Quick) { 500 } else { 1000 }
    $rlRuns = foreach ($i in 1..$runs) { Invoke-Child @('-Scenario', 'CampaignRateLimited', '-ModulePath', $ModulePath, '-Port', $sinks[0].Port, '-Count', $rlCount, '-RateLimit', '50/second', '-WorkDir', $work) }
    $rates = @($rlRuns.rate | Sort-Object)
    $rl = [pscustomobject]@{ rate = $rates[[int][Math]::Floor($rates.Count / 2)]; min = $rates[0]; max = $rates[-1]; maxInAnySecond = ($rlRuns.maxInAnySecond | Measure-Object -Maximum).Maximum }
    Write-Host ("Rate limit 50/second: achieved {0:0.00}/s ({1:0.00} - {2:0.00}), busiest 1 s window {3}" -f $rl.rate, $rl.min, $rl.max, $rl.maxInAnySecond)
}
finally { $sinks.Values | ForEach-Object { Stop-Sink $_ } }

# Recovery latency: from the server coming back after an outage to the next message accepted.
function Measure-Recovery([double]$Interval) {
    $samples = foreach ($i in 1..$runs) {
        $probe = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $probe.Start(); $port = $probe.LocalEndpoint.Port; $probe.Stop()
        $job = Start-ThreadJob -ArgumentList $exe, $pre, $PSScriptRoot, $ModulePath, $port, $Interval {
            param($exe, $pre, $dir, $module, $port, $interval)
            & $exe @pre -NoProfile -NonInteractive -File (Join-Path $dir 'Scenario.ps1') -Scenario Recovery -ModulePath $module -Port $port -CheckInterval $interval 2>&1
        }
        # Down for a while (a random part of the check interval, so the probe phase varies), then up.
        Start-Sleep -Milliseconds (2500 + (Get-Random -Maximum ([int]($Interval * 1000))))
        $psi = [System.Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in @($tool, 'sink', '--port', "$port", '--delay-ms', '0')) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.UseShellExecute = $false
        $sink = [System.Diagnostics.Process]::Start($psi)
        $null = $sink.StandardOutput.ReadLine()
        $upAt = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds()
        $out = $job | Receive-Job -Wait -AutoRemoveJob
        $sink.StandardInput.Close(); if (-not $sink.WaitForExit(5000)) { $sink.Kill() }
        $r = ($out | Where-Object { "$_" -match '^\{.*"seconds"' } | Select-Object -Last 1) | ConvertFrom-Json
        if ($r.status -ne 'Sent') { throw "Recovery run did not send: $out" }
        ($r.acceptedAtMs - $upAt) / 1000.0
    }
    $sorted = @($samples | Sort-Object)
    [pscustomobject]@{ interval = $Interval; median = $sorted[1]; min = $sorted[0]; max = $sorted[-1] }
}
$recovery = foreach ($interval in 10, 1) {
    $r = Measure-Recovery $interval
    Write-Host ("Recovery with a {0} s check interval: {1:0.00} s ({2:0.00} - {3:0.00})" -f $interval, $r.median, $r.min, $r.max)
    $r
}

# The engine's own cost and memory: a CSV campaign through the pickup transport (no network).
$memory = foreach ($rowsCount in $memRows) {
    $csv = Join-Path $work "rows-$rowsCount.csv"
    $w = [IO.StreamWriter]::new($csv)
    $w.WriteLine('Email,FirstName')
    for ($i = 1; $i -le $rowsCount; $i++) { $w.WriteLine("r$i@example.com,N$i") }
    $w.Dispose()
    $r = Invoke-Child @('-Scenario', 'PickupCsv', '-ModulePath', $ModulePath, '-Csv', $csv, '-WorkDir', $work)
    Write-Host ("Pickup campaign, {0:N0} rows: {1:0} rows/s, peak working set {2:0} MB" -f $rowsCount, ($r.count / $r.seconds), $r.peakMB)
    Remove-Item -Recurse -Force (Join-Path $work 'pickup-*') -ErrorAction SilentlyContinue
    [pscustomobject]@{ rows = $rowsCount; rate = $r.count / $r.seconds; peakMB = $r.peakMB }
}
# The same largest campaign with its journal in Azure Blob Storage (Azurite), 8 connections (one append serves several).
$big = Join-Path $work "rows-$($memRows[-1]).csv"
$r = Invoke-Child (@('-Scenario', 'PickupCsv', '-ModulePath', $ModulePath, '-Csv', $big, '-WorkDir', $work, '-Concurrency', 8) + $blob)
$blobMemory = [pscustomobject]@{ rows = $memRows[-1]; rate = $r.count / $r.seconds; peakMB = $r.peakMB }
Write-Host ("Pickup campaign, blob journal, {0:N0} rows: {1:0} rows/s, peak working set {2:0} MB" -f $blobMemory.rows, $blobMemory.rate, $blobMemory.peakMB)
Stop-Azurite $azurite

# Import time: median of 10 fresh processes, against a bare start.
function Measure-Start([string]$Command) {
    $t = foreach ($i in 1..10) { $c = [Diagnostics.Stopwatch]::StartNew(); & $exe @pre -NoProfile -NonInteractive -Command $Command | Out-Null; $c.Elapsed.TotalMilliseconds }
    ($t | Sort-Object)[5]
}
$bareStart = Measure-Start 'exit'
$importStart = Measure-Start "Import-Module '$ModulePath'; exit"
Write-Host ("Import-Module adds {0:0} ms to a bare start ({1:0} ms)" -f ($importStart - $bareStart), $bareStart)
Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue

function Get-Case([string]$Label, [int]$Delay) { $cases | Where-Object { $_.label -eq $Label -and $_.delay -eq $Delay } }
function Ratio([string]$A, [string]$B, [int]$Delay) { (Get-Case $A $Delay).median / (Get-Case $B $Delay).median }
$srm = 'Send-ResilientMail (pipeline)'; $smm = 'Send-MailMessage loop'; $bare = 'Bare MailKit loop (1 connection)'
$c1 = 'Start-MailCampaign -Concurrency 1'
$targets = @(
    @{ What = "Send-ResilientMail vs bare MailKit, 0 ms, steady state (both warm)$(if ($Quick) { ' - quick run: 1,000 messages, where fixed costs per command weigh; judge on a full run' })"; Value = (Ratio "$srm, warm" "$bare, warm" 0); Goal = '>= 0.9x'; Met = (Ratio "$srm, warm" "$bare, warm" 0) -ge 0.9 }
    @{ What = 'Send-ResilientMail vs bare MailKit, 0 ms, cold process (for reference)'; Value = (Ratio $srm $bare 0); Goal = '(>= 0.9x)'; Met = (Ratio $srm $bare 0) -ge 0.9 }
    @{ What = 'Send-ResilientMail vs Send-MailMessage, 0 ms'; Value = (Ratio $srm $smm 0); Goal = '>= 20x'; Met = (Ratio $srm $smm 0) -ge 20 }
    @{ What = 'Send-ResilientMail vs Send-MailMessage, 20 ms'; Value = (Ratio $srm $smm 20); Goal = '>= 2x'; Met = (Ratio $srm $smm 20) -ge 2 }
    @{ What = 'Campaign -Concurrency 1 (journal on) vs Send-ResilientMail, 0 ms, steady state'; Value = (Ratio "$c1, warm" "$srm, warm" 0); Goal = '>= 0.8x'; Met = (Ratio "$c1, warm" "$srm, warm" 0) -ge 0.8 }
    @{ What = 'Campaign -Concurrency 1 (journal on) vs Send-ResilientMail, 0 ms, cold process'; Value = (Ratio $c1 $srm 0); Goal = '(>= 0.8x)'; Met = (Ratio $c1 $srm 0) -ge 0.8 }
    @{ What = 'Campaign -Concurrency 8 vs -Concurrency 1, 20 ms'; Value = (Ratio 'Start-MailCampaign -Concurrency 8' 'Start-MailCampaign -Concurrency 1' 20); Goal = '>= 5x'; Met = (Ratio 'Start-MailCampaign -Concurrency 8' 'Start-MailCampaign -Concurrency 1' 20) -ge 5 }
    @{ What = 'Campaign -Concurrency 8 vs Send-MailMessage, 20 ms'; Value = (Ratio 'Start-MailCampaign -Concurrency 8' $smm 20); Goal = '>= 10x'; Met = (Ratio 'Start-MailCampaign -Concurrency 8' $smm 20) -ge 10 }
    @{ What = "Peak working set, $('{0:N0}' -f $memRows[-1]) rows (pickup)"; Value = $memory[-1].peakMB; Goal = '< 250 MB'; Met = $memory[-1].peakMB -lt 250; Unit = 'MB' }
    @{ What = "Peak working set, $('{0:N0}' -f $memRows[-1]) rows (pickup, blob journal)"; Value = $blobMemory.peakMB; Goal = '< 250 MB'; Met = $blobMemory.peakMB -lt 250; Unit = 'MB' }
    @{ What = 'Campaign -Concurrency 8, blob journal vs file journal, 20 ms'; Value = (Ratio 'Start-MailCampaign -Concurrency 8, blob journal' 'Start-MailCampaign -Concurrency 8, file journal' 20); Goal = '>= 0.9x'; Met = (Ratio 'Start-MailCampaign -Concurrency 8, blob journal' 'Start-MailCampaign -Concurrency 8, file journal' 20) -ge 0.9 }
    @{ What = "Peak working set growth, $('{0:N0}' -f $memRows[0]) -> $('{0:N0}' -f $memRows[-1]) rows"; Value = $memory[-1].peakMB / $memory[0].peakMB; Goal = 'flat (< 1.5x)'; Met = ($memory[-1].peakMB / $memory[0].peakMB) -lt 1.5 }
    @{ What = 'Import-Module added to a bare pwsh start'; Value = $importStart - $bareStart; Goal = '< 400 ms'; Met = ($importStart - $bareStart) -lt 400; Unit = 'ms' }
    @{ What = 'Recovery latency, 10 s check interval (slowest run)'; Value = $recovery[0].max; Goal = '<= 11 s'; Met = $recovery[0].max -le 11; Unit = 's' }
    @{ What = 'Recovery latency, 1 s check interval (slowest run)'; Value = $recovery[1].max; Goal = '<= 2 s'; Met = $recovery[1].max -le 2; Unit = 's' }
    @{ What = 'Rate limit 50/second: achieved rate / limit'; Value = $rl.rate / 50; Goal = 'within 2%'; Met = [Math]::Abs($rl.rate / 50 - 1) -le 0.02 }
    @{ What = 'Rate limit 50/second: busiest 1 s window'; Value = $rl.maxInAnySecond; Goal = '<= 50'; Met = $rl.maxInAnySecond -le 50; Unit = 'msgs' }
)

$md = [System.Text.StringBuilder]::new()
$null = $md.AppendLine("# Benchmarks ($(if ($Quick) { 'quick' } else { 'full' }), $(Get-Date -Format 'yyyy-MM-dd HH:mm'), $([Environment]::ProcessorCount) cores)")
$null = $md.AppendLine()
$null = $md.AppendLine('Loopback SMTP sink (PIPELINING, 8BITMIME); pacing off everywhere; the same message. Median of ' + $runs + ' runs (min - max). Ratios are against the bare MailKit loop at the same sink delay, measured in the same run; "warm" rows (steady state: in the same process the same run first repeats, untimed, over at least 4x as many messages and until two runs in a row compile fewer than 25 methods each, at most 16 runs; the bare loop by the same rule; ' + $steadyRuns + ' runs each, taken in rotation) against the warm bare loop. CPU: the sending process''s CPU time per message in the timed part (all its threads), median. JIT: compilation time in the timed part, median, and how many warm-up runs it took.')
$null = $md.AppendLine()
$null = $md.AppendLine('| Case | Sink delay | Messages | msg/s median (min - max) | vs bare MailKit | CPU us/msg | JIT ms (warm-up runs) |')
$null = $md.AppendLine('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
foreach ($c in $cases) {
    $base = if ($c.label -like '*, warm') { Get-Case "$bare, warm" $c.delay } else { Get-Case $bare $c.delay }
    $ratio = $c.median / $base.median
    $c | Add-Member ratio $ratio
    $cpuCell = if ($null -ne $c.cpuUs) { '{0:0}' -f $c.cpuUs } else { '' }
    $jitCell = if ($null -ne $c.jitMs) { '{0:0}{1}' -f $c.jitMs, $(if ($c.warmRuns) { " ($($c.warmRuns))" } else { '' }) } else { '' }
    $null = $md.AppendLine(('| {0} | {1} ms | {2} | {3:0.0} ({4:0.0} - {5:0.0}) | {6:0.00}x | {7} | {8} |' -f $c.label, $c.delay, $c.count, $c.median, $c.min, $c.max, $ratio, $cpuCell, $jitCell))
}
$null = $md.AppendLine()
$null = $md.AppendLine('| Target | Measured | Goal | Met |')
$null = $md.AppendLine('| --- | ---: | --- | --- |')
foreach ($t in $targets) {
    $value = if ($t.Unit) { '{0:0.#} {1}' -f $t.Value, $t.Unit } else { '{0:0.00}x' -f $t.Value }
    $null = $md.AppendLine("| $($t.What) | $value | $($t.Goal) | $(if ($t.Met) { 'yes' } else { '**no**' }) |")
}
$null = $md.AppendLine()
foreach ($m in $memory) { $null = $md.AppendLine(('Pickup-transport campaign, {0:N0} CSV rows: {1:0} rows/s, peak working set {2:0} MB.' -f $m.rows, $m.rate, $m.peakMB)) }
$null = $md.AppendLine(('Rate limit 50/second: achieved {0:0.00}/s median ({1:0.00} - {2:0.00}); busiest 1 s window in any run: {3} messages.' -f $rl.rate, $rl.min, $rl.max, $rl.maxInAnySecond))
foreach ($r in $recovery) { $null = $md.AppendLine(('Recovery after an outage, {0} s check interval: next message accepted {1:0.00} s after the server came back (median; {2:0.00} - {3:0.00}).' -f $r.interval, $r.median, $r.min, $r.max)) }
$null = $md.AppendLine(('Module import: {0:0} ms added to a bare start of {1:0} ms (median of 10).' -f ($importStart - $bareStart), $bareStart))
$null = $md.AppendLine()
$null = $md.AppendLine('Reproduce: `dotnet tool restore && dotnet pwsh ./build.ps1 -Task Bench` (add `-Quick` for a short run).')
Set-Content -Path (Join-Path $results 'latest.md') -Value $md.ToString() -Encoding utf8NoBOM
$cases | Select-Object label, delay, count, median, min, max, ratio, cpuUs, jitMs, warmRuns, runs, peakMB | ConvertTo-Json | Set-Content (Join-Path $results 'latest.json')
$chartIn = Join-Path ([IO.Path]::GetTempPath()) "rm-chart-$PID.json"
$cases | ForEach-Object { [pscustomobject]@{ label = "$($_.label) @$($_.delay)ms"; ratio = $_.ratio } } | ConvertTo-Json | Set-Content $chartIn
& dotnet $tool chart --in $chartIn --out (Join-Path $results 'latest.png')
Remove-Item $chartIn -ErrorAction SilentlyContinue
Write-Host "Wrote $results/latest.md, latest.json and latest.png"

# Finishing under real server policy and provider quotas (Postfix, a server of exact policy, the SES emulator): policy.md.
& (Join-Path $PSScriptRoot 'Policy.ps1') -ModulePath $ModulePath -Messages $(if ($Quick) { 400 } else { 1000 }) -SesMessages $(if ($Quick) { 100 } else { 300 })
