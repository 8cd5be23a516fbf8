# The errors a user is most likely to meet, each checked for what it says happened and what to do.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    $script:plain = Start-Smtp4dev
    $script:tls = Start-Smtp4dev -TlsMode StartTls -User 'alice=Sup3r-Secret-P4ss' -AuthenticationRequired
    $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
    function Catch-Error([scriptblock]$Block) { try { & $Block | Out-Null; $null } catch { $_ } }
    $script:one = [pscustomobject]@{ Email = 'one@example.com'; FirstName = 'One' }
}

AfterAll {
    foreach ($s in $plain, $tls) { if ($s) { Stop-Smtp4dev $s } }
    Remove-Item Env:RESILIENTMAIL_DATA -ErrorAction SilentlyContinue
}

Describe 'Error messages say what happened and what to do' {
    It '1. TLS from the start against a plain port: the TLS mode does not match the port' {
        $e = Catch-Error { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $plain.SmtpPort -SecureSocketOptions SslOnConnect -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'TlsHandshakeFailed,*'
        $e.Exception.Message | Should -Match 'TLS mode does not match the port'
        $e.ErrorDetails.RecommendedAction | Should -Match '465'
    }

    It '2. STARTTLS asked of a server that does not offer it' {
        $e = Catch-Error { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $plain.SmtpPort -UseStartTls -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'TlsHandshakeFailed,*'
        $e.Exception.Message | Should -Match 'does not offer STARTTLS'
        $e.Exception.Message | Should -Match '587'
        "$e" | Should -Match '-UseStartTls on 587' # what the user sees names the parameters (Core's message names none)
    }

    It '3. A certificate this machine does not trust' {
        $e = Catch-Error { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $tls.SmtpPort -UseStartTls -Credential (New-TestCredential 'alice' 'Sup3r-Secret-P4ss') -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'TlsHandshakeFailed,*'
        $e.Exception.Message | Should -Match 'certificate is not trusted'
        # smtp4dev's certificate is self-signed and made for localhost: both reasons are named.
        $e.Exception.Message | Should -Match 'self-signed'
        $e.Exception.Message | Should -Match 'is for localhost, not for 127\.0\.0\.1'
        $e.ErrorDetails.RecommendedAction | Should -Match 'trust the server''s certificate'
    }

    It '4. A refused password' {
        $e = Catch-Error { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $tls.SmtpPort -UseStartTls -SkipCertificateCheck -Credential (New-TestCredential 'alice' 'wrong') -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'AuthenticationFailed,*'
        $e.Exception.Message | Should -Match 'refused the credentials'
        $e.ErrorDetails.RecommendedAction | Should -Match '-Credential'
    }

    It '5. No credentials where the server requires them' {
        $e = Catch-Error { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $tls.SmtpPort -UseStartTls -SkipCertificateCheck -From a@example.com -To b@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'AuthenticationFailed,*'
        $e.Exception.Message | Should -Match 'requires authentication'
        $e.ErrorDetails.RecommendedAction | Should -Match '-Credential'
    }

    It '6. A server that is not there: the wait, then what to check' {
        $closed = [System.Net.Sockets.Socket]::new([System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
        $closed.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, 0))
        try {
            $e = Catch-Error { $one | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $closed.LocalEndPoint.Port -From a@example.com -Subject s -Body b -NoDelay -ConnectionCheckInterval 1 -ConnectionWaitTimeout 2 -WarningAction SilentlyContinue -ErrorAction Stop }
        } finally { $closed.Dispose() }
        $e.FullyQualifiedErrorId | Should -BeLike 'ConnectivityLost,*'
        $e.Exception.Message | Should -Match 'No connection to 127\.0\.0\.1:\d+ after waiting'
        $e.Exception.Message | Should -Match 'Check that the server is running'
        $e.Exception.Message | Should -Match 'Sent 0 of the 1 message'
        $e.ErrorDetails.RecommendedAction | Should -Match 'network'
    }

    It '7. A campaign whose journal another run holds' {
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $plain.SmtpPort
        $null = $one | Start-MailCampaign -Name 'locked' -Transport $t -From a@example.com -Subject s -Body b -NoDelay
        $journal = (Get-MailCampaign -Name 'locked').JournalPath
        # Another process holds the journal the way a running campaign does (a record lock).
        $pwsh = Get-PwshArgs
        $holder = Start-Process -FilePath $pwsh.File -ArgumentList (@($pwsh.Pre) + @('-NoProfile', '-Command',
            "`$f = [IO.File]::Open('$journal', 'Open', 'ReadWrite', 'ReadWrite'); `$f.Lock([long]::MaxValue - 1, 1); 'locked' | Set-Content '$TestDrive/holding'; Start-Sleep 60")) -PassThru
        try {
            Wait-Until { Test-Path "$TestDrive/holding" } 30 | Should -BeTrue
            $e = Catch-Error { $one | Start-MailCampaign -Name 'locked' -Resume -ErrorAction Stop }
        } finally { $holder.Kill($true) }
        $e.FullyQualifiedErrorId | Should -BeLike 'JournalLocked,*'
        $e.Exception.Message | Should -Match 'in use by another run of this campaign'
        $e.Exception.Message | Should -Match 'Wait for it to finish, or stop it first'
    }

    It '8. A template placeholder with no column' {
        $e = Catch-Error { $one | Start-MailCampaign -Name 'nocolumn' -Transport (New-MailTransport -PickupDirectory (Join-Path $TestDrive 'o')) -From a@example.com -Subject 'Hi {{LastName}}' -Body b -NoDelay -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'MissingColumn,*'
        $e.Exception.Message | Should -Match 'LastName'
        $e.Exception.Message | Should -Match 'Subject'
    }

    It '9. An address that does not parse, and a header value with a line break' {
        $null = [pscustomobject]@{ Email = 'not-an-address' } | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $plain.SmtpPort -From a@example.com -Subject s -Body b -NoDelay -ErrorVariable bad -ErrorAction SilentlyContinue
        $bad[0].FullyQualifiedErrorId | Should -BeLike 'InvalidAddress,*'
        $bad[0].Exception.Message | Should -Match "'not-an-address' in To is not a valid email address"
        $null = $one | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $plain.SmtpPort -From a@example.com -Subject "Hi`r`nBcc: x@example.com" -Body b -NoDelay -ErrorVariable inj -ErrorAction SilentlyContinue
        $inj[0].FullyQualifiedErrorId | Should -BeLike 'HeaderInjection,*'
        $inj[0].Exception.Message | Should -Match 'Subject contains a line break'
        $inj[0].Exception.Message | Should -Match 'was not sent'
    }

    It '10. A new campaign without a transport, and a resume of one that does not exist' {
        $e = Catch-Error { $one | Start-MailCampaign -Name 'notransport' -From a@example.com -Subject s -Body b -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'MissingTransport,*'
        $e.Exception.Message | Should -Match 'New-MailTransport'
        $e = Catch-Error { Start-MailCampaign -Name 'never-ran' -Resume -ErrorAction Stop }
        $e.FullyQualifiedErrorId | Should -BeLike 'CampaignNotFound,*'
        $e.Exception.Message | Should -Match 'nothing to resume'
    }
}
