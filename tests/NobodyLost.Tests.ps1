# Issue "Nobody lost, for real": each case through the built module, against the scripted SMTP server (rules as real
# servers answer), the SendGrid fake or a pickup folder; all on loopback.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Module (Join-Path $RepoRoot 'build/TestServers.psm1') -Force
    $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
    $script:servers = [System.Collections.Generic.List[object]]::new()
    function New-Smtp([string[]]$Rule = @(), [string]$Ehlo, [string]$Auth) {
        $s = Start-ScriptedSmtp -Rule $Rule -Ehlo $Ehlo -Auth $Auth
        $servers.Add($s)
        $s
    }
    function Send-Via($Server) { @{ SmtpServer = '127.0.0.1'; Port = $Server.Port; From = 'it@example.com'; NoDelay = $true; RetryBaseDelay = 0.05; RetryMaxDelay = 0.2 } }
    function Catch-Error([scriptblock]$Block) { try { & $Block | Out-Null; $null } catch { $_ } }
    function Get-Pickup([string]$Dir) { @(Get-ChildItem $Dir -Filter *.eml -ErrorAction SilentlyContinue) }
    function Get-PickupTo([string]$Dir) { Get-Pickup $Dir | ForEach-Object { (Select-String -Path $_.FullName -Pattern '^To: (.*)$').Matches[0].Groups[1].Value.Trim() } }
}

AfterAll {
    foreach ($s in $servers) { if (-not $s.Process.HasExited) { $s.Process.Kill($true) } }
    Remove-Item Env:RESILIENTMAIL_DATA -ErrorAction SilentlyContinue
}

Describe 'Replies are classified by their basic code' {
    It 'retries greylisting answered 451 5.7.1 and delivers once' {
        $s = New-Smtp -Rule 'Rcpt|a@example.com|451 5.7.1 Greylisted, please try again later|1'
        $p = Send-Via $s
        $r = Send-ResilientMail @p -To a@example.com -Subject g -Body b
        $r.Status | Should -Be 'Sent'
        $r.Attempts | Should -Be 2
        @(Get-ScriptedSmtpRecord $s -Messages).Count | Should -Be 1
    }

    It 'does not retry 550 with a 4.x.x enhanced code' {
        $s = New-Smtp -Rule 'Rcpt|a@example.com|550 4.7.1 Client host rejected|0'
        $p = Send-Via $s
        $r = Send-ResilientMail @p -To a@example.com -Subject g -Body b -ErrorAction SilentlyContinue -ErrorVariable errs
        $r.Status | Should -Be 'Failed'
        $r.Attempts | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'RecipientRejected,*'
    }

    It 'names a size refusal at MAIL FROM as a message too large, not a refused sender' {
        $s = New-Smtp -Rule 'Mail||552 5.3.4 Message size exceeds fixed limit|0'
        $p = Send-Via $s
        $r = Send-ResilientMail @p -To a@example.com -Subject big -Body b -ErrorAction SilentlyContinue -ErrorVariable errs
        $r.Status | Should -Be 'Failed'
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'MessageTooLarge,*'
        $errs[0].Exception.Message | Should -Match 'larger than the server accepts'
        $errs[0].Exception.Message | Should -Not -Match 'rejected the sender'
    }
}

