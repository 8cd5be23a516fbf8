# Microsoft 365 and Google Workspace without passwords: the Graph transport and tokens the module obtains and renews,
# through the built module in a fresh pwsh that trusts the stand-in's test certificate (SSL_CERT_FILE), against the cloud
# stand-in (Entra token endpoint, managed identity endpoint, Google token endpoint, Graph) and the scripted SMTP server.
# Real Azure.Identity and Google.Apis.Auth run against them; everything is on loopback.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Module (Join-Path $RepoRoot 'build/TestServers.psm1') -Force
    $script:cloud = Start-CloudStandIn -Mailbox 'reports@contoso.com', 'ops@example.com'
    $script:smtp = Start-ScriptedSmtp -Auth 'XOAUTH2' -OAuthCheck "$($cloud.BaseUri)_fake/token-check"
    $script:data = Join-Path $TestDrive 'data'
    $script:attachment = Join-Path $TestDrive 'big.bin'
    $bytes = [byte[]]::new(10MB); [Random]::new(7).NextBytes($bytes); [IO.File]::WriteAllBytes($attachment, $bytes)

    # A fresh pwsh with the module and the stand-in's addresses; the script's last output lines are returned.
    function Invoke-Cloud([string]$Body, [hashtable]$Environment = @{}) {
        $env = @{ SSL_CERT_FILE = (Join-Path $cloud.Keys 'server.pem'); RESILIENTMAIL_DATA = $data; IDENTITY_ENDPOINT = "$($cloud.BaseUri)msi/token"; IDENTITY_HEADER = $cloud.IdentityHeader }
        foreach ($k in $Environment.Keys) { $env[$k] = $Environment[$k] }
        Invoke-FreshPwsh -Environment $env @"
`$ErrorActionPreference = 'Stop'
`$ProgressPreference = 'SilentlyContinue'
Import-Module '$ModulePath'
`$base = '$($cloud.BaseUri)'
`$graph = '$($cloud.BaseUri)v1.0'
`$secret = ConvertTo-SecureString '$($cloud.ClientSecret)' -AsPlainText -Force
`$app = @{ TenantId = '$($cloud.Tenant)'; ClientId = '$($cloud.ClientId)'; AuthorityHost = `$base }
$Body
"@
    }
    function Get-Stats { (Invoke-CloudControl $cloud stats).counts }
    function Get-Sent { @(Get-ChildItem $cloud.Store -Filter *.eml | Sort-Object Name | ForEach-Object { [MimeKit.MimeMessage]::Load($_.FullName) }) }
    # The module's MimeKit lives in its own load context; the test reads .eml files with the copy the test servers ship.
    foreach ($d in 'BouncyCastle.Cryptography', 'MimeKit') { Add-Type -Path (Join-Path $RepoRoot "out/testservers/$d.dll") }
}

AfterAll {
    foreach ($s in $cloud, $smtp) { if ($s -and -not $s.Process.HasExited) { $s.Process.Kill($true) } }
}

Describe 'Microsoft Graph with tokens the module obtains' {
    It 'sends as MIME with a client secret, a PFX, a thumbprint in the store, and a system- or user-assigned managed identity' {
        $before = Get-Stats
        $out = Invoke-Cloud @"
`$store = [Security.Cryptography.X509Certificates.X509Store]::new('My', 'CurrentUser'); `$store.Open('ReadWrite')
`$store.Add([Security.Cryptography.X509Certificates.X509Certificate2]::new('$($cloud.Keys)/app.pfx', '', 'Exportable,PersistKeySet')); `$store.Close()
`$ways = [ordered]@{
  secret     = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -ClientSecret `$secret
  pfx        = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -CertificatePath '$($cloud.Keys)/app.pfx'
  thumbprint = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -CertificateThumbprint '$($cloud.Thumbprint)'
  system     = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -ManagedIdentity
  user       = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -ManagedIdentityClientId '$($cloud.UserAssignedId)'
  object     = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -Certificate ([Security.Cryptography.X509Certificates.X509Certificate2]::new('$($cloud.Keys)/app.pfx'))
  given      = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -AccessToken (ConvertTo-SecureString (Invoke-RestMethod -Method Post -SkipCertificateCheck -Uri "`${base}$($cloud.Tenant)/oauth2/v2.0/token" -Body @{
                 grant_type = 'client_credentials'; client_id = '$($cloud.ClientId)'; client_secret = '$($cloud.ClientSecret)'; scope = "`$(`$base.TrimEnd('/'))/.default" }).access_token -AsPlainText -Force)
}
foreach (`$k in `$ways.Keys) {
  `$r = Send-ResilientMail -Transport `$ways[`$k] -From reports@contoso.com -To "`$k@example.com" -Subject "via `$k" -Body 'hello' -Headers @{ 'X-Run' = `$k } -NoDelay
  "`$k `$(`$r.Status) `$(`$r.MessageId)"
}
`$ways.thumbprint | Format-List * | Out-String
"@ -Environment @{ HOME = (Join-Path $TestDrive 'home') }
        $after = Get-Stats
        foreach ($k in 'secret', 'pfx', 'thumbprint', 'system', 'user', 'object', 'given') { ($out -join "`n") | Should -Match "(?m)^$k Sent \S+@" }
        ($after.'token-secret' - [int]$before.'token-secret') | Should -Be 2       # the transport's, and the one the script fetched for -AccessToken
        ($after.'token-assertion' - [int]$before.'token-assertion') | Should -Be 3 # the PFX, the store's certificate and the object, each signature verified
        ($after.'token-managed-identity' - [int]$before.'token-managed-identity') | Should -Be 1
        ($after.'token-managed-identity-user' - [int]$before.'token-managed-identity-user') | Should -Be 1
        $sent = Get-Sent | Where-Object { $_.Headers['X-Run'] }
        foreach ($k in 'secret', 'pfx', 'thumbprint', 'system', 'user') {
            $m = $sent | Where-Object { $_.Headers['X-Run'] -eq $k }
            $m.Subject | Should -Be "via $k"
            $id = ($out | Where-Object { $_ -match "^$k Sent" }) -replace '^\S+ Sent ', ''
            $m.MessageId | Should -Be $id   # the Message-ID is the one the module made: Graph got MIME
        }
        ($out -join "`n") | Should -Match 'TokensFrom\s+: Microsoft Entra app .* with certificate'
        ($out -join "`n") | Should -Not -Match ([regex]::Escape($cloud.ClientSecret))
    }

    It 'sends a 10 MB attachment through a draft and an upload session, and it arrives whole' {
        $out = Invoke-Cloud @"
`$t = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -ManagedIdentity
`$r = Send-ResilientMail -Transport `$t -From reports@contoso.com -To big@example.com -Subject 'big one' -Body 'see attached' -Attachments '$attachment' -NoDelay
"`$(`$r.Status)|`$(`$r.ServerReply)"
"@
        ($out -join "`n") | Should -Match '(?m)^Sent\|202 .*1 uploaded attachment'
        $m = Get-Sent | Where-Object Subject -eq 'big one'
        $part = @($m.Attachments)[0]
        $part.FileName | Should -Be 'big.bin'
        $ms = [IO.MemoryStream]::new(); $part.Content.DecodeTo($ms)
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($ms.ToArray())) | Should -Be (Get-FileHash $attachment -Algorithm SHA256).Hash
        $ranges = @(Invoke-CloudControl $cloud requests | ForEach-Object { $_ } | Where-Object { $_.path -like '/upload/*' })
        $ranges.Count | Should -Be 4                      # 10 MB in 3.125 MB ranges (multiples of 320 KiB)
        $ranges.authorization | Should -Not -Contain $true # the upload URL is pre-authorised: no token goes to it
        (Invoke-CloudControl $cloud stats).drafts | Should -Be 0
    }

    It 'deletes the draft after a failed upload, and the retry delivers the message once, whole' {
        $before = Get-Stats
        Invoke-CloudControl $cloud faults @{ path = '/upload/'; status = 503; body = '{"error":{"code":"serviceNotAvailable","message":"try later"}}'; times = 1 } | Out-Null
        $out = Invoke-Cloud @"
`$t = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -ManagedIdentity
`$r = Send-ResilientMail -Transport `$t -From reports@contoso.com -To retry-big@example.com -Subject 'big again' -Body 'b' -Attachments '$attachment' -NoDelay -RetryBaseDelay 0.1
"`$(`$r.Status) `$(`$r.Attempts)"
"@
        $after = Get-Stats
        $out | Should -Contain 'Sent 2'
        ($after.'draft-deleted' - [int]$before.'draft-deleted') | Should -Be 1     # the first attempt's draft, after its upload failed
        (Invoke-CloudControl $cloud stats).drafts | Should -Be 0
        $m = @(Get-Sent | Where-Object Subject -eq 'big again')
        $m.Count | Should -Be 1
        $ms = [IO.MemoryStream]::new(); @($m[0].Attachments)[0].Content.DecodeTo($ms)
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($ms.ToArray())) | Should -Be (Get-FileHash $attachment -Algorithm SHA256).Hash
    }

    It 'renews an expired token once on 401, waits for Retry-After on 429, fails a refused recipient alone' {
        $before = Get-Stats
        $out = Invoke-Cloud @"
`$t = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -ClientSecret `$secret
(Send-ResilientMail -Transport `$t -From reports@contoso.com -To one@example.com -Subject r1 -Body b -NoDelay).Status
Invoke-RestMethod -Method Post -Uri "`${base}_fake/expire-tokens" -SkipCertificateCheck | Out-Null
(Send-ResilientMail -Transport `$t -From reports@contoso.com -To two@example.com -Subject r2 -Body b -NoDelay).Status
Invoke-RestMethod -Method Post -Uri "`${base}_fake/faults" -SkipCertificateCheck -ContentType application/json -Body '[{"path":"sendMail","status":429,"headers":{"Retry-After":"1"},"body":"{\"error\":{\"code\":\"ApplicationThrottled\",\"message\":\"MailboxConcurrency\"}}"}]' | Out-Null
`$r = Send-ResilientMail -Transport `$t -From reports@contoso.com -To three@example.com -Subject r3 -Body b -NoDelay -Verbose 4>&1 | ForEach-Object { if (`$_ -is [Management.Automation.VerboseRecord]) { "V: `$(`$_.Message)" } else { `$_ } }
`$r | Where-Object { `$_ -is [string] -and `$_ -match 'Retry|wait|Sending through' }
(`$r | Where-Object { `$_ -isnot [string] }).Status
Invoke-RestMethod -Method Post -Uri "`${base}_fake/faults" -SkipCertificateCheck -ContentType application/json -Body '[{"path":"sendMail","abort":true}]' | Out-Null
`$lost = Send-ResilientMail -Transport `$t -From reports@contoso.com -To five@example.com -Subject r5 -Body b -NoDelay -ErrorAction SilentlyContinue
"lost=`$(`$lost.Status) attempts=`$(`$lost.Attempts)"
`$bad = Send-ResilientMail -Transport `$t -From reports@contoso.com -To invalid@example.com, four@example.com -Subject r4 -Body b -NoDelay -ErrorAction SilentlyContinue -ErrorVariable ev
"`$(`$bad.Status)|`$(`$ev[0].FullyQualifiedErrorId)"
"@
        $after = Get-Stats
        $out | Should -Contain 'Sent'
        @($out | Where-Object { $_ -eq 'Sent' }).Count | Should -Be 3
        ($after.'token-secret' - [int]$before.'token-secret') | Should -Be 2   # the first, and one renewal after the 401
        ($after.'graph-401-expired' - [int]$before.'graph-401-expired') | Should -Be 1
        ($out -join "`n") | Should -Match 'V: .*(1 s|Retry-After)'
        ($out -join "`n") | Should -Match "V: Sending through Microsoft Graph .*at most 30 per 60 s \(the provider's limit\)"
        $out[-1] | Should -Match '^Failed\|RecipientRejected'
        $out | Should -Contain 'lost=Uncertain attempts=1'   # the whole request was sent, the answer lost: not sent again
    }

    It 'stops with what to fix for an application access policy, an unknown tenant and a wrong client secret' {
        $out = Invoke-Cloud @"
function Try-It([scriptblock]`$b) { try { & `$b | Out-Null; 'no error' } catch { "`$(`$_.FullyQualifiedErrorId)|`$(`$_.Exception.Message)" } }
`$t = New-MailTransport -Graph -Mailbox blocked@contoso.com -GraphEndpoint `$graph -ManagedIdentity
Try-It { Send-ResilientMail -Transport `$t -From blocked@contoso.com -To a@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
`$wrong = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -TenantId fabrikam.onmicrosoft.com -ClientId '$($cloud.ClientId)' -AuthorityHost `$base -ClientSecret `$secret
Try-It { Send-ResilientMail -Transport `$wrong -From reports@contoso.com -To a@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
`$bad = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -ClientSecret (ConvertTo-SecureString 'the-secret-id-not-its-value' -AsPlainText -Force)
Try-It { Send-ResilientMail -Transport `$bad -From reports@contoso.com -To a@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
Invoke-RestMethod -Method Post -Uri "`${base}_fake/faults" -SkipCertificateCheck -ContentType application/json -Body '[{"path":"/oauth2/v2.0/token","status":400,"body":"{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS65001: The user or administrator has not consented to use the application with ID 0f1e. Send an interactive authorization request for this user and resource.\",\"error_codes\":[65001]}"}]' | Out-Null
`$unconsented = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -ClientSecret `$secret
Try-It { Send-ResilientMail -Transport `$unconsented -From reports@contoso.com -To a@example.com -Subject s -Body b -NoDelay -ErrorAction Stop }
"@
        $lines = @($out | Where-Object { $_ -match '\|' })
        $lines[0] | Should -Match 'AuthenticationFailed'
        $lines[0] | Should -Match 'application access policy.*Test-ApplicationAccessPolicy'
        $lines[1] | Should -Match "tenant 'fabrikam.onmicrosoft.com' was not found.*AADSTS90002"
        $lines[2] | Should -Match "secret's ID was given instead of its Value.*AADSTS7000215"
        $lines[3] | Should -Match 'has not been granted consent: an administrator must grant admin consent.*Mail.Send.*AADSTS65001'
        ($out -join "`n") | Should -Not -Match 'the-secret-id-not-its-value'
        ($out -join "`n") | Should -Match 'about_ResilientMail'
    }
}

Describe 'Client secrets, private keys and tokens never reach any stream, result, error or file' {
    It 'finds neither the client secret, the PFX password nor any token after sends, failures, a campaign and its log' {
        $dump = Join-Path $TestDrive 'everything.txt'
        $pfxPassword = 'Pfx-' + [guid]::NewGuid().ToString('n')
        $null = Invoke-Cloud @"
`$ErrorActionPreference = 'Continue' # the failures are part of what is searched
`$pw = ConvertTo-SecureString '$pfxPassword' -AsPlainText -Force
`$locked = Join-Path '$TestDrive' 'locked.pfx'
[IO.File]::WriteAllBytes(`$locked, [Security.Cryptography.X509Certificates.X509Certificate2]::new('$($cloud.Keys)/app.pfx', '', 'Exportable').Export('Pfx', '$pfxPassword'))
`$all = & {
  `$s = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -ClientSecret `$secret; `$s
  `$p = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -CertificatePath `$locked -CertificatePassword `$pw; `$p
  `$x = New-MailTransport -SmtpServer 127.0.0.1 -Port $($smtp.Port) -SecureSocketOptions None -UserName reports@contoso.com @app -ClientSecret `$secret; `$x
  Send-ResilientMail -Transport `$s -From reports@contoso.com -To s1@example.com -Subject s -Body b -NoDelay -Verbose -Debug
  Send-ResilientMail -Transport `$p -From reports@contoso.com -To s2@example.com -Subject s -Body b -NoDelay -Verbose -Debug
  Send-ResilientMail -Transport `$x -From reports@contoso.com -To s3@example.com -Subject s -Body b -NoDelay -Verbose -Debug
  Invoke-RestMethod -Method Post -Uri "`${base}_fake/expire-tokens" -SkipCertificateCheck | Out-Null
  Send-ResilientMail -Transport `$s -From reports@contoso.com -To invalid@example.com -Subject s -Body b -NoDelay -Verbose -Debug
  try { Send-ResilientMail -Transport (New-MailTransport -Graph -Mailbox blocked@contoso.com -GraphEndpoint `$graph @app -ClientSecret `$secret) -From blocked@contoso.com -To a@example.com -Subject s -Body b -NoDelay -ErrorAction Stop -Verbose -Debug } catch { `$_ }
  1..3 | ForEach-Object { [pscustomobject]@{ Email = "c`$_@example.com" } } | Start-MailCampaign -Name secrets -Transport `$s -From reports@contoso.com -Subject s -Body b -NoDelay -LogPath (Join-Path '$TestDrive' 'campaign.log') -Verbose -Debug
  Get-MailCampaign -Name secrets -Recipients
} *>&1
`$s | Export-Clixml (Join-Path '$TestDrive' 'transport.xml')
`$text = @(
  `$all | ForEach-Object { `$_ | Format-List * -Force | Out-String; if (`$_ -is [Management.Automation.ErrorRecord]) { `$_.Exception.ToString() } }
  `$all | ForEach-Object { try { `$_ | ConvertTo-Json -Depth 4 -WarningAction SilentlyContinue } catch { } }
  Get-ChildItem '$data' -Recurse -File | ForEach-Object { Get-Content `$_.FullName -Raw }
  Get-Content (Join-Path '$TestDrive' 'campaign.log') -Raw
  Get-Content (Join-Path '$TestDrive' 'transport.xml') -Raw
) -join "``n"
Set-Content '$dump' `$text
"@
        $text = Get-Content $dump -Raw
        $text.Length | Should -BeGreaterThan 2000
        $text | Should -Match 'application access policy'      # the failures did happen and were written
        $text | Should -Match 'RecipientRejected'
        $text | Should -Not -Match ([regex]::Escape($cloud.ClientSecret))
        $text | Should -Not -Match ([regex]::Escape($pfxPassword))
        $text | Should -Not -Match 'ya29\.'                     # every token the stand-in issues starts so
        $text | Should -Not -Match 'PRIVATE KEY'
    }
}

Describe 'A campaign through Graph' {
    It 'caps -Concurrency at 4 with one warning, paces to Microsoft 365 by default, resumes by name with the managed identity, stores no secret' {
        $rows = Join-Path $TestDrive 'staff.csv'
        1..12 | ForEach-Object { [pscustomobject]@{ Email = "staff$_@example.com"; Month = 'December' } } | Export-Csv $rows -NoTypeInformation
        $out = Invoke-Cloud @"
`$t = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -ManagedIdentity
`$c = Start-MailCampaign -Name payroll -Path '$rows' -Transport `$t -From reports@contoso.com -Subject 'Payslip {{Month}}' -Body 'b' -Concurrency 8 -NoDelay -Verbose -WarningVariable w 4>&1 3>`$null |
  ForEach-Object { if (`$_ -is [Management.Automation.VerboseRecord]) { if (`$_.Message -match 'connection') { "V: `$(`$_.Message)" } } else { `$_ } }
`$w | ForEach-Object { "W: `$_" }
`$c | Where-Object { `$_ -is [string] }
`$info = `$c | Where-Object { `$_ -isnot [string] } | Select-Object -Last 1
"`$(`$info.State) `$(`$info.Sent)"
`$again = Start-MailCampaign -Name payroll -Resume -NoDelay
"resumed `$(`$again.State) `$(`$again.Sent)"
"@
        @($out | Where-Object { $_ -match '^W: .*at most 4' }).Count | Should -Be 1
        ($out | Where-Object { $_ -match '^V: ' }) -join "`n" | Should -Match '4 connection\(s\), at most 30 per 60 s'
        $out | Should -Contain 'Completed 12'
        $out[-1] | Should -Be 'resumed Completed 12'
        (Invoke-CloudControl $cloud stats).maxConcurrent | Should -BeLessOrEqual 4
        $journal = Get-ChildItem $data -Filter 'payroll*' -Recurse -File | Get-Content -Raw
        $journal | Should -Match '"tokenKind":"ManagedIdentity"'
        $journal | Should -Not -Match 'ya29\.'
        $journal | Should -Not -Match ([regex]::Escape($cloud.ClientSecret))
    }
}

Describe 'A runbook: Graph and the journal in Azure Blob Storage, both with the managed identity' {
    It 'keeps the journal in a container it reaches with a managed identity token (no secret), and lists it there' {
        # Azurite over HTTPS with the stand-in's certificate, accepting Microsoft Entra tokens (a bearer token is sent only over HTTPS).
        $azurite = Start-Azurite -Cert (Join-Path $cloud.Keys 'server.pem') -Key (Join-Path $cloud.Keys 'server-key.pem')
        try {
            $store = $azurite.Container('runbooks')
            $csv = Join-Path $TestDrive 'runbook.csv'
            1..5 | ForEach-Object { [pscustomobject]@{ Email = "rb$_@example.com" } } | Export-Csv $csv -NoTypeInformation
            $before = [int](Get-Stats).'token-storage'
            $out = Invoke-Cloud @"
`$t = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -ManagedIdentity
`$c = Start-MailCampaign -Name runbook -Path '$csv' -Transport `$t -From reports@contoso.com -Subject 's' -Body 'b' -NoDelay -JournalStore '$store' -MaxRunDuration 1h -Force |
    Where-Object { `$_ -is [ResilientMail.MailCampaignInfo] }
"`$(`$c.State) `$(`$c.Sent) `$(`$c.JournalPath)"
`$g = Get-MailCampaign -JournalStore '$store'
"listed `$(`$g.Name) `$(`$g.State) `$(`$g.Sent)"
"@
            $out | Should -Contain "Completed 5 $store/runbook.journal.jsonl"
            $out[-1] | Should -Be 'listed runbook Completed 5'
            # A token for Azure Storage from the managed identity endpoint: no key or SAS was given.
            ([int](Get-Stats).'token-storage' - $before) | Should -BeGreaterOrEqual 1
            (Get-ChildItem $azurite.Location -Recurse -File | ForEach-Object { [IO.File]::ReadAllText($_.FullName) }) -join "`n" | Should -Match 'rb5@example.com'
        }
        finally { Stop-TestServer $azurite }
    }
}

Describe 'The daily recipient cap' {
    It 'pauses a campaign at the cap with the time it may resume and the exact resume command, without failing the job' {
        $out = Invoke-Cloud @"
`$t = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph -ManagedIdentity
`$csv = Join-Path '$TestDrive' 'cap.csv'
1..5 | ForEach-Object { [pscustomobject]@{ Email = "cap`$_@example.com" } } | Export-Csv `$csv -NoTypeInformation
`$null = Start-MailCampaign -Name capped -Path `$csv -Transport `$t -From reports@contoso.com -Subject s -Body b -NoDelay -MaxRecipientsPerDay 3 -WarningVariable said -WarningAction SilentlyContinue -ErrorVariable failed
"errors=`$(@(`$failed).Count)"
`$said | ForEach-Object { "warning=`$_" }
`$info = Get-MailCampaign -Name capped
"reason=`$(`$info.PauseReason)"
"next=`$(`$info.NextStep)"
`$again = `$info
"stored=`$(`$again.State) `$(`$again.Sent)"
"@
        ($out | Where-Object { $_ -like 'reason=*' }) | Should -Match '3 recipients in 24 hours.*may resume after \d{4}-\d\d-\d\d \d\d:\d\d UTC'
        ($out | Where-Object { $_ -like 'next=*' }) | Should -Match "Start-MailCampaign -Name 'capped' -Resume"
        $out | Should -Contain 'stored=Paused 3'
        $out | Should -Contain 'errors=0'   # an expected end, like the run-time limit: a runbook's job does not fail for it
        ($out | Where-Object { $_ -like 'warning=*' }) -join "`n" | Should -Match "paused.*may resume after .*resume with: Start-MailCampaign -Name 'capped' -Resume"
        @(Get-Sent | Where-Object { "$($_.To)" -like 'cap*' }).Count | Should -Be 3
    }
}

Describe 'SMTP with OAuth (XOAUTH2) and tokens the module obtains' {
    It 'signs in with a Microsoft Entra token and a Google service account token, and renews an expired one' {
        $smtp = Start-ScriptedSmtp -Auth 'XOAUTH2' -OAuthCheck "$($cloud.BaseUri)_fake/token-check" # its own record: only this test's sign-ins
        try {
        $out = Invoke-Cloud @"
`$m365 = New-MailTransport -SmtpServer 127.0.0.1 -Port $($smtp.Port) -SecureSocketOptions None -UserName reports@contoso.com @app -ClientSecret `$secret
(Send-ResilientMail -Transport `$m365 -From reports@contoso.com -To x1@example.com -Subject s1 -Body b -NoDelay).Status
Invoke-RestMethod -Method Post -Uri "`${base}_fake/expire-tokens" -SkipCertificateCheck | Out-Null
(Send-ResilientMail -Transport `$m365 -From reports@contoso.com -To x2@example.com -Subject s2 -Body b -NoDelay).Status
`$gmail = New-MailTransport -SmtpServer 127.0.0.1 -Port $($smtp.Port) -SecureSocketOptions None -UserName ops@example.com -GoogleServiceAccountKeyPath '$($cloud.Keys)/google-sa.json'
(Send-ResilientMail -Transport `$gmail -From ops@example.com -To x3@example.com -Subject s3 -Body b -NoDelay).Status
`$given = New-MailTransport -SmtpServer 127.0.0.1 -Port $($smtp.Port) -SecureSocketOptions None -UserName ops@example.com -OAuthToken (ConvertTo-SecureString 'ya29.stale' -AsPlainText -Force)
try { Send-ResilientMail -Transport `$given -From ops@example.com -To x4@example.com -Subject s4 -Body b -NoDelay -ErrorAction Stop | Out-Null } catch { "E: `$(`$_.Exception.Message)" }
"@
        @($out | Where-Object { $_ -eq 'Sent' }).Count | Should -Be 3
        $oauth = @(Get-ScriptedSmtpRecord $smtp | Where-Object kind -eq 'oauth' | ForEach-Object text)
        $oauth[0] | Should -Be 'reports@contoso.com valid:secret'
        $oauth[1] | Should -Be 'reports@contoso.com expired'
        $oauth[2] | Should -Be 'reports@contoso.com valid:secret'      # renewed once, on the same connection
        $oauth[3] | Should -Be 'ops@example.com valid:google'          # the service account's JWT, verified by the stand-in
        $oauth[4] | Should -Be 'ops@example.com unknown'
        ($out | Where-Object { $_ -like 'E: *' }) | Should -Match 'cannot be renewed|expire'
        ($out -join "`n") | Should -Not -Match 'ya29\.stale'
        } finally { $smtp.Process.Kill($true) }
    }

    It 'explains that Microsoft 365 has switched Basic authentication off (535 5.7.139)' {
        $off = Start-ScriptedSmtp -Auth 'PLAIN LOGIN' -Rule 'Auth||535 5.7.139 Authentication unsuccessful, basic authentication is disabled.|0'
        try {
            $e = $null
            try { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $off.Port -Credential (New-TestCredential 'ops@contoso.com' 'Pa55w0rd!') -From ops@contoso.com -To a@example.com -Subject s -Body b -NoDelay -ErrorAction Stop | Out-Null }
            catch { $e = $_ }
            $e.FullyQualifiedErrorId | Should -Match 'AuthenticationFailed'
            $e.Exception.Message | Should -Match 'switched off Basic authentication.*Microsoft Graph.*-Graph -Mailbox'
            @(Get-ScriptedSmtpRecord $off -Commands | Where-Object { $_ -like 'AUTH*' }).Count | Should -Be 1
        } finally { $off.Process.Kill($true) }
        # Exchange Online's other answer, at MAIL FROM after an accepted sign-in.
        $submission = Start-ScriptedSmtp -Auth 'PLAIN LOGIN' -Rule 'Mail||550 5.7.30 Basic authentication is not supported for Client Submission.|0'
        try {
            $e = $null
            try { Send-ResilientMail -SmtpServer 127.0.0.1 -Port $submission.Port -Credential (New-TestCredential 'ops@contoso.com' 'Pa55w0rd!') -From ops@contoso.com -To a@example.com -Subject s -Body b -NoDelay -ErrorAction Stop | Out-Null }
            catch { $e = $_ }
            $e.FullyQualifiedErrorId | Should -Match 'AuthenticationFailed'
            $e.Exception.Message | Should -Match 'switched off Basic authentication.*550 5.7.30'
        } finally { $submission.Process.Kill($true) }
    }
}

Describe 'Beside Az.Accounts and Microsoft.Graph' {
    It 'obtains tokens and sends when another Azure.Identity and MSAL were loaded first' {
        $proj = Join-Path $TestDrive 'otheridentity'
        $null = New-Item -ItemType Directory -Force $proj
        Set-Content (Join-Path $proj 'other.csproj') @'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="Azure.Identity" Version="[1.10.2]" />
    <PackageDownload Include="Azure.Core" Version="[1.36.0]" />
    <PackageDownload Include="Microsoft.Identity.Client" Version="[4.55.0]" />
    <PackageDownload Include="Microsoft.IdentityModel.Abstractions" Version="[6.35.0]" />
  </ItemGroup>
</Project>
'@
        & dotnet restore (Join-Path $proj 'other.csproj') --packages (Join-Path $proj 'packages') -v q | Out-Null
        $pk = Join-Path $proj 'packages'
        $dlls = @("$pk/microsoft.identitymodel.abstractions/6.35.0/lib/net6.0/Microsoft.IdentityModel.Abstractions.dll", "$pk/microsoft.identity.client/4.55.0/lib/net6.0/Microsoft.Identity.Client.dll",
                  "$pk/azure.core/1.36.0/lib/net6.0/Azure.Core.dll", "$pk/azure.identity/1.10.2/lib/netstandard2.0/Azure.Identity.dll")
        foreach ($d in $dlls) { Test-Path $d | Should -BeTrue -Because $d }
        $load = ($dlls | ForEach-Object { "Add-Type -Path '$_'" }) -join "`n"
        $out = Invoke-Cloud @"
$load
`$null = [Azure.Identity.ManagedIdentityCredential]::new()
`$t = New-MailTransport -Graph -Mailbox reports@contoso.com -GraphEndpoint `$graph @app -CertificatePath '$($cloud.Keys)/app.pfx'
(Send-ResilientMail -Transport `$t -From reports@contoso.com -To alc@example.com -Subject alc -Body b -NoDelay).Status
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -in 'Azure.Identity', 'Azure.Core', 'Microsoft.Identity.Client' } | ForEach-Object {
  "`$(`$_.GetName().Name) v`$(`$_.GetName().Version.ToString(2)) default=`$([Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_) -eq [Runtime.Loader.AssemblyLoadContext]::Default)" } | Sort-Object
"@
        $out | Should -Contain 'Sent'
        $out | Should -Contain 'Azure.Identity v1.10 default=True'
        $out | Should -Contain 'Azure.Core v1.36 default=True'
        $out | Should -Contain 'Microsoft.Identity.Client v4.55 default=True'
        # Ours, in the module's own context: Azure.Identity 1.21's credentials are compiled against Azure.Core (its types
        # are forwarded there), so the Azure.Core and MSAL of the module are what a token request loads.
        @($out | Where-Object { $_ -match '^Azure.Core v1\.(\d+) default=False' -and [int]$Matches[1] -ge 50 }).Count | Should -Be 1
        @($out | Where-Object { $_ -match '^Microsoft.Identity.Client v4\.(\d+) default=False' -and [int]$Matches[1] -gt 55 }).Count | Should -Be 1
    }
}

Describe 'New-MailTransport''s token parameters' {
    It 'says which combinations cannot work, naming the parameters' {
        $s = ConvertTo-SecureString 'x-not-a-real-secret' -AsPlainText -Force
        { New-MailTransport -Graph -Mailbox reports@contoso.com } | Should -Throw '*-ManagedIdentity, or -TenantId and -ClientId*'
        { New-MailTransport -Graph -Mailbox reports@contoso.com -ManagedIdentity -TenantId t -ClientId c -ClientSecret $s } | Should -Throw '*one way of getting tokens*'
        { New-MailTransport -Graph -Mailbox reports@contoso.com -ClientSecret $s } | Should -Throw '*tenant*(-TenantId)*'
        { New-MailTransport -SmtpServer smtp.office365.com -UseStartTls -UserName r@contoso.com -OAuthToken $s -TenantId t -ClientId c -ClientSecret $s } | Should -Throw '*cannot be used together*'
        { New-MailTransport -SmtpServer smtp.office365.com -UseStartTls -TenantId t -ClientId c -ClientSecret $s } | Should -Throw '*-UserName*'
        { New-MailTransport -Graph -Mailbox reports@contoso.com -TenantId t -ClientId c -CertificateThumbprint 00112233445566778899AABBCCDDEEFF00112233 } | Should -Throw '*No certificate with thumbprint*'
        { New-MailTransport -SmtpServer smtp.gmail.com -UseStartTls -UserName ops@example.com -GoogleServiceAccountKeyPath (Join-Path $TestDrive 'missing.json') } | Should -Throw '*does not exist*'
    }

    It 'shows where tokens come from, never a secret' {
        $s = ConvertTo-SecureString 'x-not-a-real-secret-42' -AsPlainText -Force
        $t = New-MailTransport -Graph -Mailbox reports@contoso.com -TenantId contoso.onmicrosoft.com -ClientId 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 -ClientSecret $s
        $t.Kind | Should -Be 'Graph'
        $t.RenewsTokens | Should -BeTrue
        $t.TokensFrom | Should -Match 'Microsoft Entra app 0f1e2d3c.* with a client secret'
        foreach ($text in @(($t | Format-List * | Out-String), ($t | Format-Table | Out-String), ($t | ConvertTo-Json -Depth 5), "$t")) { $text | Should -Not -Match 'x-not-a-real-secret-42' }
    }
}
