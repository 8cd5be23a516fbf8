# Issue "Sending the way a mail server would": campaigns against Postfix itself (Debian's package, unpacked by the build
# into out/postfix, never installed), one instance on a loopback port with its own configuration and queue, relaying what
# it accepts to a local smtp4dev. Each case sets the policy a real server has: a greylisting policy service,
# smtpd_client_message_rate_limit, smtpd_client_connection_count_limit, an access map changed mid-run.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Module (Join-Path $RepoRoot 'build/Postfix.psm1') -Force
    Import-Module (Join-Path $RepoRoot 'build/TestServers.psm1') -Force
    $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
    $script:why = Get-PostfixUnavailable
    if (-not $why) {
        $script:sink = Start-Smtp4dev
        $script:policyLog = Join-Path $TestDrive 'greylist.log'
        $script:policyPort = Get-FreeTcpPort
        # The greylisting service: a triplet is taken 60 s after it was first seen.
        $script:policy = Start-Process -FilePath 'dotnet' -ArgumentList @((Join-Path $RepoRoot 'out/testservers/ResilientMail.TestServers.dll'), 'greylist', '--port', $policyPort, '--delay', '60') `
            -PassThru -RedirectStandardOutput $policyLog -RedirectStandardError "$policyLog.err"
        $null = Wait-Until { Test-TcpPort $policyPort } 30
        $script:pf = Start-Postfix -RelayPort $sink.SmtpPort
        # A second instance for the minute-long rate-limit case, which runs beside the minute-long greylisting case.
        $script:pfRate = Start-Postfix -RelayPort $sink.SmtpPort -Settings @{ smtpd_client_message_rate_limit = '10'; anvil_rate_time_unit = '60s' }
    }
    function Start-RateJob {
        $script:rateJob = Start-ThreadJob -ScriptBlock {
            param($Module, $Port)
            Import-Module $Module
            $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $Port
            $warnings = [System.Collections.Generic.List[string]]::new()
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $rows = 1..20 | ForEach-Object { [pscustomobject]@{ Email = "r$_@rate.example" } }
            $info = $rows | Start-MailCampaign -Name 'pf-rate' -Transport $t -From it@example.com -Subject s -Body b -NoDelay -Concurrency 2 3>&1 | ForEach-Object {
                if ($_ -is [System.Management.Automation.WarningRecord]) { $warnings.Add($_.Message) } else { $_ }
            } | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
            @{ Info = $info; Warnings = @($warnings); Seconds = $clock.Elapsed.TotalSeconds }
        } -ArgumentList $ModulePath, $pfRate.Port
    }
    # The campaign completed with every row sent, and smtp4dev holds each of the domain's recipients exactly once.
    function Assert-EveryoneOnce($Info, [string]$Domain, [int]$Count) {
        $Info.State | Should -Be 'Completed'
        $Info.Sent | Should -Be $Count
        $Info.Failed | Should -Be 0
        Wait-Until { (Delivered $Domain).Count -ge $Count } 30 | Should -BeTrue
        @(Delivered $Domain).Count | Should -Be $Count
        @(Delivered $Domain | Group-Object { "$($_.to)" } | Where-Object Count -ne 1).Count | Should -Be 0
    }
    function Skip-WithoutPostfix { if ($why) { Set-ItResult -Skipped -Because $why; $true } else { $false } }
    function Delivered([string]$Domain) { @(Get-Smtp4devMessage $sink | Where-Object { "$($_.to)" -match [regex]::Escape($Domain) }) }
    function Rows([string]$Domain, [int]$Count) { 1..$Count | ForEach-Object { [pscustomobject]@{ Email = "r$_@$Domain" } } }
    function Run-Campaign([string]$Name, $Rows, [hashtable]$More = @{}) {
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $pf.Port
        $script:verbose = [System.Collections.Generic.List[string]]::new()
        $script:warnings = [System.Collections.Generic.List[string]]::new()
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $out = $Rows | Start-MailCampaign -Name $Name -Transport $t -From it@example.com -Subject s -Body b -NoDelay @More -Verbose 4>&1 3>&1 | ForEach-Object {
            if ($_ -is [System.Management.Automation.VerboseRecord]) { $verbose.Add($_.Message) }
            elseif ($_ -is [System.Management.Automation.WarningRecord]) { $warnings.Add($_.Message) }
            else { $_ }
        }
        $script:took = $clock.Elapsed
        $out
    }
}

AfterAll {
    if ($rateJob) { $rateJob | Remove-Job -Force }
    if ($pfRate) { Stop-Postfix $pfRate }
    if ($pf) { Stop-Postfix $pf }
    if ($policy -and -not $policy.HasExited) { $policy.Kill($true) }
    if ($sink) { Stop-Smtp4dev $sink }
    Remove-Item Env:RESILIENTMAIL_DATA -ErrorAction SilentlyContinue
}

Describe 'Campaigns against Postfix' {
    It 'greylisting for 60 s: every recipient is deferred once, to when the server said, and all are delivered in one run' {
        if (Skip-WithoutPostfix) { return }
        # The rate-limit case (next) takes a minute too: it runs meanwhile, on its own instance, and is checked there.
        Start-RateJob
        Set-PostfixSettings $pf @{ smtpd_recipient_restrictions = "check_policy_service inet:127.0.0.1:$policyPort" }
        try {
            $out = Run-Campaign 'pf-grey' (Rows 'grey.example' 12) @{ Concurrency = 4 }
        } finally { Set-PostfixSettings $pf @{ smtpd_recipient_restrictions = $null } }
        Assert-EveryoneOnce ($out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }) 'grey.example' 12
        # The server said "for 60 seconds": no quick retry was spent on it, each recipient was refused once and taken once.
        @(Get-PostfixLog $pf -Match 'Greylisted for 60 seconds').Count | Should -Be 12
        ($verbose -join "`n") | Should -Match 'Deferred r\d+@grey.example after 1 attempt'
        # Close to what the policy allows: 60 s after each first try.
        $took.TotalSeconds | Should -BeGreaterThan 59
        $took.TotalSeconds | Should -BeLessThan 80
    }

    It 'smtpd_client_message_rate_limit = 10 a minute: nothing is failed, the pace is learned, and the run takes what the limit allows' {
        if (Skip-WithoutPostfix) { return }
        if (-not $rateJob) { Start-RateJob } # run alone (a filter): not started beside the greylisting case
        $rateJob | Wait-Job -Timeout 180 | Should -Not -BeNullOrEmpty
        $r = $rateJob | Receive-Job
        Assert-EveryoneOnce $r.Info 'rate.example' 20
        @(Get-PostfixLog $pfRate -Match 'delivery request rate limit exceeded').Count | Should -BeGreaterThan 0
        # One warning when the server first said so, one that says what the campaign settled on.
        @($r.Warnings | Where-Object { $_ -match 'limits how fast this client may send' }).Count | Should -Be 1
        ($r.Warnings -join "`n") | Should -Match 'settled at 10 messages in \d'
        # Two windows of ten: the second begins a minute after the first.
        $r.Seconds | Should -BeGreaterThan 59
        $r.Seconds | Should -BeLessThan 80
    }

    It 'smtpd_client_connection_count_limit = 2 with -Concurrency 4: refused connections cost no message, and the run says it sends with 2' {
        if (Skip-WithoutPostfix) { return }
        Set-PostfixSettings $pf @{ smtpd_client_connection_count_limit = '2' }
        try {
            $out = Run-Campaign 'pf-conn' (Rows 'conn.example' 40) @{ Concurrency = 4 }
        } finally { Set-PostfixSettings $pf @{ smtpd_client_connection_count_limit = $null } }
        Assert-EveryoneOnce ($out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }) 'conn.example' 40
        @(Get-PostfixLog $pf -Match 'Connection concurrency limit exceeded').Count | Should -BeGreaterThan 0
        $said = @($warnings | Where-Object { $_ -match 'refused a new connection' })
        $said.Count | Should -Be 1
        $said[0] | Should -Match 'Sending with 2 connections instead of 4'
    }

    It 'an access-map entry lifted mid-run: the retry comes in a fresh session, sees the change and delivers' {
        if (Skip-WithoutPostfix) { return }
        $map = Join-Path $pf.Dir 'etc/access'
        Set-Content $map 'held@lift.example 450 4.7.1 Held for review'
        Set-PostfixSettings $pf @{ smtpd_recipient_restrictions = "check_recipient_access texthash:$map" }
        try {
            $rows = @([pscustomobject]@{ Email = 'held@lift.example' }) + @(Rows 'lift.example' 5)
            $lifter = Start-ThreadJob -ScriptBlock {
                param($Log, $Map, $Module, $Server)
                Import-Module $Module
                $deadline = [DateTime]::UtcNow.AddSeconds(30)
                while (-not (Select-String -Path $Log -Pattern 'Held for review' -Quiet -ErrorAction SilentlyContinue) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
                Set-Content $Map ''
                Set-PostfixSettings $Server @{}
            } -ArgumentList $pf.Log, $map, (Join-Path $RepoRoot 'build/Postfix.psm1'), $pf
            $out = Run-Campaign 'pf-lift' $rows @{ Concurrency = 1; RetryBaseDelay = 2 }
            $null = $lifter | Wait-Job -Timeout 60
        } finally { Set-PostfixSettings $pf @{ smtpd_recipient_restrictions = $null } }
        @(Get-PostfixLog $pf -Match 'Held for review').Count | Should -BeGreaterThan 0
        Assert-EveryoneOnce ($out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }) 'lift.example' 6
        @(Delivered 'lift.example' | Where-Object { "$($_.to)" -match 'held@' }).Count | Should -Be 1
    }
}