Describe 'Each recipient has its own fate' {
    It 'delivers to the accepted recipients and reports the refused one by address' {
        $s = New-Smtp -Rule 'Rcpt|b@example.com|550 5.1.1 <b@example.com>: Recipient address rejected: User unknown|0'
        $p = Send-Via $s
        $r = Send-ResilientMail @p -To a@example.com, b@example.com, c@example.com -Subject p -Body b -ErrorAction SilentlyContinue -ErrorVariable errs
        $r.Status | Should -Be 'PartiallySent'
        $r.Delivered | Should -Be @('a@example.com', 'c@example.com')
        $r.Refused | Should -HaveCount 1
        $r.Refused[0] | Should -Match '^b@example.com: 550 5\.1\.1'
        $r.Error | Should -Match 'Delivered to 2 of 3'
        @($errs).Count | Should -Be 1
        $errs[0].TargetObject | Should -Be 'b@example.com'
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'RecipientRejected,*'
        $errs[0].Exception.Message | Should -Match '550 5\.1\.1'
        @(Get-ScriptedSmtpRecord $s -Messages).Count | Should -Be 1
        $rcpt = @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'RCPT TO*' })
        $rcpt.Count | Should -Be 3 # nobody was retried
    }

    It 'sends recipients over the per-transaction cap (452 4.5.3) in a further transaction, each once' {
        $s = New-Smtp -Rule 'Rcpt|r3@example.com|452 4.5.3 Error: too many recipients|1', 'Rcpt|r4@example.com|452 4.5.3 Error: too many recipients|1'
        $p = Send-Via $s
        $to = 1..4 | ForEach-Object { "r$_@example.com" }
        $r = Send-ResilientMail @p -To $to -Subject cap -Body b
        $r.Status | Should -Be 'Sent'
        $r.Attempts | Should -Be 1
        $r.Delivered | Should -Be $to
        @(Get-ScriptedSmtpRecord $s -Messages).Count | Should -Be 2
        $rcpt = @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'RCPT TO*' })
        foreach ($a in 'r1', 'r2') { @($rcpt -match "<$a@").Count | Should -Be 1 }
        foreach ($a in 'r3', 'r4') { @($rcpt -match "<$a@").Count | Should -Be 2 } # refused once with 452, then taken
    }

    It 'sends an international address with SMTPUTF8 when the server offers it' {
        $s = New-Smtp -Ehlo '8BITMIME SMTPUTF8'
        $p = Send-Via $s
        $r = Send-ResilientMail @p -To 'jörg@example.com' -Subject i -Body b
        $r.Status | Should -Be 'Sent'
        (Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'MAIL FROM*' } | Select-Object -First 1) | Should -Match ' SMTPUTF8'
    }

    It 'fails an international address clearly for its row when the server does not offer SMTPUTF8' {
        $s = New-Smtp
        $p = Send-Via $s
        $rows = [pscustomobject]@{ Email = 'jörg@example.com' }, [pscustomobject]@{ Email = 'ann@example.com' }
        $r = $rows | Send-ResilientMail @p -Subject i -Body b -ErrorAction SilentlyContinue -ErrorVariable errs
        $r.Status | Should -Be @('Failed', 'Sent')
        $errs[0].Exception.Message | Should -Match 'does not offer SMTPUTF8'
        $errs[0].TargetObject | Should -Be 'jörg@example.com'
        @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'RCPT TO*' }) | Should -Be @('RCPT TO:<ann@example.com>')
    }

    It 'takes an empty Cc or Bcc cell as no copy' {
        $s = New-Smtp
        $p = Send-Via $s
        $rows = "Email,Cc,Bcc`na@example.com,,`nb@example.com,boss@example.com," | ConvertFrom-Csv
        $r = $rows | Send-ResilientMail @p -Subject c -Body b
        $r.Status | Should -Be @('Sent', 'Sent')
        $rcpt = @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'RCPT TO*' })
        $rcpt | Should -Be @('RCPT TO:<a@example.com>', 'RCPT TO:<b@example.com>', 'RCPT TO:<boss@example.com>')
    }
}

Describe 'One wrong password is one failed login' {
    It 'tries one SASL mechanism once' {
        $s = New-Smtp -Auth 'PLAIN LOGIN' -Rule 'Auth||535 5.7.8 Error: authentication failed|0'
        $p = Send-Via $s
        $e = Catch-Error { Send-ResilientMail @p -Credential (New-TestCredential 'alice' 'Wr0ng-Pass!') -To a@example.com -Subject s -Body b -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'AuthenticationFailed,*'
        @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'AUTH*' }).Count | Should -Be 1
        "$($e.Exception.Message) $(Get-Content $s.Record -Raw)" | Should -Not -Match 'Wr0ng-Pass!'
    }
}

