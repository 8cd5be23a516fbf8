# Coming from Send-MailMessage (part of issue 14): the same call through Send-MailMessage and through the module, against
# the same scripted SMTP server, which records every command and message. Send-MailMessage is the reference.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Module (Join-Path $RepoRoot 'build/TestServers.psm1') -Force
    $script:servers = [System.Collections.Generic.List[object]]::new()
    function New-Smtp { $s = Start-ScriptedSmtp -Ehlo '8BITMIME'; $servers.Add($s); $s }
    function Get-Rcpt($Server) { @(Get-ScriptedSmtpRecord $Server -Commands | Where-Object { $_ -like 'RCPT TO*' }) }
    # An attachment's name, as MimeKit (filename=) and .NET's SmtpClient (name= on its Content-Type) write it.
    function Get-AttachmentNames([string]$Message) { @([regex]::Matches($Message, '(?:file)?name="?([^";\r\n]+\.log)"?') | ForEach-Object { $_.Groups[1].Value } | Sort-Object -Unique) }
    $script:tls = Start-Smtp4dev -TlsMode StartTls
    $script:plain = Start-Smtp4dev
}

AfterAll {
    foreach ($s in $servers) { if (-not $s.Process.HasExited) { $s.Process.Kill($true) } }
    foreach ($s in $tls, $plain) { if ($s) { Stop-Smtp4dev $s } }
}

