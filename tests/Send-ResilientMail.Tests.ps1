BeforeAll {
    . $PSScriptRoot/Common.ps1
    $script:server = Start-Smtp4dev
    $script:smtp = @{ SmtpServer = '127.0.0.1'; Port = $server.SmtpPort; From = 'IT <it@example.com>'; NoDelay = $true }

    function Get-Delivered { @(Get-Smtp4devMessage $server) }
}

AfterAll {
    if ($server) { Stop-Smtp4dev $server }
}

Describe 'Send-ResilientMail against smtp4dev' {
    BeforeEach { Clear-Smtp4dev $server }

    It 'sends 20 piped CSV rows as 20 messages with their own subject and body over one connection' {
        $rows = 1..20 | ForEach-Object { [pscustomobject]@{ FirstName = "Name$_"; Email = "user$_@example.com"; Team = "Team$($_ % 3)" } }
        $results = $rows | Send-ResilientMail @smtp -Subject 'Hello {{FirstName}}' -Body 'Dear {{FirstName}} of {{Team}}'

        @($results).Count | Should -Be 20
        $results.Status | Sort-Object -Unique | Should -Be 'Sent'
        $results.To | Should -Be $rows.Email  # in input order, though up to eight are queued behind the one on the wire
        $results | ForEach-Object { $_.Attempts | Should -Be 1; $_.MessageId | Should -Not -BeNullOrEmpty }

        $delivered = Get-Delivered
        $delivered.Count | Should -Be 20
        ($delivered.subject | Sort-Object) | Should -Be (1..20 | ForEach-Object { "Hello Name$_" } | Sort-Object)
        foreach ($m in $delivered) {
            $n = $m.subject -replace 'Hello Name', ''
            $m.to | Should -Be "user$n@example.com"
            $source = Get-Smtp4devMessageSource $server $m.id
            $source | Should -Match "Dear Name$n of Team$($n % 3)"
        }
        # One SMTP session carried all twenty messages.
        $sessions = @(Get-Smtp4devSession $server | Where-Object { $_.numberOfMessages -gt 0 })
        $sessions.Count | Should -Be 1
        $sessions[0].numberOfMessages | Should -Be 20
    }

    It 'binds Email, EmailAddress and Recipient columns to -To' {
        $rows = @(
            [pscustomobject]@{ Email = 'alias1@example.com' }
            [pscustomobject]@{ EmailAddress = 'alias2@example.com' }
            [pscustomobject]@{ Recipient = 'alias3@example.com' }
        )
        $rows | Send-ResilientMail @smtp -Subject 'alias' -Body 'b' | Out-Null
        (Get-Delivered).to | Sort-Object | Should -Be @('alias1@example.com', 'alias2@example.com', 'alias3@example.com')
    }

    It 'sends nothing with -WhatIf' {
        $rows = 1..3 | ForEach-Object { [pscustomobject]@{ Email = "whatif$_@example.com" } }
        $out = $rows | Send-ResilientMail @smtp -Subject 'no' -Body 'no' -WhatIf
        $out | Should -BeNullOrEmpty
        Start-Sleep -Milliseconds 500
        Get-Delivered | Should -BeNullOrEmpty
    }

    It 'reports a bad address and a CR/LF subject as errors and delivers the other rows' {
        $csv = @"
Email,Subject
good1@example.com,Fine one
not-an-address,Bad address
good2@example.com,"Injected
Bcc: victim@example.com"
good3@example.com,Fine three
"@ | ConvertFrom-Csv
        $errs = $null
        $results = $csv | Send-ResilientMail @smtp -Body 'b' -ErrorVariable errs -ErrorAction SilentlyContinue

        @($results).Count | Should -Be 4
        # One result per row, in the rows' order, the refused rows among them.
        $results.To | Should -Be @('good1@example.com', 'not-an-address', 'good2@example.com', 'good3@example.com')
        $results.Status | Should -Be @('Sent', 'Failed', 'Failed', 'Sent')
        $results[2].Subject | Should -Match '^Injected'
        ($results | Where-Object Status -eq 'Sent').To | Sort-Object | Should -Be @('good1@example.com', 'good3@example.com')
        @($errs).Count | Should -Be 2
        $errs[0].FullyQualifiedErrorId | Should -Be 'InvalidAddress,ResilientMail.Commands.SendResilientMailCommand'
        $errs[0].TargetObject | Should -Be 'not-an-address'
        $errs[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $errs[1].FullyQualifiedErrorId | Should -Be 'HeaderInjection,ResilientMail.Commands.SendResilientMailCommand'
        $errs[1].TargetObject | Should -Be 'good2@example.com'
        $delivered = Get-Delivered
        $delivered.to | Sort-Object | Should -Be @('good1@example.com', 'good3@example.com')
        ($delivered | Where-Object { $_.to -contains 'victim@example.com' }) | Should -BeNullOrEmpty
    }

    It 'reports a placeholder without a column and sends nothing for that row' {
        $errs = $null
        $r = [pscustomobject]@{ Email = 'ph@example.com' } | Send-ResilientMail @smtp -Subject 'Hi {{FirstName}}' -Body 'b' -ErrorVariable errs -ErrorAction SilentlyContinue
        $r.Status | Should -Be 'Failed'
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'MissingPlaceholder,*'
        $errs[0].Exception.Message | Should -Match '\{\{FirstName\}\}'
        Get-Delivered | Should -BeNullOrEmpty
    }

    It 'sends text and HTML as multipart/alternative with cc, attachments and headers' {
        $file = Join-Path $TestDrive 'report.csv'
        'a,b' | Set-Content $file
        Send-ResilientMail @smtp -To 'main@example.com' -Cc 'copy@example.com' -Subject 'Both' -Body 'plain text' -HtmlBody '<b>html</b>' `
            -Attachments $file -Headers @{ 'X-Runbook' = 'nightly' } -Priority High | Out-Null
        $m = Get-Delivered | Select-Object -First 1
        $source = Get-Smtp4devMessageSource $server $m.id
        $source | Should -Match 'multipart/alternative'
        $source | Should -Match 'X-Runbook: nightly'
        $source | Should -Match 'Cc: copy@example.com'
        $source | Should -Match 'filename="?report.csv'
        $m.attachmentCount | Should -Be 1
    }

    It 'writes verbose lines for the connection, each attempt and the delivery' {
        $verbose = [pscustomobject]@{ Email = 'verbose@example.com' } | Send-ResilientMail @smtp -Subject 'v' -Body 'b' -Verbose 4>&1 |
            Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
        $verbose | Should -Contain ($verbose | Where-Object { $_ -match 'Connected to 127\.0\.0\.1' })
        ($verbose -match 'attempt 1 of 4') | Should -Not -BeNullOrEmpty
        ($verbose -match 'Delivered to verbose@example.com .*Mail accepted') | Should -Not -BeNullOrEmpty
    }
}

Describe 'STARTTLS and authentication' {
    BeforeAll {
        $script:tls = Start-Smtp4dev -TlsMode StartTls -User 'alice=Sup3r-Secret-P4ss' -AuthenticationRequired
        $script:secure = @{ SmtpServer = '127.0.0.1'; Port = $tls.SmtpPort; From = 'it@example.com'; NoDelay = $true; UseStartTls = $true }
        $script:cred = New-TestCredential 'alice' 'Sup3r-Secret-P4ss'
    }
    AfterAll { if ($tls) { Stop-Smtp4dev $tls } }

    It 'works with a credential and -SkipCertificateCheck against a self-signed certificate' {
        $r = Send-ResilientMail @secure -Credential $cred -SkipCertificateCheck -To 'tls@example.com' -Subject 'over tls' -Body 'b'
        $r.Status | Should -Be 'Sent'
        (Get-Smtp4devMessage $tls | Where-Object subject -eq 'over tls').Count | Should -Be 1
    }

    It 'fails with a clear terminating error when the certificate is not trusted' {
        $err = $null
        try { Send-ResilientMail @secure -Credential $cred -To 'tls@example.com' -Subject 'untrusted' -Body 'b' -ErrorAction Stop | Out-Null }
        catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -Be 'TlsHandshakeFailed,ResilientMail.Commands.SendResilientMailCommand'
        $err.Exception.Message | Should -Match 'certificate'
        "$err" | Should -Match 'SkipCertificateCheck'
        (Get-Smtp4devMessage $tls | Where-Object subject -eq 'untrusted') | Should -BeNullOrEmpty
    }

    It 'stops at once on a refused password and never shows the password anywhere' {
        $bad = New-TestCredential 'alice' 'Wr0ng-Secret-Value'
        $all = & {
            try {
                [pscustomobject]@{ Email = 'a1@example.com' }, [pscustomobject]@{ Email = 'a2@example.com' } |
                    Send-ResilientMail @secure -Credential $bad -SkipCertificateCheck -Subject 's' -Body 'b' -Verbose
            }
            catch { $_ }
        } *>&1
        $text = ($all | Out-String) + ($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | ForEach-Object { $_.Exception.ToString() } | Out-String)
        $text | Should -Not -Match 'Wr0ng-Secret-Value'
        $text | Should -Not -Match 'Sup3r-Secret-P4ss'
        $records = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $records[-1].FullyQualifiedErrorId | Should -BeLike 'AuthenticationFailed,*'
        @($all | Where-Object { $_ -is [ResilientMail.MailDeliveryResult] }).Count | Should -Be 1  # the second row was never tried
    }
}

Describe 'Stopping and outages' {
    It 'stops within a second on Ctrl+C (StopProcessing) and closes the connection' {
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $listener.Start()  # accepts connections and never says a word
        $port = $listener.LocalEndpoint.Port
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$ModulePath'; Send-ResilientMail -SmtpServer 127.0.0.1 -Port $port -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -Timeout 60")
            $handle = $ps.BeginInvoke()
            $client = $listener.AcceptTcpClientAsync()
            $client.Wait(15000) | Should -BeTrue
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            $clock.Stop()
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 1.5
            # The client end is closed: the server reads end-of-stream rather than waiting forever.
            $stream = $client.Result.GetStream()
            $stream.ReadTimeout = 3000
            $buffer = [byte[]]::new(64)
            $stream.Read($buffer, 0, 64) | Should -Be 0
        }
        finally { $ps.Dispose(); $listener.Stop() }
    }

    It 'waits through a server outage in the middle of a pipeline and delivers every row once' {
        $dir = Join-Path $TestDrive 'outage'
        $s = Start-Smtp4dev -Persistent -DataDirectory $dir
        try {
            $helpers = Join-Path $RepoRoot 'build/Smtp4dev.psm1'
            $restart = $null
            $warnings = $null
            $results = 1..6 | ForEach-Object {
                if ($_ -eq 4) {
                    # Rows are sent in the background while the next ones are read: let the first three land first.
                    Wait-Until { @(Get-Smtp4devMessage $s).Count -ge 3 } | Should -BeTrue
                    Stop-Smtp4dev $s
                    $restart = Start-ThreadJob -ArgumentList $helpers, $s.SmtpPort, $s.WebPort, $dir {
                        param($helpers, $smtpPort, $webPort, $dir)
                        Import-Module $helpers
                        Start-Sleep -Seconds 3
                        Start-Smtp4dev -SmtpPort $smtpPort -WebPort $webPort -Persistent -DataDirectory $dir
                    }
                }
                [pscustomobject]@{ Email = "outage$_@example.com" }
            } | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $s.SmtpPort -From it@example.com -Subject 'outage {{Email}}' -Body 'b' `
                -NoDelay -ConnectionCheckInterval 1 -ConnectionWaitTimeout 60 -WarningVariable warnings -WarningAction SilentlyContinue
            $s2 = $restart | Receive-Job -Wait -AutoRemoveJob
            $s = $s2
            @($results).Count | Should -Be 6
            $results.Status | Sort-Object -Unique | Should -Be 'Sent'
            ($warnings -join "`n") | Should -Match 'Waiting for it to come back'
            ($warnings -join "`n") | Should -Match 'is back after'
            $delivered = Get-Smtp4devMessage $s
            ($delivered.to | Sort-Object) | Should -Be (1..6 | ForEach-Object { "outage$_@example.com" })
        }
        finally { if ($s) { Stop-Smtp4dev $s } }
    }

    It 'shows the wait in the progress bar as "Waiting for connection (m:ss of m:ss)"' {
        $closed = [System.Net.Sockets.Socket]::new([System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
        $closed.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, 0))
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$ModulePath'; Send-ResilientMail -SmtpServer 127.0.0.1 -Port $($closed.LocalEndPoint.Port) -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -MaxRetries 1 -ConnectionCheckInterval 1 -ConnectionWaitTimeout 3")
            try { $null = $ps.Invoke() } catch { }
            $statuses = @($ps.Streams.Progress | ForEach-Object StatusDescription)
            ($statuses -match '^Waiting for connection \(0:0[0-3] of 0:03\)$') | Should -Not -BeNullOrEmpty
            ($statuses -match '^Sent 0 - b@example.com$') | Should -Not -BeNullOrEmpty
            @($ps.Streams.Warning).Count | Should -Be 1
            $ps.Streams.Progress[-1].RecordType | Should -Be 'Completed'
        }
        finally { $ps.Dispose(); $closed.Dispose() }
    }

    It 'gives up after the wait limit with a terminating ConnectivityLost error that counts what was sent' {
        $closed = [System.Net.Sockets.Socket]::new([System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
        $closed.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, 0))  # bound, never listening: refuses
        try {
            $err = $null
            try {
                [pscustomobject]@{ Email = 'never@example.com' } | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $closed.LocalEndPoint.Port -From it@example.com -Subject s -Body b `
                    -NoDelay -ConnectionCheckInterval 1 -ConnectionWaitTimeout 3 -MaxRetries 1 -WarningAction SilentlyContinue -ErrorAction Stop `
                    -LogPath (Join-Path $TestDrive 'lost.log') | Out-Null
            }
            catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'ConnectivityLost,ResilientMail.Commands.SendResilientMailCommand'
            $err.Exception.Message | Should -Match 'Sent 0 of the 1 message\(s\) received so far; 1 not sent'
            $err.Exception.Message | Should -Match 'rest of the input was not read'
            # The log tells the whole story for a runbook: the probe, the wait with its limit, the failure, the end.
            $log = Get-Content (Join-Path $TestDrive 'lost.log') | ForEach-Object { $_ | ConvertFrom-Json }
            $log.event | Should -Contain 'probe'
            ($log | Where-Object event -eq 'waiting-for-connection').waitMs | Should -Be 3000
            ($log | Where-Object event -eq 'result').status | Should -Be 'Failed'
            $log[-1].event | Should -Be 'end'
            $log[-1].text | Should -Match 'Sending stopped'
        }
        finally { $closed.Dispose() }
    }
}