Describe 'Setup errors stop before anything is sent' {
    It 'refuses a missing or folder attachment for a campaign before journaling any row, and sends after it is fixed' {
        $pickup = Join-Path $TestDrive 'attach-out'
        $t = New-MailTransport -PickupDirectory $pickup
        $file = Join-Path $TestDrive 'policy.pdf'
        $rows = 1..3 | ForEach-Object { [pscustomobject]@{ Email = "att$_@example.com" } }
        $e = Catch-Error { $rows | Start-MailCampaign -Name 'attach' -Transport $t -From a@example.com -Subject s -Body b -Attachments $file -NoDelay -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'AttachmentNotFound,*'
        $e.Exception.Message | Should -Match 'Nothing was sent'
        Get-MailCampaign -Name 'attach' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $e = Catch-Error { $rows | Start-MailCampaign -Name 'attach' -Transport $t -From a@example.com -Subject s -Body b -Attachments $TestDrive -NoDelay -ErrorAction Stop }
        $e.Exception.Message | Should -Match 'is a folder'
        Get-Pickup $pickup | Should -BeNullOrEmpty

        Set-Content $file 'policy'
        $info = $rows | Start-MailCampaign -Name 'attach' -Transport $t -From a@example.com -Subject s -Body b -Attachments $file -NoDelay | Select-Object -Last 1
        $info.State | Should -Be 'Completed'
        $info.Sent | Should -Be 3
        (Get-Pickup $pickup).Count | Should -Be 3
    }

    It 'refuses a missing attachment given to Send-ResilientMail once, not once per row' {
        $s = New-Smtp
        $p = Send-Via $s
        $rows = 1..3 | ForEach-Object { [pscustomobject]@{ Email = "att$_@example.com" } }
        $e = Catch-Error { $rows | Send-ResilientMail @p -Subject s -Body b -Attachments (Join-Path $TestDrive 'missing.txt') -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'AttachmentNotFound,*'
        @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'MAIL FROM*' }).Count | Should -Be 0
    }
}

