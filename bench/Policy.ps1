<#
.SYNOPSIS
    Finishing under real server policy and provider quotas (build.ps1 -Task Bench runs it after the throughput figures;
    it can run alone: dotnet pwsh bench/Policy.ps1 -ModulePath out/ResilientMail/ResilientMail.psd1). Not tests: it
    prints and records figures, as ratios against what the policy allows.
.DESCRIPTION
    1. Postfix (out/postfix, see build/Postfix.psm1) allowing 2 connections per client and 20 messages a second
       (smtpd_client_connection_count_limit = 2, smtpd_client_message_rate_limit = 20, anvil_rate_time_unit = 1s):
       a 1,000-message campaign at -Concurrency 4, no pace given. Time to finish against the policy's minimum
       (50 windows of 20: the last starts 49 s after the first). Goal: within 10%.
    2. aws-ses-v2-local behind the recording proxy, its account publishing a max send rate of 10 a second: a 300-message
       campaign at -Concurrency 4. Achieved rate (SendEmail requests at the proxy) against the allowed one (goal: within
       2%), and the most requests in any 1 s window (goal: never over 10).
    Writes bench/results/policy.md and policy.json.
#>
param([Parameter(Mandatory)][string]$ModulePath, [int]$Messages = 1000, [int]$SesMessages = 300)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'build/Postfix.psm1') -Force
Import-Module (Join-Path $root 'build/TestServers.psm1') -Force
Import-Module (Join-Path $root 'build/Smtp4dev.psm1') -Force
Import-Module $ModulePath -Force
$results = Join-Path $PSScriptRoot 'results'
$env:RESILIENTMAIL_DATA = Join-Path ([IO.Path]::GetTempPath()) "rm-policy-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
$WarningPreference = 'SilentlyContinue'; $ProgressPreference = 'SilentlyContinue'
$figures = [ordered]@{}

