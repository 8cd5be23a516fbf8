BeforeAll {
    . $PSScriptRoot/Common.ps1
    $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
    $script:server = Start-Smtp4dev
    $script:smtp = New-MailTransport -SmtpServer 127.0.0.1 -Port $server.SmtpPort
    $script:common = @{ Transport = $smtp; From = 'News <news@example.com>'; NoDelay = $true }

    Import-Module (Join-Path $RepoRoot 'build/TestServers.psm1') -Force
    # The journal-store tests run every campaign test below against both stores: the local file and Azure Blob Storage (Azurite).
    $script:azurite = Start-Azurite
    function Get-Delivered($s = $server) { @(Get-Smtp4devMessage $s) }
    function New-Rows([int]$Count, [string]$Prefix = 'r') {
        1..$Count | ForEach-Object { [pscustomobject]@{ Email = "$Prefix$_@example.com"; FirstName = "Name$_" } }
    }
}

AfterAll {
    if ($server) { Stop-Smtp4dev $server }
    if ($azurite) { Stop-TestServer $azurite }
    Remove-Item Env:RESILIENTMAIL_DATA -ErrorAction SilentlyContinue
}

Describe 'New-MailTransport' {
    It 'never shows the password when printed or serialised' {
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port 2525 -UseStartTls -Credential (New-TestCredential 'alice' 'T0p-Secret-9')
        $t.UserName | Should -Be 'alice'
        $t.HasCredential | Should -BeTrue
        $file = Join-Path $TestDrive 'transport.xml'
        $t | Export-Clixml $file
        foreach ($text in @(($t | Format-List * | Out-String), ($t | ConvertTo-Json -Depth 5), (Get-Content $file -Raw), "$t")) {
            $text | Should -Not -Match 'T0p-Secret-9'
        }
    }

    It 'makes a pickup-directory transport that writes whole .eml files' {
        $dir = Join-Path $TestDrive 'outbox'
        $t = New-MailTransport -PickupDirectory $dir
        $t.Kind | Should -Be 'PickupDirectory'
        $r = New-Rows 3 'p' | Send-ResilientMail -Transport $t -From it@example.com -Subject 'Hi {{FirstName}}' -Body 'b' -NoDelay
        $r.Status | Should -Be @('Sent', 'Sent', 'Sent')
        @(Get-ChildItem $dir -Filter *.eml).Count | Should -Be 3
        @(Get-ChildItem $dir -Force -Filter *.tmp).Count | Should -Be 0
        (Get-Content (Get-ChildItem $dir -Filter *.eml)[0] -Raw) | Should -Match 'Subject: Hi Name\d'
    }

    It 'takes an OAuth2 token with its mailbox (or as one credential) and never shows the token' {
        $token = ConvertTo-SecureString 'ya29.pester-token-ABCDEF123456' -AsPlainText -Force
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port 2525 -UseStartTls -UserName ops@example.com -OAuthToken $token
        $t.UsesOAuth | Should -BeTrue
        $t.UserName | Should -Be 'ops@example.com'
        $t.CredentialSource | Should -Be 'OAuth2 token (parameter)'
        "$t" | Should -Match 'OAuth2'
        $c = New-MailTransport -SmtpServer 127.0.0.1 -OAuthCredential ([pscredential]::new('ops@example.com', $token))
        $c.UsesOAuth | Should -BeTrue
        foreach ($text in @(($t | Format-List * | Out-String), ($t | ConvertTo-Json -Depth 5), ($c | Format-List * | Out-String))) {
            $text | Should -Not -Match 'pester-token'
        }
        { New-MailTransport -SmtpServer 127.0.0.1 -OAuthToken $token } | Should -Throw -ExpectedMessage '*-UserName*'
        { New-MailTransport -SmtpServer 127.0.0.1 -UserName a@example.com -OAuthToken $token -Credential (New-TestCredential 'a' 'b') } | Should -Throw -ExpectedMessage '*not both*'
    }

    It 'refuses conflicting TLS switches' {
        { New-MailTransport -SmtpServer x.example.com -UseSsl -UseStartTls } | Should -Throw -ErrorId 'ConflictingTlsOptions,ResilientMail.Commands.NewMailTransportCommand'
    }
}