Describe 'A piped campaign knows whether its input was read to the end' {
    It 'is never Completed after an interrupted pipe; the same input piped again sends the rest once' {
        $pickup = Join-Path $TestDrive 'piped-out'
        $t = New-MailTransport -PickupDirectory $pickup
        $log = Join-Path $TestDrive 'piped.log.jsonl'
        $rows = 1..60 | ForEach-Object { [pscustomobject]@{ Email = "p$_@example.com" } }
        # Ctrl+C after a few rows: PowerShell's own stop (what Ctrl+C does), in a runspace of its own.
        $ps = [powershell]::Create()
        $null = $ps.AddScript({
            param($module, $rows, $t, $data, $log)
            $env:RESILIENTMAIL_DATA = $data
            Import-Module $module
            $rows | Start-MailCampaign -Name 'piped' -Transport $t -From a@example.com -Subject s -Body b -MinGap 0.1 -MaxGap 0.1 -LogPath $log
        }).AddArgument($ModulePath).AddArgument($rows).AddArgument($t).AddArgument($env:RESILIENTMAIL_DATA).AddArgument($log)
        $async = $ps.BeginInvoke()
        Wait-Until { (Get-Pickup $pickup).Count -ge 5 } 30 | Should -BeTrue
        $ps.Stop()
        $ps.Dispose()

        # What Ctrl+C left: a summary line (in the log too), and a campaign that is not Completed.
        $end = Get-Content $log | ForEach-Object { $_ | ConvertFrom-Json } | Where-Object { $_.kind -eq 'end' -or $_.event -eq 'end' -or $_.type -eq 'end' } | Select-Object -Last 1
        "$($end | ConvertTo-Json -Compress)" | Should -Match "Campaign 'piped' stopped: sent \d+, failed 0, uncertain \d+, not yet sent \d+.*resume with: <the same input> \| Start-MailCampaign -Name 'piped' -Resume"
        $sentBefore = (Get-Pickup $pickup).Count
        $info = Get-MailCampaign -Name 'piped'
        $info.State | Should -Not -Be 'Completed'
        $info.InputComplete | Should -BeFalse
        $info.RowsRead | Should -BeGreaterOrEqual $sentBefore
        $info.RowsRead | Should -BeLessThan 60
        $info.NextStep | Should -BeLike "<the same input> | Start-MailCampaign -Name 'piped' -Resume*"

        # A resume by name alone says what it cannot know, and does not claim Completed.
        $byName = Start-MailCampaign -Name 'piped' -Resume -NoDelay -WarningVariable warned -WarningAction SilentlyContinue | Select-Object -Last 1
        $byName.State | Should -Be 'Incomplete'
        ($warned -join ' ') | Should -Match 'never read to its end'
        ($warned -join ' ') | Should -Match '<the same input> \| Start-MailCampaign'

        # The same input again: rows in the journal are skipped, the rest added and sent; every row exactly once.
        $final = $rows | Start-MailCampaign -Name 'piped' -Resume -NoDelay | Select-Object -Last 1
        $final.State | Should -Be 'Completed'
        $final.InputComplete | Should -BeTrue
        $final.Sent | Should -Be 60
        $to = Get-PickupTo $pickup
        $to.Count | Should -Be 60
        ($to | Sort-Object -Unique).Count | Should -Be 60
        (Get-MailCampaign -Name 'piped').State | Should -Be 'Completed'
    }

    It 'says how many messages were sent when Send-ResilientMail is stopped' {
        $s = New-Smtp
        $p = Send-Via $s
        $log = Join-Path $TestDrive 'stopped.log.jsonl'
        $rows = 1..200 | ForEach-Object { [pscustomobject]@{ Email = "s$_@example.com" } }
        $ps = [powershell]::Create()
        $null = $ps.AddScript({
            param($module, $rows, $port, $log)
            Import-Module $module
            $rows | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $port -From a@example.com -Subject s -Body b -MinGap 0.05 -MaxGap 0.05 -LogPath $log
        }).AddArgument($ModulePath).AddArgument($rows).AddArgument($s.Port).AddArgument($log)
        $null = $ps.BeginInvoke()
        Wait-Until { @(Get-ScriptedSmtpRecord $s -Messages).Count -ge 3 } 30 | Should -BeTrue
        $ps.Stop()
        $ps.Dispose()
        $text = Get-Content $log -Raw
        $text | Should -Match 'Send-ResilientMail stopped: sent \d+, failed 0, uncertain \d+, not sent \d+ of the \d+ message\(s\) read'
        $sent = [int]([regex]::Match($text, 'stopped: sent (\d+)').Groups[1].Value)
        $sent | Should -Be @(Get-ScriptedSmtpRecord $s -Messages).Count
    }
}