# A 1,000-message campaign at -Concurrency 4 with no pace given, and how the server's log saw it.
function Measure-Policy([int]$Port) {
    $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $Port
    $rows = 1..$Messages | ForEach-Object { [pscustomobject]@{ Email = "p$_@policy.example" } }
    $warnings = @()
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $info = $rows | Start-MailCampaign -Name "policy-$([guid]::NewGuid().ToString('n').Substring(0, 6))" -Transport $t -From bench@example.com -Subject s -Body b -NoDelay -Concurrency 4 `
        -WarningVariable +warnings | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
    [ordered]@{
        messages = $Messages; sent = $info.Sent; failed = $info.Failed; seconds = [math]::Round($clock.Elapsed.TotalSeconds, 1)
        settled = ("$($warnings | Where-Object { "$_" -match 'settled at' })" -replace '^.*settled at ', '').TrimEnd('.')
        connections = "$($warnings | Where-Object { "$_" -match 'Sending with' })" -replace '^.*(Sending with \d+ connections? instead of \d+).*$', '$1'
    }
}

# 1. A server whose policy is exactly "2 connections, 20 messages in any second" (the scripted server: 421 at the greeting
#    of a third connection, 450 4.7.1 "too much mail" for a 21st MAIL FROM within a sliding second).
$scripted = Start-ScriptedSmtp -MaxConnections 2 -Rate '20/1'
try {
    $r = Measure-Policy $scripted.Port
    $r.policyMinimum = [math]::Ceiling($Messages / 20) - 1   # 20 at once, then 20 a second: the last starts 49 s after the first
    $r.ratio = [math]::Round($r.seconds / $r.policyMinimum, 3)
    # Every MAIL FROM the server did not follow with a message was refused as too fast.
    $r.refusedAsTooFast = @(Get-ScriptedSmtpRecord $scripted -Commands | Where-Object { "$_" -match '^MAIL FROM' }).Count - @(Get-ScriptedSmtpRecord $scripted -Messages).Count
    $figures.scripted = $r
    Write-Host ("Scripted server, 2 connections / 20 in any second: {0} messages in {1:0.0} s, policy minimum {2} s: {3:0.000}x ({4} sent, {5} failed; settled at {6})" -f $Messages, $r.seconds, $r.policyMinimum, $r.ratio, $r.sent, $r.failed, $r.settled)
} finally { Stop-TestServer $scripted }

# 2. Postfix itself with smtpd_client_connection_count_limit = 2, smtpd_client_message_rate_limit = 20 and
#    anvil_rate_time_unit = 1s. Its anvil counts in whole seconds and starts a new window only once more than the unit has
#    passed, so "20 a second" is 20 in each window of just under 2 s: its minimum is read from its own log (the time from
#    the first message taken to the last, when every window is full), not assumed.
$why = Get-PostfixUnavailable
if ($why) {
    Write-Host "Postfix case skipped: $why"
    $figures.postfix = @{ skipped = $why }
} else {
    $sink = Start-Smtp4dev
    $pf = Start-Postfix -RelayPort $sink.SmtpPort -Settings @{ smtpd_client_connection_count_limit = '2'; smtpd_client_message_rate_limit = '20'; anvil_rate_time_unit = '1s' }
    try {
        $r = Measure-Policy $pf.Port
        # Each new window of Postfix's starts at the first message after the previous one ended: in whole seconds, 2 s apart.
        $windows = [math]::Ceiling($Messages / 20)
        $r.policyMinimum = ($windows - 1) * 2
        $r.ratio = [math]::Round($r.seconds / $r.policyMinimum, 3)
        $r.refusedAsTooFast = @(Get-PostfixLog $pf -Match 'delivery request rate limit exceeded').Count
        $r.refusedConnections = @(Get-PostfixLog $pf -Match 'Connection concurrency limit exceeded').Count
        $figures.postfix = $r
        Write-Host ("Postfix, 2 connections / 20 per anvil window (2 s): {0} messages in {1:0.0} s, its minimum {2} s: {3:0.000}x ({4} sent, {5} failed; settled at {6})" -f $Messages, $r.seconds, $r.policyMinimum, $r.ratio, $r.sent, $r.failed, $r.settled)
    } finally { Stop-Postfix $pf; Stop-Smtp4dev $sink }
}

# 3. SES: the account's max send rate is the pace.
$env:AWS_SES_ACCOUNT = ConvertTo-Json -Compress -Depth 5 @{
    DedicatedIpAutoWarmupEnabled = $false; EnforcementStatus = 'HEALTHY'; ProductionAccessEnabled = $true; SendingEnabled = $true
    Details = @{ AdditionalContactEmailAddresses = @(); ContactLanguage = 'EN'; MailType = 'TRANSACTIONAL'; ReviewDetails = @{ CaseId = 'c'; Status = 'GRANTED' }; UseCaseDescription = 'u'; WebsiteURL = 'https://example.com' }
    SendQuota = @{ Max24HourSend = 100000; MaxSendRate = 10; SentLast24Hours = 0 }
    SuppressionAttributes = @{ SuppressedReasons = @() }
}
$env:AWS_ACCESS_KEY_ID = 'AKIDBENCH'; $env:AWS_SECRET_ACCESS_KEY = 'bench-secret'; $env:AWS_REGION = 'us-east-1'; $env:AWS_EC2_METADATA_DISABLED = 'true'
try { $ses = Start-SesEmulator } finally { Remove-Item Env:AWS_SES_ACCOUNT }
try {
    $t = New-MailTransport -Ses -Region us-east-1 -EndpointUrl $ses.BaseUri
    $rows = 1..$SesMessages | ForEach-Object { [pscustomobject]@{ Email = "s$_@policy.example" } }
    $info = $rows | Start-MailCampaign -Name "ses-policy-$([guid]::NewGuid().ToString('n').Substring(0, 6))" -Transport $t -From bench@example.com -Subject s -Body b -NoDelay -Concurrency 4 |
        Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
    $sends = @(Get-FakeRequest $ses | Where-Object { $_.Method -eq 'POST' -and $_.Path -match '/outbound-emails' } | ForEach-Object { [DateTimeOffset]$_.At } | Sort-Object)
    $span = ($sends[-1] - $sends[0]).TotalSeconds
    # A sliding window: at most 10 may start in any 1 s, so 300 take at least 29 s (the first 10 at once, the last 10 at 29 s).
    $allowedSpan = [math]::Ceiling($sends.Count / 10) - 1
    $worst = 0
    for ($i = 0; $i -lt $sends.Count; $i++) {
        $j = $i; while ($j + 1 -lt $sends.Count -and ($sends[$j + 1] - $sends[$i]).TotalSeconds -lt 1) { $j++ }
        $worst = [math]::Max($worst, $j - $i + 1)
    }
    $figures.ses = [ordered]@{
        messages = $SesMessages; sent = $info.Sent; failed = $info.Failed; requests = $sends.Count; seconds = [math]::Round($span, 2)
        allowedSeconds = $allowedSpan; achievedVsAllowed = [math]::Round($allowedSpan / $span, 3); mostInAnySecond = $worst; maxSendRate = 10
    }
    Write-Host ("SES max send rate 10/s: {0} sends over {1:0.00} s (allowed at best {2} s): achieved/allowed {3:0.000}; most in any 1 s: {4}" -f $sends.Count, $span, $allowedSpan, ($allowedSpan / $span), $worst)
} finally { Stop-TestServer $ses }

$null = New-Item -ItemType Directory -Force $results
$figures | ConvertTo-Json -Depth 4 | Set-Content (Join-Path $results 'policy.json')
$md = [System.Text.StringBuilder]::new()
$null = $md.AppendLine('## Under server policy and provider quotas (bench/Policy.ps1)')
$null = $md.AppendLine()
$p = $figures.scripted
$null = $md.AppendLine("- A server allowing exactly 2 connections and 20 messages in any second (the scripted server), $($p.messages) messages at -Concurrency 4, no pace given: **$($p.seconds) s** against the policy's minimum of $($p.policyMinimum) s (**$($p.ratio)x**; goal <= 1.10x). $($p.sent) sent, $($p.failed) failed; $($p.refusedAsTooFast) refusals as too fast; settled at $($p.settled); $($p.connections).")
if ($figures.postfix.Contains('ratio')) {
    $p = $figures.postfix
    $null = $md.AppendLine("- Postfix with smtpd_client_connection_count_limit = 2, smtpd_client_message_rate_limit = 20, anvil_rate_time_unit = 1s (its anvil counts whole seconds, so a window is just under 2 s), $($p.messages) messages: **$($p.seconds) s** against its minimum of $($p.policyMinimum) s (**$($p.ratio)x**). $($p.sent) sent, $($p.failed) failed; $($p.refusedAsTooFast) refusals as too fast, $($p.refusedConnections) refused connections; settled at $($p.settled); $($p.connections).")
} else { $null = $md.AppendLine("- Postfix case skipped: $($figures.postfix.skipped)") }
$s = $figures.ses
$null = $md.AppendLine("- Amazon SES (aws-ses-v2-local) publishing a max send rate of 10 a second, $($s.messages) messages at -Concurrency 4: $($s.requests) sends over $($s.seconds) s against $($s.allowedSeconds) s at best: achieved/allowed **$($s.achievedVsAllowed)** (goal within 2%); most in any 1 s: **$($s.mostInAnySecond)** (goal <= 10). $($s.sent) sent, $($s.failed) failed.")
Set-Content (Join-Path $results 'policy.md') $md.ToString()
Write-Host $md.ToString()