Describe 'Coming from Send-MailMessage' {
    It 'accepts the addresses Send-MailMessage accepts: a single-label domain, a display name with a comma' {
        $reference = New-Smtp
        Send-MailMessage -SmtpServer 127.0.0.1 -Port $reference.Port -From it@example.com -To 'backup@localhost', 'Doe, Jane <jane@example.com>' -Subject s -Body b -WarningAction SilentlyContinue
        $module = New-Smtp
        $r = Send-ResilientMail -SmtpServer 127.0.0.1 -Port $module.Port -From it@example.com -To 'backup@localhost', 'Doe, Jane <jane@example.com>' -Subject s -Body b -NoDelay
        $r.Status | Should -Be 'Sent'
        Get-Rcpt $module | Should -Be (Get-Rcpt $reference)
        Get-Rcpt $module | Should -Be @('RCPT TO:<backup@localhost>', 'RCPT TO:<jane@example.com>')
    }

    It 'still refuses what is really invalid, and CR/LF' {
        $s = New-Smtp
        $r = 'not-an-address', 'a@example..com', "x@example.com`r`nBcc: victim@example.com" | ForEach-Object {
            Send-ResilientMail -SmtpServer 127.0.0.1 -Port $s.Port -From it@example.com -To $_ -Subject s -Body b -NoDelay -ErrorAction SilentlyContinue -ErrorVariable +errs
        }
        $r.Status | Should -Be @('Failed', 'Failed', 'Failed')
        $errs.FullyQualifiedErrorId | ForEach-Object { $_ -replace ',.*' } | Should -Be @('InvalidAddress', 'InvalidAddress', 'HeaderInjection')
        Get-Rcpt $s | Should -BeNullOrEmpty
    }

    It 'sends files piped in as the attachments of one message' {
        $dir = Join-Path $TestDrive 'logs'
        $null = New-Item -ItemType Directory -Force $dir
        foreach ($n in 'app', 'db', 'web') { Set-Content (Join-Path $dir "$n.log") "log of $n" }
        $reference = New-Smtp
        Get-ChildItem $dir -Filter *.log | Send-MailMessage -SmtpServer 127.0.0.1 -Port $reference.Port -From it@example.com -To ops@example.com -Subject logs -Body 'see attached' -WarningAction SilentlyContinue
        $module = New-Smtp
        $r = Get-ChildItem $dir -Filter *.log | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $module.Port -From it@example.com -To ops@example.com -Subject logs -Body 'see attached' -NoDelay
        @($r).Count | Should -Be 1
        $r.Status | Should -Be 'Sent'
        $sent = @(Get-ScriptedSmtpRecord $module -Messages)
        $sent.Count | Should -Be @(Get-ScriptedSmtpRecord $reference -Messages).Count
        $sent.Count | Should -Be 1
        Get-AttachmentNames $sent[0] | Should -Be (Get-AttachmentNames @(Get-ScriptedSmtpRecord $reference -Messages)[0])
        Get-AttachmentNames $sent[0] | Should -Be @('app.log', 'db.log', 'web.log')
    }

    It 'takes To, Subject, Body and SmtpServer by position, and $PSEmailServer as the default server' {
        $s = New-Smtp
        $r = Send-ResilientMail 'pos@example.com' 'By position' 'Body text' '127.0.0.1' -Port $s.Port -From it@example.com -NoDelay
        $r.Status | Should -Be 'Sent'
        $PSEmailServer = '127.0.0.1'
        $r = Send-ResilientMail -To 'default@example.com' -Subject s -Body b -Port $s.Port -From it@example.com -NoDelay
        $r.Status | Should -Be 'Sent'
        Get-Rcpt $s | Should -Be @('RCPT TO:<pos@example.com>', 'RCPT TO:<default@example.com>')
        @(Get-ScriptedSmtpRecord $s -Messages)[0] | Should -Match 'Subject: By position'
    }

    It 'binds the address columns of <Source> without renaming' -ForEach @(
        @{ Source = 'an Outlook contact export'; Column = 'E-mail Address' }
        @{ Source = 'a Google contact export'; Column = 'E-mail 1 - Value' }
        @{ Source = 'a CSV with Email Address'; Column = 'Email Address' }
        @{ Source = 'Get-ADUser -Properties mail'; Column = 'mail' }
        @{ Source = 'Get-ADUser -Properties EmailAddress'; Column = 'EmailAddress' }
        @{ Source = 'Get-Mailbox / Get-EXOMailbox'; Column = 'PrimarySmtpAddress' }
        @{ Source = 'Get-MgUser'; Column = 'Mail' }
    ) {
        $s = New-Smtp
        $row = [pscustomobject]@{ $Column = 'bound@example.com'; DisplayName = 'Bound' }
        $r = $row | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $s.Port -From it@example.com -Subject 'Hi {{DisplayName}}' -Body b -NoDelay
        $r.Status | Should -Be 'Sent'
        Get-Rcpt $s | Should -Be @('RCPT TO:<bound@example.com>')
        # The same row in a campaign finds the same column.
        $pickup = Join-Path $TestDrive "campaign-$($Column -replace '\W')"
        $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
        try {
            $info = $row | Start-MailCampaign -Name "bind-$([guid]::NewGuid().ToString('n'))" -Transport (New-MailTransport -PickupDirectory $pickup) -From it@example.com -Subject s -Body b -NoDelay | Select-Object -Last 1
        } finally { Remove-Item Env:RESILIENTMAIL_DATA }
        $info.Sent | Should -Be 1
    }

    It 'says which columns it accepts when a record has none of them' {
        $s = New-Smtp
        $r = [pscustomobject]@{ Name = 'no address' } | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $s.Port -From it@example.com -Subject s -Body b -NoDelay -ErrorAction SilentlyContinue -ErrorVariable errs
        $r.Status | Should -Be 'Failed'
        @($errs).Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'MissingRecipient,*'
        $errs[0].Exception.Message | Should -Match 'E-mail Address'
        $errs[0].Exception.Message | Should -Match 'PrimarySmtpAddress'
    }

    It '-UseSsl requires TLS and uses STARTTLS on a port other than 465' {
        $r = Send-ResilientMail -SmtpServer 127.0.0.1 -Port $tls.SmtpPort -UseSsl -SkipCertificateCheck -From it@example.com -To tls@example.com -Subject 'use ssl' -Body b -NoDelay -Verbose 4>&1
        ($r | Where-Object { $_ -is [ResilientMail.MailDeliveryResult] }).Status | Should -Be 'Sent'
        ($r | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | Where-Object Message -match 'Connected to').Message | Should -Match 'Tls1[23]'
        # A server without STARTTLS is refused, not sent to in the clear, and the error says so (not "TLS mode does not match").
        $e = $null
        try { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $plain.SmtpPort -UseSsl -From it@example.com -To x@example.com -Subject s -Body b -NoDelay -ErrorAction Stop } catch { $e = $_ }
        $e.FullyQualifiedErrorId | Should -BeLike 'TlsHandshakeFailed,*'
        $e.Exception.Message | Should -Match 'does not offer STARTTLS'
        (New-MailTransport -SmtpServer mail.example.com -UseSsl).Security | Should -Be 'StartTls'
        (New-MailTransport -SmtpServer mail.example.com -UseSsl).Port | Should -Be 25
        (New-MailTransport -SmtpServer mail.example.com -UseSsl -Port 465).Security | Should -Be 'SslOnConnect'
        (New-MailTransport -SmtpServer mail.example.com -UseSsl -Port 587).Security | Should -Be 'StartTls'
    }

    It 'merges a file per recipient into -Attachments, and a missing file fails only its row' {
        $dir = Join-Path $TestDrive 'slips'
        $null = New-Item -ItemType Directory -Force $dir
        Set-Content (Join-Path $dir 'E1.pdf') 'slip 1'
        Set-Content (Join-Path $dir 'E3.pdf') 'slip 3'
        $rows = "Email,Id`ne1@example.com,E1`ne2@example.com,E2`ne3@example.com,E3" | ConvertFrom-Csv
        $s = New-Smtp
        $r = $rows | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $s.Port -From hr@example.com -Subject 'Payslip' -Body 'Attached.' `
            -Attachments (Join-Path $dir '{{Id}}.pdf') -NoDelay -ErrorAction SilentlyContinue -ErrorVariable errs
        $r.Status | Should -Be @('Sent', 'Failed', 'Sent')
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'AttachmentNotFound,*'
        $errs[0].Exception.Message | Should -Match 'E2\.pdf'
        $sent = @(Get-ScriptedSmtpRecord $s -Messages)
        $sent.Count | Should -Be 2
        $sent[0] | Should -Match 'E1\.pdf'
        $sent[1] | Should -Match 'E3\.pdf'

        # A campaign: the missing file fails that row alone; the others are sent.
        $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data-merge'
        try {
            $pickup = Join-Path $TestDrive 'merge-out'
            $info = $rows | Start-MailCampaign -Name 'payslips' -Transport (New-MailTransport -PickupDirectory $pickup) -From hr@example.com -Subject 'Payslip' -Body 'Attached.' `
                -Attachments (Join-Path $dir '{{Id}}.pdf') -NoDelay -ErrorAction SilentlyContinue | Select-Object -Last 1
        } finally { Remove-Item Env:RESILIENTMAIL_DATA }
        $info.State | Should -Be 'Completed'
        $info.Sent | Should -Be 2
        $info.Failed | Should -Be 1
    }

    It '-SkipRevocationCheck skips only the revocation check' {
        $t = New-MailTransport -SmtpServer 127.0.0.1 -Port $tls.SmtpPort -UseStartTls -SkipRevocationCheck
        $t.SkipRevocationCheck | Should -BeTrue
        $t.SkipCertificateCheck | Should -BeFalse
        # smtp4dev's self-signed certificate is still refused: trust and the name are still checked.
        $e = $null
        try { Send-ResilientMail -Transport $t -From it@example.com -To x@example.com -Subject s -Body b -NoDelay -ErrorAction Stop } catch { $e = $_ }
        $e.FullyQualifiedErrorId | Should -BeLike 'TlsHandshakeFailed,*'
        $e.Exception.Message | Should -Match 'self-signed'
    }

    It 'shows count, rate and (with a total) percent and ETA in the status text, naming the message being sent' {
        $s = New-Smtp
        $csv = Join-Path $TestDrive 'progress.csv'
        1..12 | ForEach-Object { [pscustomobject]@{ Email = "p$_@example.com" } } | Export-Csv $csv -NoTypeInformation
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$ModulePath'; Import-Csv '$csv' | Send-ResilientMail -SmtpServer 127.0.0.1 -Port $($s.Port) -From it@example.com -Subject s -Body b -MinGap 0.3 -MaxGap 0.3")
            $null = $ps.Invoke()
            $statuses = @($ps.Streams.Progress | ForEach-Object StatusDescription | Where-Object { $_ -match '^Sent \d+' })
        } finally { $ps.Dispose() }
        $statuses | Should -Not -BeNullOrEmpty
        ($statuses -match '^Sent \d+, [\d.]+/(s|min) - p\d+@example\.com$') | Should -Not -BeNullOrEmpty
        # The recipient named is the one on its way (sent count + 1), not one read ahead (up to 8 further on).
        foreach ($line in $statuses) {
            if ($line -match '^Sent (\d+).* - p(\d+)@example\.com$') { [int]$Matches[2] | Should -BeLessOrEqual ([int]$Matches[1] + 2) -Because $line }
        }

        $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data-progress'
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("`$env:RESILIENTMAIL_DATA = '$($env:RESILIENTMAIL_DATA)'; Import-Module '$ModulePath'; Start-MailCampaign -Name progress -Path '$csv' -Transport (New-MailTransport -SmtpServer 127.0.0.1 -Port $($s.Port)) -From it@example.com -Subject s -Body b -MinGap 0.3 -MaxGap 0.3")
            $null = $ps.Invoke()
            $campaign = @($ps.Streams.Progress | ForEach-Object StatusDescription | Where-Object { $_ -match '^Sent \d+' })
        } finally { $ps.Dispose(); Remove-Item Env:RESILIENTMAIL_DATA }
        ($campaign -match '^Sent \d+ of 12 \(\d+%\), remaining \d+, [\d.]+/(s|min), ETA \d+:\d\d') | Should -Not -BeNullOrEmpty
    }

    It 'asks for delivery status notifications as SMTP DSN, as Send-MailMessage does, and warns when the server has none' {
        $reference = Start-ScriptedSmtp -Ehlo '8BITMIME DSN'; $servers.Add($reference)
        Send-MailMessage -SmtpServer 127.0.0.1 -Port $reference.Port -From it@example.com -To dsn@example.com -Subject s -Body b -DeliveryNotificationOption OnSuccess, OnFailure -WarningAction SilentlyContinue
        $module = Start-ScriptedSmtp -Ehlo '8BITMIME DSN'; $servers.Add($module)
        $r = Send-ResilientMail -SmtpServer 127.0.0.1 -Port $module.Port -From it@example.com -To dsn@example.com -Subject s -Body b -DeliveryNotificationOption OnSuccess, OnFailure -NoDelay
        $r.Status | Should -Be 'Sent'
        function Get-Notify($Server) { @(Get-Rcpt $Server)[0] -replace '.*NOTIFY=([A-Z,]+).*', '$1' }
        Get-Notify $module | Should -Be (Get-Notify $reference)
        Get-Notify $module | Should -Be 'SUCCESS,FAILURE'

        $none = New-Smtp # no DSN in its EHLO
        $r = Send-ResilientMail -SmtpServer 127.0.0.1 -Port $none.Port -From it@example.com -To dsn@example.com -Subject s -Body b -DeliveryNotificationOption OnFailure -NoDelay -WarningVariable warned -WarningAction SilentlyContinue
        $r.Status | Should -Be 'Sent'
        @($warned | Where-Object { "$_" -match 'does not offer DSN' }).Count | Should -Be 1
        @(Get-Rcpt $none)[0] | Should -Not -Match 'NOTIFY'
        (New-MailTransport -SmtpServer mail.example.com -DeliveryNotificationOption Delay).DeliveryNotificationOption | Should -Be 'Delay'
    }

    It 'behaves as Send-MailMessage when called through a Send-MailMessage alias, and only then' {
        $s = New-Smtp
        $refusing = Start-ScriptedSmtp -Rule 'Rcpt|bad@example.com|550 5.1.1 <bad@example.com>: User unknown|0'; $servers.Add($refusing)
        $out = Invoke-FreshPwsh @"
Import-Module '$ModulePath'
Set-Alias Send-MailMessage Send-ResilientMail
function Send-Report { Send-MailMessage -SmtpServer 127.0.0.1 -Port $($s.Port) -From it@example.com -To ok@example.com -Subject report -Body b; return `$true }
`$r = @(Send-Report)
"RESULT=`$(`$r.Count):`$(`$r[0])"
`$p = Send-MailMessage -SmtpServer 127.0.0.1 -Port $($s.Port) -From it@example.com -To ok@example.com -Subject passthru -Body b -PassThru
"PASSTHRU=`$(`$p.Status)"
try { Send-MailMessage -SmtpServer 127.0.0.1 -Port $($refusing.Port) -From it@example.com -To bad@example.com -Subject s -Body b -ErrorAction Stop }
catch [System.Net.Mail.SmtpFailedRecipientException] { "CAUGHT=`$(`$_.Exception.FailedRecipient)" }
`$closed = [System.Net.Sockets.Socket]::new([System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
`$closed.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, 0))
try { Send-MailMessage -SmtpServer 127.0.0.1 -Port `$closed.LocalEndPoint.Port -From it@example.com -To x@example.com -Subject s -Body b -ConnectionCheckInterval 1 -ConnectionWaitTimeout 1 -ErrorAction SilentlyContinue -ErrorVariable lost -WarningAction SilentlyContinue }
catch { "TERMINATED" }
"NONTERMINATING=`$(`$lost[0].Exception.GetType().Name)"
"OWNNAME=`$((Send-ResilientMail -SmtpServer 127.0.0.1 -Port $($s.Port) -From it@example.com -To ok@example.com -Subject own -Body b -NoDelay).Status)"
"@
        $text = $out -join "`n"
        $text | Should -Match 'RESULT=1:True'            # the script's own return value, and nothing else
        $text | Should -Match 'PASSTHRU=Sent'
        $text | Should -Match 'CAUGHT=bad@example.com'
        $text | Should -Match 'NONTERMINATING=SmtpException'
        $text | Should -Not -Match 'TERMINATED'
        $text | Should -Match 'OWNNAME=Sent'             # by its own name it writes its results
        (Get-Command Send-MailMessage).Source | Should -Be 'Microsoft.PowerShell.Utility' # importing the module takes no built-in name
    }

    It 'takes -Encoding as Send-MailMessage does (names and Encoding objects), and sends a non-ASCII body right without it' {
        foreach ($encoding in @('ASCII', [System.Text.Encoding]::UTF8)) {
            $reference = New-Smtp
            Send-MailMessage -SmtpServer 127.0.0.1 -Port $reference.Port -From it@example.com -To enc@example.com -Subject s -Body 'plain text' -Encoding $encoding -WarningAction SilentlyContinue
            $module = New-Smtp
            $null = Send-ResilientMail -SmtpServer 127.0.0.1 -Port $module.Port -From it@example.com -To enc@example.com -Subject s -Body 'plain text' -Encoding $encoding -NoDelay
            function Get-Charset($Server) { [regex]::Match(@(Get-ScriptedSmtpRecord $Server -Messages)[0], 'charset="?([\w-]+)"?').Groups[1].Value.ToLowerInvariant() }
            Get-Charset $module | Should -Be (Get-Charset $reference) -Because "$encoding"
        }
        # Without -Encoding: UTF-8, so the text arrives as written (Send-MailMessage's default sends '?' for it).
        $s = New-Smtp
        $null = Send-ResilientMail -SmtpServer 127.0.0.1 -Port $s.Port -From it@example.com -To enc@example.com -Subject s -Body 'Grüße, Jörg' -NoDelay
        $source = @(Get-ScriptedSmtpRecord $s -Messages)[0]
        $source | Should -Match 'charset=utf-8'
        # The server took the bytes as they came (8bit, or quoted-printable): either way they are the UTF-8 of the text.
        $raw = [Text.Encoding]::UTF8.GetString([Text.Encoding]::Latin1.GetBytes($source))
        ($raw.Contains('Grüße, Jörg') -or $source.Contains('Gr=C3=BC=C3=9Fe, J=C3=B6rg')) | Should -BeTrue -Because $source
    }

    It 'sends what Send-MailMessage sends for the same call: recipients, HTML body, priority, reply-to, one login' {
        $cred = New-TestCredential 'alice' 'Same-Pass-1'
        $call = @{ From = 'IT <it@example.com>'; To = 'to@example.com'; Cc = 'cc@example.com'; Bcc = 'bcc@example.com'; ReplyTo = 'reply@example.com'
                   Subject = 'Report'; Body = '<b>bold</b>'; BodyAsHtml = $true; Priority = 'High'; Credential = $cred }
        $reference = Start-ScriptedSmtp -Ehlo '8BITMIME' -Auth 'LOGIN PLAIN'; $servers.Add($reference)
        Send-MailMessage @call -SmtpServer 127.0.0.1 -Port $reference.Port -WarningAction SilentlyContinue
        $module = Start-ScriptedSmtp -Ehlo '8BITMIME' -Auth 'LOGIN PLAIN'; $servers.Add($module)
        $null = Send-ResilientMail @call -SmtpServer 127.0.0.1 -Port $module.Port -NoDelay
        (Get-Rcpt $module | Sort-Object) | Should -Be (Get-Rcpt $reference | Sort-Object) # the same envelope (Send-MailMessage orders Bcc before Cc)
        $ours = @(Get-ScriptedSmtpRecord $module -Messages)[0]
        $theirs = @(Get-ScriptedSmtpRecord $reference -Messages)[0]
        foreach ($pattern in '(?m)^Subject: Report', '(?m)^Reply-To: reply@example\.com', '(?m)^Cc: cc@example\.com', 'text/html', '(?m)^X-Priority: 1', '(?m)^Importance: high', '(?m)^Priority: urgent') {
            $theirs | Should -Match $pattern -Because "Send-MailMessage sends $pattern"
            $ours | Should -Match $pattern -Because "the module sends $pattern too"
        }
        $ours | Should -Not -Match '(?m)^Bcc:' # Bcc goes in the envelope only, as there
        @(Get-ScriptedSmtpRecord $module -Commands | Where-Object { $_ -like 'AUTH*' }).Count | Should -Be @(Get-ScriptedSmtpRecord $reference -Commands | Where-Object { $_ -like 'AUTH*' }).Count
    }

    It 'delivers "a@x, b@y" in one -To string to both, where Send-MailMessage does not' {
        $reference = New-Smtp
        try { Send-MailMessage -SmtpServer 127.0.0.1 -Port $reference.Port -From it@example.com -To 'a@example.com, b@example.com' -Subject s -Body b -WarningAction SilentlyContinue -ErrorAction Stop } catch { }
        $module = New-Smtp
        $null = Send-ResilientMail -SmtpServer 127.0.0.1 -Port $module.Port -From it@example.com -To 'a@example.com, b@example.com' -Subject s -Body b -NoDelay
        Get-Rcpt $module | Should -Be @('RCPT TO:<a@example.com>', 'RCPT TO:<b@example.com>')
        # Send-MailMessage reaches at most one of them (the issue's corpus: b only); the module does the right thing.
        @(Get-Rcpt $reference).Count | Should -BeLessThan 2
    }
}