Describe 'Runbook preferences and one outage' {
    It 'waits for the network under -Debug in a non-interactive host' {
        $closed = [System.Net.Sockets.Socket]::new([System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
        $closed.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, 0))
        try {
            $out = Invoke-FreshPwsh @"
Import-Module '$ModulePath'
try {
    Send-ResilientMail -SmtpServer 127.0.0.1 -Port $($closed.LocalEndPoint.Port) -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -ConnectionCheckInterval 1 -ConnectionWaitTimeout 2 -Debug -ErrorAction Stop
} catch { "ERRORID=`$(`$_.FullyQualifiedErrorId)" }
"@
        } finally { $closed.Dispose() }
        ($out -join "`n") | Should -Match 'ERRORID=ConnectivityLost,'
        ($out -join "`n") | Should -Not -Match 'NonInteractive mode'
    }

    It 'warns once when a campaign with four connections loses its server' {
        $closed = [System.Net.Sockets.Socket]::new([System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
        $closed.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, 0))
        try {
            $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $closed.LocalEndPoint.Port
            $rows = 1..8 | ForEach-Object { [pscustomobject]@{ Email = "o$_@example.com" } }
            $e = $null
            try {
                $rows | Start-MailCampaign -Name 'outage4' -Transport $t -From a@example.com -Subject s -Body b -NoDelay -Concurrency 4 `
                    -ConnectionCheckInterval 1 -ConnectionWaitTimeout 2 -WarningVariable warned -WarningAction SilentlyContinue -ErrorAction Stop | Out-Null
            } catch { $e = $_ }
        } finally { $closed.Dispose() }
        $e.FullyQualifiedErrorId | Should -BeLike 'CampaignPaused,*'
        @($warned | Where-Object { "$_" -match 'Waiting for it to come back' }).Count | Should -Be 1
    }
}

Describe 'Uncertain is impossible to miss' {
    It 'warns with the command that resends the uncertain ones, and a plain resume never sends them' {
        $s = New-Smtp -Rule 'DataEnd||(reset)|1'
        $p = Send-Via $s
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $s.Port
        $rows = 1..3 | ForEach-Object { [pscustomobject]@{ Email = "u$_@example.com" } }
        $info = $rows | Start-MailCampaign -Name 'uncertain' -Transport $t -From a@example.com -Subject s -Body b -NoDelay -RetryBaseDelay 0.05 `
            -WarningVariable warned -WarningAction SilentlyContinue -ErrorAction SilentlyContinue | Select-Object -Last 1
        $info.State | Should -Be 'Completed'
        $info.Uncertain | Should -Be 1
        $info.NextStep | Should -Match '-ResendUncertain'
        ($warned -join ' ') | Should -Match '1 recipient\(s\) of campaign ''uncertain'' are Uncertain'
        ($warned -join ' ') | Should -Match "Start-MailCampaign -Name 'uncertain' -Resume -ResendUncertain"
        $before = @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'RCPT TO*u1@*' }).Count
        $again = Start-MailCampaign -Name 'uncertain' -Resume -NoDelay -WarningVariable warned2 -WarningAction SilentlyContinue | Select-Object -Last 1
        $again.Uncertain | Should -Be 1
        ($warned2 -join ' ') | Should -Match 'ResendUncertain'
        @(Get-ScriptedSmtpRecord $s -Commands | Where-Object { $_ -like 'RCPT TO*u1@*' }).Count | Should -Be $before
    }
}

Describe 'HTTP providers' {
    BeforeAll {
        $script:Key = 'SG.nobody-lost-key.Hy6Tr4Ew2Qa'
        $script:sg = Start-FakeSendGrid -ApiKey $Key
        $script:sgT = New-MailTransport -SendGrid -ApiKey (ConvertTo-SecureString $Key -AsPlainText -Force) -BaseUri $sg.BaseUri
    }
    AfterAll { if ($sg) { Stop-TestServer $sg } }
    BeforeEach { Reset-Fake $sg }

    It 'never follows a redirect: the message is not posted elsewhere and the result names the Location' {
        Add-FakeFault $sg @{ Status = 307; Headers = @{ Location = "$($sg.BaseUri)/elsewhere/v3/mail/send" } }
        $r = Send-ResilientMail -Transport $sgT -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -ErrorAction SilentlyContinue -ErrorVariable errs
        $r.Status | Should -Be 'Failed'
        $r.Attempts | Should -Be 1
        $r.Error | Should -Match 'redirect \(307 to .*/elsewhere/v3/mail/send\)'
        @(Get-FakeRequest $sg).Count | Should -Be 1
        @(Get-FakeRequest $sg | Where-Object Path -like '/elsewhere*').Count | Should -Be 0
    }

    It 'keeps a send that may have been delivered Uncertain when the retries then fail' {
        Add-FakeFault $sg @{ Abort = $true }, @{ Status = 503; Body = '{"errors":[{"message":"unavailable"}]}'; Times = 3 }
        $r = Send-ResilientMail -Transport $sgT -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -RetryUncertain -RetryBaseDelay 0.05 -ErrorAction SilentlyContinue
        $r.Attempts | Should -Be 4
        $r.Status | Should -Be 'Uncertain'
        $r.Error | Should -Match 'may have delivered'
    }
}