Describe 'Campaigns with the journal in <Store>' -ForEach @(@{ Store = 'a local file' }, @{ Store = 'Azure Blob Storage (Azurite)' }) {
    BeforeAll {
        # One set of tests, two stores. Each store starts with no campaigns: its own data folder, its own container.
        $env:RESILIENTMAIL_DATA = Join-Path $TestDrive "data-$($Store.Length)"
        $script:OnBlob = $Store -like 'Azure*'
        $script:J = @{}
        $script:JText = ''
        if ($OnBlob) {
            $container = $azurite.Container("campaigns-$([guid]::NewGuid().ToString('n').Substring(0, 8))")
            $script:J = @{ JournalStore = $container; JournalStoreSecret = (ConvertTo-SecureString $azurite.ConnectionString -AsPlainText -Force) }
            $script:JText = "-JournalStore '$container' -JournalStoreSecret (ConvertTo-SecureString '$($azurite.ConnectionString)' -AsPlainText -Force)"
        }
        # What the store holds, as text: the journal file, or every file of Azurite's data folder (blobs are kept there as written).
        function Get-StoredText($info) {
            if ($OnBlob) { (Get-ChildItem $azurite.Location -Recurse -File | ForEach-Object { [IO.File]::ReadAllText($_.FullName) }) -join "`n" }
            else { Get-Content $info.JournalPath -Raw }
        }
    }

    Describe 'Start-MailCampaign against smtp4dev' {
        BeforeEach { Clear-Smtp4dev $server }

        It 'delivers every row once, with List-Unsubscribe headers, and journals it' {
            $out = New-Rows 30 | Start-MailCampaign @J -Name 'thirty' @common -Subject 'News for {{FirstName}}' -HtmlBody '<p>Hi {{FirstName}}</p>' `
                -UnsubscribeUrl 'https://example.com/unsub?e={{Email}}' -UnsubscribeMailto 'unsub@example.com'
            $results = @($out | Where-Object { $_ -is [ResilientMail.CampaignRecipientResult] })
            $summary = $out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
            $results.Count | Should -Be 30
            $summary.State | Should -Be 'Completed'
            $summary.Sent | Should -Be 30
            $summary.Remaining | Should -Be 0
            $delivered = Get-Delivered
            $delivered.Count | Should -Be 30
            ($delivered.to | Sort-Object -Unique).Count | Should -Be 30
            $raw = (Get-Smtp4devMessageSource $server ($delivered | Where-Object { $_.to -eq 'r7@example.com' }).id) -replace "`r`n[ `t]+", ' '
            $raw | Should -Match 'List-Unsubscribe: <https://example.com/unsub\?e=r7%40example.com>, <mailto:unsub@example.com>'
            $raw | Should -Match 'List-Unsubscribe-Post: List-Unsubscribe=One-Click'
            $raw | Should -Match 'Subject: News for Name7'
            $info = Get-MailCampaign @J -Name 'thirty'
            $info.State | Should -Be 'Completed'
            $info.Sent | Should -Be 30
            @(Get-MailCampaign @J -Name 'thirty' -Recipients -Status Sent).Count | Should -Be 30
            (Get-MailCampaign @J -Name 'thirty' -Recipients | Select-Object -First 1).MessageId | Should -Not -BeNullOrEmpty
        }

        It 'reads a CSV file with unicode names and IDN addresses; duplicates once; a CR/LF row fails alone' {
            $csv = Join-Path $TestDrive 'list.csv'
            @'
Email,FirstName
jose.muller@example.com,José
用户@例子.广告,用户
JOSE.MULLER@example.com,José again
ada@example.com,"Ada
Bcc: victim@example.com"
grace@example.com,Grace
'@ | Set-Content $csv -Encoding utf8
            $errs = $null
            $out = Start-MailCampaign @J -Name 'unicode' -Path $csv @common -Subject 'Hola {{FirstName}}' -Body 'x' -ErrorVariable errs -ErrorAction SilentlyContinue
            $results = @($out | Where-Object { $_ -is [ResilientMail.CampaignRecipientResult] })
            ($results | Where-Object Status -eq 'Duplicate').To | Should -Be 'JOSE.MULLER@example.com'
            ($results | Where-Object Status -eq 'Failed').To | Should -Be 'ada@example.com'
            $errs[0].FullyQualifiedErrorId | Should -BeLike 'HeaderInjection,*'
            $delivered = Get-Delivered
            $delivered.Count | Should -Be 3
            $delivered.subject | Sort-Object | Should -Be @('Hola Grace', 'Hola José', 'Hola 用户')
            ($delivered | Where-Object { $_.to -contains 'victim@example.com' }) | Should -BeNullOrEmpty
        }

        It 'stops before sending anything when a template uses a missing column' {
            $err = $null
            try { New-Rows 3 | Start-MailCampaign @J -Name 'missing' @common -Subject 'Hi {{Nickname}}' -Body 'x' -ErrorAction Stop } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'MissingColumn,ResilientMail.Commands.StartMailCampaignCommand'
            $err.Exception.Message | Should -Match '\{\{Nickname\}\}'
            $err.Exception.Message | Should -Match 'Subject'
            Get-Delivered | Should -BeNullOrEmpty
        }

        It 'handles an empty CSV and a header-only CSV without sending' {
            $empty = Join-Path $TestDrive 'empty.csv'; '' | Set-Content $empty -NoNewline
            $header = Join-Path $TestDrive 'header.csv'; 'Email,FirstName' | Set-Content $header
            $a = Start-MailCampaign @J -Name 'empty' -Path $empty @common -Subject 's' -Body 'b' -WarningVariable w -WarningAction SilentlyContinue
            $a.Sent | Should -Be 0
            $a.State | Should -Be 'Completed'
            $w | Should -Match 'empty'
            $b = Start-MailCampaign @J -Name 'header' -Path $header @common -Subject 'Hi {{FirstName}}' -Body 'b'
            $b.Recipients | Should -Be 0
            Get-Delivered | Should -BeNullOrEmpty
        }

        It 'sends nothing and writes no journal with -WhatIf' {
            New-Rows 3 | Start-MailCampaign @J -Name 'whatif' @common -Subject 's' -Body 'b' -WhatIf | Out-Null
            Get-Delivered | Should -BeNullOrEmpty
            Get-MailCampaign @J -Name 'whatif' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }

        It 'refuses to continue an existing campaign unasked in a non-interactive session, and continues with -Resume' {
            New-Rows 2 'again' | Start-MailCampaign @J -Name 'again' @common -Subject 's' -Body 'b' | Out-Null
            { New-Rows 3 'again' | Start-MailCampaign @J -Name 'again' @common -Subject 's' -Body 'b' -ErrorAction Stop } | Should -Throw -ErrorId 'CampaignExists,ResilientMail.Commands.StartMailCampaignCommand'
            $summary = New-Rows 3 'again' | Start-MailCampaign @J -Name 'again' -Resume -NoDelay | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
            $summary.SentThisRun | Should -Be 1   # only the added row
            $summary.Sent | Should -Be 3
            (Get-Delivered).Count | Should -Be 3
        }

        It 'asks for the transport again when resuming an authenticated campaign' {
            $authed = New-MailTransport -SmtpServer 127.0.0.1 -Port $server.SmtpPort -Credential (New-TestCredential 'bob' 'Any-Pass-1')
            New-Rows 1 'cred' | Start-MailCampaign @J -Name 'cred' -Transport $authed -From a@example.com -Subject 's' -Body 'b' -NoDelay | Out-Null
            { Start-MailCampaign @J -Name 'cred' -Resume -ErrorAction Stop } | Should -Throw -ErrorId 'CredentialRequired,ResilientMail.Commands.StartMailCampaignCommand'
            Get-StoredText (Get-MailCampaign @J -Name 'cred') | Should -Not -Match 'Any-Pass-1'
        }

        It 'deletes a journal with Remove-MailCampaign' {
            New-Rows 1 'rm' | Start-MailCampaign @J -Name 'to-remove' @common -Subject 's' -Body 'b' | Out-Null
            $journal = (Get-MailCampaign @J -Name 'to-remove').JournalPath
            if (-not $OnBlob) { $journal | Should -Exist } # first prove there was something to remove
            Get-MailCampaign @J -Name 'to-remove' | Should -Not -BeNullOrEmpty
            Remove-MailCampaign @J -Name 'to-remove' -Confirm:$false
            if (-not $OnBlob) { $journal | Should -Not -Exist }
            Get-MailCampaign @J -Name 'to-remove' -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }
    }

    Describe 'Campaigns that lose nobody' {
        It 'pauses when the outage outlasts the wait limit, names the resume command, and the resume delivers everyone once' {
            $dir = Join-Path $TestDrive 'outage'
            $s = Start-Smtp4dev -Persistent -DataDirectory $dir
            try {
                $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $s.SmtpPort
                $err = $null
                try {
                    New-Rows 10 'o' | ForEach-Object {
                        if ($_.Email -eq 'o6@example.com') { $null = Wait-Until { @(Get-Smtp4devMessage $s).Count -ge 5 } 20; Stop-Smtp4dev $s }
                        $_
                    } |
                        Start-MailCampaign @J -Name 'outage' -Transport $t -From a@example.com -Subject 'o {{FirstName}}' -Body 'b' -NoDelay `
                            -ConnectionWaitTimeout 2 -ConnectionCheckInterval 1 -WarningAction SilentlyContinue -ErrorAction SilentlyContinue | Out-Null
                }
                catch { $err = $_ }
                $err.FullyQualifiedErrorId | Should -Be 'CampaignPaused,ResilientMail.Commands.StartMailCampaignCommand'
                # The resume command asks for the input again only when the pipeline had not been read to its end before the pause.
                $paused = Get-MailCampaign @J -Name 'outage'
                if ($paused.InputComplete) { $err.Exception.Message | Should -Match "resume with: Start-MailCampaign -Name 'outage' -Resume" }
                else { $err.Exception.Message | Should -Match "<the same input> \| Start-MailCampaign -Name 'outage' -Resume" }
                $paused.NextStep | Should -Be ($err.ErrorDetails.RecommendedAction)
                # The server died under a message in flight: that one may be Uncertain. Rows still upstream are not counted.
                $err.Exception.Message -match 'Sent (\d+), failed 0, not yet sent (\d+)(?:, uncertain (\d+))?' | Should -BeTrue
                [int]$Matches[1] | Should -Be 5
                [int]$Matches[1] + [int]$Matches[2] + [int]$Matches[3] | Should -BeLessOrEqual 10
                (Get-MailCampaign @J -Name 'outage').State | Should -Be 'Paused'

                $s = Start-Smtp4dev -SmtpPort $s.SmtpPort -WebPort $s.WebPort -Persistent -DataDirectory $dir
                $summary = New-Rows 10 'o' | Start-MailCampaign @J -Name 'outage' -Resume -WarningAction SilentlyContinue | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
                $summary.State | Should -Be 'Completed'
                ($summary.Sent + $summary.Uncertain) | Should -Be 10
                $summary.Uncertain | Should -BeLessOrEqual 1
                $uncertain = @(Get-MailCampaign @J -Name 'outage' -Recipients -Status Uncertain).Key
                $delivered = Get-Delivered $s
                foreach ($n in 1..10) {
                    $to = "o$n@example.com"
                    $count = @($delivered | Where-Object { $_.to -contains $to }).Count
                    if ($uncertain -contains $to) { $count | Should -BeLessOrEqual 1 } else { $count | Should -Be 1 -Because $to }
                }
            }
            finally { Stop-Smtp4dev $s }
        }

        It 'leaves a journal that resumes cleanly after Ctrl+C' {
            Clear-Smtp4dev $server
            $ps = [powershell]::Create()
            try {
                $null = $ps.AddScript(@"
`$env:RESILIENTMAIL_DATA = '$env:RESILIENTMAIL_DATA'
Import-Module '$ModulePath'
`$t = New-MailTransport -SmtpServer 127.0.0.1 -Port $($server.SmtpPort)
1..40 | ForEach-Object { [pscustomobject]@{ Email = "c`$_@example.com" } } |
    Start-MailCampaign $JText -Name 'ctrlc' -Transport `$t -From a@example.com -Subject 's' -Body 'b' -MinGap 0.05 -MaxGap 0.1 -BatchSize 0
"@)
            $handle = $ps.BeginInvoke()
            $null = Wait-Until { @(Get-Smtp4devMessage $server).Count -ge 5 } 20
            $ps.Stop()
        }
        finally { $ps.Dispose() }
        $before = @(Get-Delivered).Count
        $before | Should -BeLessThan 40
        (Get-MailCampaign @J -Name 'ctrlc').State | Should -Be 'Stopped'

        # Pipeline input: the rows that run never read are not in its journal, so the same input is piped again.
        $summary = 1..40 | ForEach-Object { [pscustomobject]@{ Email = "c$_@example.com" } } |
            Start-MailCampaign @J -Name 'ctrlc' -Resume -NoDelay -WarningAction SilentlyContinue | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
        $delivered = Get-Delivered
        $counts = $delivered | Group-Object { $_.to[0] }
        ($counts | Where-Object Count -gt 1) | Should -BeNullOrEmpty
        ($summary.Sent + $summary.Uncertain) | Should -Be 40
        $summary.Uncertain | Should -BeLessOrEqual 1
        $delivered.Count | Should -BeGreaterOrEqual 39
    }

    It 'survives kill -9 at random moments: every recipient arrives exactly once, except reported Uncertain ones' {
        $csv = Join-Path $TestDrive 'kill.csv'
        "Email,FirstName`n" + ((1..300 | ForEach-Object { "k$_@example.com,K$_" }) -join "`n") | Set-Content $csv
        $dir = Join-Path $TestDrive 'kill-smtp'
        $s = Start-Smtp4dev -Persistent -DataDirectory $dir
        try {
            $pwsh = Get-PwshArgs
            # On the blob store every run is on "another machine": its own data folder and working folder, nothing shared but
                # the store. A run killed there leaves its lease, which the next one takes over once it expires (15 s here).
                $script = @"
`$env:RESILIENTMAIL_LEASE_SECONDS = '15'
if ('$OnBlob' -eq 'True') { `$env:RESILIENTMAIL_DATA = Join-Path '$TestDrive' "machine-`$PID"; Set-Location (New-Item -ItemType Directory -Force `$env:RESILIENTMAIL_DATA) }
Import-Module '$ModulePath'
`$t = New-MailTransport -SmtpServer 127.0.0.1 -Port $($s.SmtpPort)
while (`$true) {
    try { Start-MailCampaign $JText -Name 'killme' -Path '$csv' -Transport `$t -From a@example.com -Subject 'k {{FirstName}}' -Body 'b' -Force -Concurrency 2 -MinGap 0.005 -MaxGap 0.02 -BatchSize 0 -ErrorAction Stop | Out-Null; break }
    catch { if (`$_.FullyQualifiedErrorId -notlike 'JournalLocked*') { throw }; Start-Sleep -Milliseconds 500 }
}
"@
                $random = [Random]::new(7)
                $kills = 0
                function Get-Runs { $c = Get-MailCampaign @J -Name 'killme' -ErrorAction SilentlyContinue; if ($c) { $c.Runs } else { 0 } }
                for ($i = 0; $i -lt 6; $i++) {
                    $runsBefore = Get-Runs
                    $p = Start-Process -FilePath $pwsh.File -ArgumentList ($pwsh.Pre + @('-NoProfile', '-NonInteractive', '-Command', $script)) -PassThru -RedirectStandardOutput (Join-Path $TestDrive "kill$i.out") -RedirectStandardError (Join-Path $TestDrive "kill$i.err")
                    # At a random moment of the sending, once this run is in the journal: a process killed while PowerShell
                    # is still starting (over a second on a loaded machine) never began a run, and proves nothing.
                    $null = Wait-Until { $p.HasExited -or (Get-Runs) -gt $runsBefore } 60
                    Start-Sleep -Milliseconds $random.Next(100, 1400)
                    if (-not $p.HasExited) { $p.Kill(); $p.WaitForExit(); $kills++ }
                }
                $kills | Should -BeGreaterOrEqual 5
                # The last run goes to the end.
                $p = Start-Process -FilePath $pwsh.File -ArgumentList ($pwsh.Pre + @('-NoProfile', '-NonInteractive', '-Command', $script)) -PassThru -Wait
                $info = Get-MailCampaign @J -Name 'killme'
                $info.State | Should -Be 'Completed'
                $info.Runs | Should -Be 7
                $uncertain = @(Get-MailCampaign @J -Name 'killme' -Recipients -Status Uncertain).Key
                $uncertain.Count | Should -BeLessOrEqual (2 * $kills)
                ($info.Sent + $info.Uncertain) | Should -Be 300

                $delivered = Get-Delivered $s
                $byTo = @{}
                foreach ($m in $delivered) { $byTo[$m.to[0]] = 1 + [int]$byTo[$m.to[0]] }
                foreach ($n in 1..300) {
                    $to = "k$n@example.com"
                    if ($uncertain -contains $to) { [int]$byTo[$to] | Should -BeLessOrEqual 1 -Because "$to is Uncertain" }
                    else { [int]$byTo[$to] | Should -Be 1 -Because "$to must arrive exactly once" }
                }
            }
            finally { Stop-Smtp4dev $s }
        }
    }

    Describe 'A run-time limit (-MaxRunDuration)' {
        It 'stops the run by itself, Paused with the resume command and no error, and the next run sends the rest once' {
            $outbox = Join-Path $TestDrive 'limited'
            $pickup = New-MailTransport -PickupDirectory $outbox
            $csv = Join-Path $TestDrive 'limited.csv'
            New-Rows 20 'lim' | Export-Csv $csv -NoTypeInformation
            $errors = $null
            $out = Start-MailCampaign @J -Name limited -Path $csv -Transport $pickup -From news@example.com -Subject s -Body b -NoDelay `
                -RateLimit '2/second' -MaxRunDuration 2s -WarningVariable warned -WarningAction SilentlyContinue -ErrorVariable errors
            $info = $out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
            $info.State | Should -Be 'Paused'
            $info.Sent | Should -BeLessThan 20
            $info.Sent | Should -BeGreaterThan 0
            $info.Uncertain | Should -Be 0
            $errors | Should -BeNullOrEmpty
            ($warned -join "`n") | Should -Match "time limit \(2\.?0?s\).*Start-MailCampaign -Name 'limited' -Resume"
            $first = $info.Sent

            $again = Start-MailCampaign @J -Name limited -Resume -Transport $pickup -NoDelay -WarningAction SilentlyContinue | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
            $again.State | Should -Be 'Completed'
            $again.Sent | Should -Be 20
            $again.SentThisRun | Should -Be (20 - $first)
            $to = Get-ChildItem $outbox -Filter *.eml | ForEach-Object { (Select-String -Path $_.FullName -Pattern '^To: (.*)$').Matches[0].Groups[1].Value.Trim() }
            @($to).Count | Should -Be 20
            @($to | Sort-Object -Unique).Count | Should -Be 20
        }
    }
}