Describe 'Connection limits cost no message' {
    It 'sends every row once and fails none when the server gives fewer connections than -Concurrency asks, with at most one warning' {
        $s = Start-ScriptedSmtp -MaxConnections 2
        $servers.Add($s)
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $s.Port
        $out = 1..120 | ForEach-Object { [pscustomobject]@{ Email = "cl$_@example.com" } } |
            Start-MailCampaign -Name 'connlimit' -Transport $t -From it@example.com -Subject s -Body b -NoDelay -Concurrency 4 -WarningVariable warned -WarningAction SilentlyContinue
        $info = $out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
        $info.State | Should -Be 'Completed'
        $info.Sent | Should -Be 120
        $info.Failed | Should -Be 0
        @($out | Where-Object { $_ -isnot [ResilientMail.MailCampaignInfo] -and $_.Attempts -gt 1 }).Count | Should -Be 0
        # Whether the third and fourth connections were asked for while two were open depends on how the rows fell to
        # the workers; when they were, one warning says so (the xunit test makes it certain).
        $said = @($warned | Where-Object { "$_" -match 'refused a new connection' })
        $said.Count | Should -BeLessOrEqual 1
        if ($said) { "$($said[0])" | Should -Match 'Sending with \d connections? instead of 4' }
        @(Get-ScriptedSmtpRecord $s -Messages).Count | Should -Be 120
    }
}

Describe 'Deferral, not failure' {
    It 'Send-ResilientMail keeps no message for later: its results stay in input order, and the error says where deferral is' {
        $s = New-Smtp -Rule 'Rcpt|grey@example.com|451 4.7.1 Greylisted, please try again later|0'
        $rows = 'a@example.com', 'grey@example.com', 'b@example.com' | ForEach-Object { [pscustomobject]@{ To = $_ } }
        $errs = $null
        $via = Send-Via $s
        $out = $rows | Send-ResilientMail @via -Subject s -Body b -ErrorVariable errs -ErrorAction SilentlyContinue
        ($out | ForEach-Object To) -join ',' | Should -Be 'a@example.com,grey@example.com,b@example.com'
        ($out | ForEach-Object { "$($_.Status)" }) -join ',' | Should -Be 'Sent,Failed,Sent'
        $out[1].Attempts | Should -Be 4
        $errs.Count | Should -Be 1
        $errs[0].ErrorDetails.RecommendedAction | Should -Match 'Start-MailCampaign, which sets such messages aside in its journal'
    }


    It 'sets a greylisted recipient aside while the rest goes on, and delivers it on the longer schedule' {
        $s = New-Smtp -Rule 'Rcpt|grey@example.com|451 4.7.1 Greylisted, please try again later|4'
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $s.Port
        $rows = @([pscustomobject]@{ Email = 'grey@example.com' }) + @(1..5 | ForEach-Object { [pscustomobject]@{ Email = "fine$_@example.com" } })
        $verbose = @()
        $out = $rows | Start-MailCampaign -Name 'greylisted' -Transport $t -From it@example.com -Subject s -Body b -NoDelay -RetryBaseDelay 0.05 -RetryMaxDelay 0.2 `
            -DeferralInterval 1 -Verbose 4>&1 | ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { $verbose += $_.Message } else { $_ } }
        $info = $out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
        $info.State | Should -Be 'Completed'
        $info.Sent | Should -Be 6
        $info.Failed | Should -Be 0
        ($verbose -join "`n") | Should -Match 'Deferred grey@example.com after 4 attempts'
        $delivered = @(Get-ScriptedSmtpRecord $s -Messages)
        $delivered.Count | Should -Be 6
        # The five others were delivered before the greylisted one came due again.
        ($delivered[-1] | Out-String) | Should -Match 'grey@example.com'
    }
}
