# SendGrid (the fake in tests/ResilientMail.TestServers) and Amazon SES (aws-ses-v2-local behind the
# recording proxy), through the built module: New-MailTransport, Send-ResilientMail, Start-MailCampaign.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Module (Join-Path $RepoRoot 'build/TestServers.psm1') -Force
    $script:Key = 'SG.pester-fake-key.Zq8vN3xLk2Pw7Rt5'
    $script:AwsSecret = 'pester/fake+secret/Kx9Lm2Nb4Vc6Xz8Qw0Er3Ty5Ui7Op'
    $script:sg = Start-FakeSendGrid -ApiKey $Key
    $script:ses = Start-SesEmulator

    # AWS settings come only from what the tests write here, never from the machine.
    $script:savedEnv = @{}
    foreach ($n in 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_REGION', 'AWS_DEFAULT_REGION',
                   'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'SENDGRID_API_KEY', 'RESILIENTMAIL_DATA') {
        $savedEnv[$n] = [Environment]::GetEnvironmentVariable($n)
        [Environment]::SetEnvironmentVariable($n, $null)
    }
    $env:AWS_EC2_METADATA_DISABLED = 'true'
    $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
    $aws = Join-Path $TestDrive 'aws'
    $null = New-Item -ItemType Directory -Force $aws
    $env:AWS_SHARED_CREDENTIALS_FILE = Join-Path $aws 'credentials'
    $env:AWS_CONFIG_FILE = Join-Path $aws 'config'
    Set-Content $env:AWS_SHARED_CREDENTIALS_FILE "[mailer]`naws_access_key_id = AKIAPESTERPROFILE001`naws_secret_access_key = $AwsSecret`n"
    Set-Content $env:AWS_CONFIG_FILE "[profile mailer]`nregion = eu-west-1`n"

    $script:sgKey = ConvertTo-SecureString $Key -AsPlainText -Force
    $script:sgT = New-MailTransport -SendGrid -ApiKey $sgKey -BaseUri $sg.BaseUri
    $script:sesT = New-MailTransport -Ses -ProfileName mailer -EndpointUrl $ses.BaseUri
    $script:attachment = Join-Path $TestDrive 'report.csv'
    Set-Content $attachment "a,b`n1,2"

    function Get-SendGridJson { @(Get-FakeRequest $sg | Where-Object Path -eq '/v3/mail/send' | ForEach-Object { $_.Body | ConvertFrom-Json }) }
    function New-Rows([int]$Count, [string]$Prefix = 'r') {
        1..$Count | ForEach-Object { [pscustomobject]@{ Email = "$Prefix$_@example.com"; FirstName = "Name$_" } }
    }
}

AfterAll {
    if ($sg) { Stop-TestServer $sg }
    if ($ses) { Stop-TestServer $ses }
    foreach ($n in $savedEnv.Keys) { [Environment]::SetEnvironmentVariable($n, $savedEnv[$n]) }
}

Describe 'New-MailTransport for SendGrid and Amazon SES' {
    It 'makes a SendGrid transport from -ApiKey, -Credential or SENDGRID_API_KEY, and never shows the key' {
        $sgT.Kind | Should -Be 'SendGrid'
        $sgT.BaseUri | Should -Be "$($sg.BaseUri)/"
        $sgT.CredentialSource | Should -Be 'parameter'
        $fromCred = New-MailTransport -SendGrid -Credential (New-TestCredential 'apikey' $Key) -BaseUri $sg.BaseUri
        $fromCred.HasCredential | Should -BeTrue
        $env:SENDGRID_API_KEY = $Key
        try { (New-MailTransport -SendGrid -BaseUri $sg.BaseUri).CredentialSource | Should -Be 'environment variable SENDGRID_API_KEY' }
        finally { $env:SENDGRID_API_KEY = $null }
        $file = Join-Path $TestDrive 'sg.xml'
        $sgT | Export-Clixml $file
        foreach ($text in @(($sgT | Format-List * | Out-String), ($sgT | ConvertTo-Json -Depth 5), (Get-Content $file -Raw), "$sgT", ($fromCred | Format-List * | Out-String))) {
            $text | Should -Not -Match ([regex]::Escape($Key))
        }
    }

    It 'says where to put the key when there is none' {
        { New-MailTransport -SendGrid -BaseUri $sg.BaseUri } | Should -Throw -ErrorId 'InvalidTransport,ResilientMail.Commands.NewMailTransportCommand' -ExpectedMessage '*SENDGRID_API_KEY*'
    }

    It 'makes an SES transport from a profile (its region), explicit keys or environment variables' {
        $sesT.Kind | Should -Be 'Ses'
        $sesT.Region | Should -Be 'eu-west-1'
        $sesT.CredentialSource | Should -Be 'AWS profile mailer'
        $explicit = New-MailTransport -Ses -Region us-east-2 -Credential (New-TestCredential 'AKIAPESTEREXPLICIT01' $AwsSecret) -EndpointUrl $ses.BaseUri
        $explicit.Region | Should -Be 'us-east-2'
        $explicit.CredentialSource | Should -Be 'parameter'
        $env:AWS_ACCESS_KEY_ID = 'AKIAPESTERENVIRON001'; $env:AWS_SECRET_ACCESS_KEY = $AwsSecret; $env:AWS_REGION = 'ap-south-1'
        try {
            $fromEnv = New-MailTransport -Ses -EndpointUrl $ses.BaseUri
            $fromEnv.Region | Should -Be 'ap-south-1'
            $fromEnv.CredentialSource | Should -Be 'the standard AWS credential chain'
        } finally { $env:AWS_ACCESS_KEY_ID = $null; $env:AWS_SECRET_ACCESS_KEY = $null; $env:AWS_REGION = $null }
        foreach ($t in $sesT, $explicit) {
            ($t | Format-List * | Out-String) + ($t | ConvertTo-Json -Depth 5) | Should -Not -Match ([regex]::Escape($AwsSecret))
        }
    }

    It 'asks for a region when none is set, and names a missing profile' {
        { New-MailTransport -Ses -Credential (New-TestCredential 'AKIAPESTEREXPLICIT01' $AwsSecret) } | Should -Throw -ExpectedMessage '*-Region*'
        { New-MailTransport -Ses -Region eu-west-1 -ProfileName nosuchprofile } | Should -Throw -ExpectedMessage "*nosuchprofile*"
    }
}

Describe 'Send-ResilientMail through SendGrid' {
    BeforeEach { Reset-Fake $sg }

    It 'sends HTML, attachments, cc and bcc as SendGrid JSON and returns its message id' {
        $r = Send-ResilientMail -Transport $sgT -From 'Ops <ops@example.com>' -To ann@example.com -Cc carol@example.com -Bcc dave@example.com `
            -Subject 'Report' -Body 'see attached' -HtmlBody '<b>see attached</b>' -Attachments $attachment -NoDelay
        $r.Status | Should -Be 'Sent'
        $r.MessageId | Should -Match '^fake\d{6}sg$'
        $json = Get-SendGridJson
        $json.Count | Should -Be 1
        $json[0].personalizations[0].to[0].email | Should -Be 'ann@example.com'
        $json[0].personalizations[0].cc[0].email | Should -Be 'carol@example.com'
        $json[0].personalizations[0].bcc[0].email | Should -Be 'dave@example.com'
        $json[0].content.type | Should -Be @('text/plain', 'text/html')
        $json[0].attachments[0].filename | Should -Be 'report.csv'
        [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($json[0].attachments[0].content)) | Should -Match 'a,b'
    }

    It 'sends nothing with -WhatIf' {
        $r = Send-ResilientMail -Transport $sgT -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -WhatIf
        $r | Should -BeNullOrEmpty
        @(Get-FakeRequest $sg).Count | Should -Be 0
    }

    It 'waits out a 429 as SendGrid says, showing it in verbose, then sends once' {
        $reset = [DateTimeOffset]::UtcNow.AddSeconds(2).ToUnixTimeSeconds()
        Add-FakeFault $sg @{ Status = 429; Headers = @{ 'X-RateLimit-Reset' = "$reset"; 'X-RateLimit-Remaining' = '0' }; Body = '{"errors":[{"field":null,"message":"too many requests"}]}' }
        $out = Send-ResilientMail -Transport $sgT -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -Verbose 4>&1
        $result = $out | Where-Object { $_ -is [ResilientMail.MailDeliveryResult] }
        $verbose = ($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }) -join "`n"
        $result.Status | Should -Be 'Sent'
        $result.Attempts | Should -Be 2
        $verbose | Should -Match 'rate limiting'
        @(Get-FakeRequest $sg).Count | Should -Be 2
    }

    It 'stops on a rejected key with AuthenticationFailed and SendGrid''s own message, after one request' {
        $bad = New-MailTransport -SendGrid -ApiKey (ConvertTo-SecureString 'SG.wrong' -AsPlainText -Force) -BaseUri $sg.BaseUri
        $err = { New-Rows 2 | Send-ResilientMail -Transport $bad -From ops@example.com -Subject s -Body b -NoDelay -ErrorAction Stop } |
            Should -Throw -ErrorId 'AuthenticationFailed,ResilientMail.Commands.SendResilientMailCommand' -PassThru
        $err.Exception.Message | Should -Match 'authorization grant is invalid'
        $err.ErrorDetails.RecommendedAction | Should -Match 'ApiKey'
        @(Get-FakeRequest $sg).Count | Should -Be 1
    }

    It 'logs every attempt, the retry with its wait and reason, and the result to -LogPath as JSON lines, without the key' {
        Add-FakeFault $sg @{ Status = 500; Body = '{"errors":[{"message":"internal"}]}' }
        $log = Join-Path $TestDrive 'sg-run.log'
        $r = Send-ResilientMail -Transport $sgT -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -RetryBaseDelay '00:00:00.2' -LogPath $log
        $r.Status | Should -Be 'Sent'
        $raw = Get-Content $log -Raw
        $raw | Should -Not -Match ([regex]::Escape($Key))
        $lines = Get-Content $log | ForEach-Object { $_ | ConvertFrom-Json }
        $lines.event | Should -Be @('start', 'attempt', 'retry', 'attempt', 'delivered', 'result', 'end')
        ($lines.run | Sort-Object -Unique).Count | Should -Be 1
        $lines[0].cmdlet | Should -Be 'Send-ResilientMail'
        $retry = $lines | Where-Object event -eq 'retry'
        $retry.reason | Should -Be 'ServerBusy'
        $retry.waitMs | Should -BeGreaterThan 100
        $result = $lines | Where-Object event -eq 'result'
        $result.status | Should -Be 'Sent'
        $result.attempts | Should -Be 2
        $result.messageId | Should -Be $r.MessageId
        $result.to | Should -Be 'ann@example.com'
    }

    It 'reports a 400 with the field SendGrid names' {
        Add-FakeFault $sg @{ Status = 400; Body = '{"errors":[{"message":"The from email does not contain a valid address.","field":"from.email","help":"x"}]}' }
        $r = Send-ResilientMail -Transport $sgT -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -ErrorVariable errs -ErrorAction SilentlyContinue
        $r.Status | Should -Be 'Failed'
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'MessageRejected,*'
        $errs[0].Exception.Message | Should -Match 'from\.email: The from email'
    }
}

Describe 'Send-ResilientMail through Amazon SES (aws-ses-v2-local)' {
    BeforeEach { Clear-SesStore $ses }

    It 'sends raw MIME with HTML, attachments, cc and bcc; the emulator stores it and SES''s message id comes back' {
        $r = Send-ResilientMail -Transport $sesT -From 'Ops <ops@example.com>' -To ann@example.com -Cc carol@example.com -Bcc dave@example.com `
            -Subject 'Quarterly' -Body 'plain' -HtmlBody '<h1>Quarterly</h1>' -Attachments $attachment -NoDelay
        $r.Status | Should -Be 'Sent'
        $stored = Get-SesStore $ses
        $stored.Count | Should -Be 1
        $r.MessageId | Should -Be $stored[0].messageId
        $stored[0].subject | Should -Be 'Quarterly'
        $stored[0].body.html | Should -Match '<h1>Quarterly</h1>'
        $stored[0].destination.to | Should -Be @('ann@example.com')
        $stored[0].destination.cc | Should -Be @('carol@example.com')
        $stored[0].attachments[0].filename | Should -Be 'report.csv'
        # Bcc travels in the envelope (Destination), never in the headers the recipients see.
        $request = (Get-FakeRequest $ses)[0]
        $body = $request.Body | ConvertFrom-Json
        $body.Destination.BccAddresses | Should -Be @('dave@example.com')
        [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($body.Content.Raw.Data)) | Should -Not -Match 'dave@example.com'
        $request.Headers.Authorization | Should -Match '^AWS4-HMAC-SHA256 Credential=AKIAPESTERPROFILE001/\d{8}/eu-west-1/ses/aws4_request'
    }

    It 'sends nothing with -WhatIf, and a campaign with -WhatIf sends nothing through either provider' {
        $null = Send-ResilientMail -Transport $sesT -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -WhatIf 6>&1
        Reset-Fake $sg
        $null = New-Rows 3 'w' | Start-MailCampaign -Name 'whatif-sg' -Transport $sgT -From news@example.com -Subject 's' -Body 'b' -NoDelay -WhatIf 6>&1
        $null = New-Rows 3 'w' | Start-MailCampaign -Name 'whatif-ses' -Transport $sesT -From news@example.com -Subject 's' -Body 'b' -NoDelay -WhatIf 6>&1
        @(Get-FakeRequest $ses).Count | Should -Be 0
        @(Get-SesStore $ses).Count | Should -Be 0
        @(Get-FakeRequest $sg).Count | Should -Be 0
    }

    It 'retries a 500 and a throttle injected by the proxy, and stores the message once' {
        Add-FakeFault $ses @{ Status = 500; Body = '{"message":"InternalFailure"}' }, @{ Status = 429; Headers = @{ 'x-amzn-ErrorType' = 'TooManyRequestsException' }; Body = '{"message":"Too many requests"}' }
        $r = Send-ResilientMail -Transport $sesT -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -RetryBaseDelay '00:00:00.1'
        $r.Status | Should -Be 'Sent'
        $r.Attempts | Should -Be 3
        @(Get-SesStore $ses).Count | Should -Be 1
    }

    It 'stops at once on a suspended account and says so' {
        Add-FakeFault $ses @{ Status = 400; Headers = @{ 'x-amzn-ErrorType' = 'AccountSuspendedException' }; Body = '{"message":"Account suspended"}'; Times = 5 }
        $err = { New-Rows 2 | Send-ResilientMail -Transport $sesT -From ops@example.com -Subject s -Body b -NoDelay -ErrorAction Stop } |
            Should -Throw -ErrorId 'SendingPaused,ResilientMail.Commands.SendResilientMailCommand' -PassThru
        $err.Exception.Message | Should -Match 'AccountSuspendedException: Account suspended'
        @(Get-FakeRequest $ses).Count | Should -Be 1
        @(Get-SesStore $ses).Count | Should -Be 0
    }
}

Describe 'Start-MailCampaign through SendGrid and SES' {
    BeforeEach { Reset-Fake $sg; Clear-SesStore $ses }

    It 'sends a campaign through SendGrid, one request per recipient, journal without the key' {
        $out = New-Rows 6 | Start-MailCampaign -Name 'sg-six' -Transport $sgT -From news@example.com -Subject 'Hi {{FirstName}}' -Body 'Hello {{FirstName}}' `
            -UnsubscribeUrl 'https://example.com/u?e={{Email}}' -NoDelay
        $summary = $out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
        $summary.Sent | Should -Be 6
        $json = Get-SendGridJson
        $json.Count | Should -Be 6
        ($json | ForEach-Object { $_.personalizations[0].to[0].email } | Sort-Object) | Should -Be (1..6 | ForEach-Object { "r$_@example.com" } | Sort-Object)
        ($json | Where-Object { $_.personalizations[0].to[0].email -eq 'r3@example.com' }).subject | Should -Be 'Hi Name3'
        ($json | Where-Object { $_.personalizations[0].to[0].email -eq 'r3@example.com' }).headers.'List-Unsubscribe' | Should -Be '<https://example.com/u?e=r3%40example.com>'
        $recipients = @(Get-MailCampaign -Name 'sg-six' -Recipients)
        ($recipients | Where-Object Status -eq 'Sent').Count | Should -Be 6
        $recipients[0].MessageId | Should -Match '^fake\d{6}sg$'
        Get-ChildItem $env:RESILIENTMAIL_DATA -Recurse -File | ForEach-Object { Get-Content $_.FullName -Raw } | Should -Not -Match ([regex]::Escape($Key))
    }

    It 'pauses a SendGrid campaign at once on a refused key, and resume needs the transport again' {
        $bad = New-MailTransport -SendGrid -ApiKey (ConvertTo-SecureString 'SG.wrong' -AsPlainText -Force) -BaseUri $sg.BaseUri
        { New-Rows 5 | Start-MailCampaign -Name 'sg-bad' -Transport $bad -From news@example.com -Subject 's' -Body 'b' -NoDelay -ErrorAction Stop } |
            Should -Throw -ErrorId 'CampaignPaused,ResilientMail.Commands.StartMailCampaignCommand'
        @(Get-FakeRequest $sg).Count | Should -Be 1
        { Start-MailCampaign -Name 'sg-bad' -Resume -ErrorAction Stop } | Should -Throw -ErrorId 'CredentialRequired,ResilientMail.Commands.StartMailCampaignCommand'
        $out = New-Rows 5 | Start-MailCampaign -Name 'sg-bad' -Resume -Transport $sgT -NoDelay
        ($out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }).Sent | Should -Be 5
        @(Get-SendGridJson).Count | Should -Be 6
    }

    It 'resumes a campaign whose key came from SENDGRID_API_KEY by name alone' {
        $env:SENDGRID_API_KEY = $Key
        try {
            $t = New-MailTransport -SendGrid -BaseUri $sg.BaseUri
            $csv = Join-Path $TestDrive 'env.csv'
            New-Rows 4 'e' | Export-Csv $csv
            Add-FakeFault $sg @{ Status = 401; Body = '{"errors":[{"field":null,"message":"The provided authorization grant is invalid, expired, or revoked"}]}'; Times = 1 }
            { Start-MailCampaign -Name 'sg-env' -Path $csv -Transport $t -From news@example.com -Subject 's' -Body 'b' -NoDelay -ErrorAction Stop } |
                Should -Throw -ErrorId 'CampaignPaused,ResilientMail.Commands.StartMailCampaignCommand'
            $out = Start-MailCampaign -Name 'sg-env' -Resume -NoDelay
            ($out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }).Sent | Should -Be 4
        } finally { $env:SENDGRID_API_KEY = $null }
    }

    It 'logs a campaign''s results with the campaign and row' {
        $log = Join-Path $TestDrive 'campaign.log'
        $null = New-Rows 3 'l' | Start-MailCampaign -Name 'logged' -Transport $sgT -From news@example.com -Subject 's' -Body 'b' -NoDelay -LogPath $log
        $lines = Get-Content $log | ForEach-Object { $_ | ConvertFrom-Json }
        $lines[0].event | Should -Be 'start'
        $lines[-1].event | Should -Be 'end'
        $lines[-1].text | Should -Match "Campaign 'logged' Completed: sent 3"
        $results = @($lines | Where-Object event -eq 'result')
        $results.Count | Should -Be 3
        $results.campaign | Sort-Object -Unique | Should -Be 'logged'
        ($results.row | Sort-Object) | Should -Be @(1, 2, 3)
    }

    It 'sends a campaign through SES with cc, bcc and an attachment, each recipient once' {
        $out = New-Rows 5 's' | Start-MailCampaign -Name 'ses-five' -Transport $sesT -From news@example.com -Subject 'Hi {{FirstName}}' `
            -HtmlBody '<p>Hi {{FirstName}}</p>' -Cc audit@example.com -Bcc archive@example.com -Attachments $attachment -NoDelay
        ($out | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }).Sent | Should -Be 5
        $stored = Get-SesStore $ses
        $stored.Count | Should -Be 5
        ($stored | ForEach-Object { $_.destination.to[0] } | Sort-Object) | Should -Be (1..5 | ForEach-Object { "s$_@example.com" })
        $stored | ForEach-Object { $_.destination.cc | Should -Be @('audit@example.com') }
        $stored | ForEach-Object { $_.attachments[0].filename | Should -Be 'report.csv' }
        (Get-FakeRequest $ses | Where-Object Path -like '*/outbound-emails' | ForEach-Object { ($_.Body | ConvertFrom-Json).Destination.BccAddresses }) | Should -Be (1..5 | ForEach-Object { 'archive@example.com' })
        # Resumed by name: the profile is resolved again, nothing is re-sent.
        $again = Start-MailCampaign -Name 'ses-five' -Resume -NoDelay
        ($again | Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }).SentThisRun | Should -Be 0
        @(Get-SesStore $ses).Count | Should -Be 5
    }
}

Describe 'Secrets never reach any stream, result, error or file' {
    It 'finds neither the SendGrid key nor the AWS secret anywhere after sends, failures and a campaign' {
        Reset-Fake $sg; Clear-SesStore $ses
        $sesExplicit = New-MailTransport -Ses -Region eu-west-1 -Credential (New-TestCredential 'AKIAPESTEREXPLICIT01' $AwsSecret) -EndpointUrl $ses.BaseUri
        Add-FakeFault $sg @{ Status = 500; Body = '{"errors":[{"message":"boom"}]}' }
        Add-FakeFault $ses @{ Status = 403; Headers = @{ 'x-amzn-ErrorType' = 'SignatureDoesNotMatch' }; Body = '{"message":"The request signature we calculated does not match"}' }
        $all = & {
            $sgT; $sesExplicit
            Send-ResilientMail -Transport $sgT -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -RetryBaseDelay '00:00:00.1' -Verbose -Debug
            try { Send-ResilientMail -Transport $sesExplicit -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -Verbose -Debug -ErrorAction Stop } catch { $_ }
            Send-ResilientMail -Transport $sesExplicit -From ops@example.com -To ann@example.com -Subject s -Body b -NoDelay -Verbose -Debug
            New-Rows 3 'x' | Start-MailCampaign -Name 'secrets' -Transport $sgT -From news@example.com -Subject 's' -Body 'b' -NoDelay -Verbose -Debug
            Get-MailCampaign -Name 'secrets'; Get-MailCampaign -Name 'secrets' -Recipients
        } *>&1
        $text = @(
            $all | ForEach-Object { $_ | Format-List * -Force | Out-String; if ($_ -is [System.Management.Automation.ErrorRecord]) { $_.Exception.ToString() } }
            $all | ForEach-Object { try { $_ | ConvertTo-Json -Depth 4 -WarningAction SilentlyContinue } catch { } }
            Get-ChildItem $env:RESILIENTMAIL_DATA -Recurse -File | ForEach-Object { Get-Content $_.FullName -Raw }
        ) -join "`n"
        $text.Length | Should -BeGreaterThan 1000
        $text | Should -Match 'SignatureDoesNotMatch'
        $text | Should -Not -Match ([regex]::Escape($Key))
        $text | Should -Not -Match ([regex]::Escape($AwsSecret))
    }
}

Describe 'The provider''s own quota is the pace (Amazon SES GetAccount)' {
    BeforeAll {
        # An emulator of its own, whose account publishes a low rate and a small 24-hour quota of which 2 are used.
        $env:AWS_SES_ACCOUNT = ConvertTo-Json -Compress -Depth 5 @{
            DedicatedIpAutoWarmupEnabled = $false; EnforcementStatus = 'HEALTHY'; ProductionAccessEnabled = $true; SendingEnabled = $true
            Details = @{ AdditionalContactEmailAddresses = @(); ContactLanguage = 'EN'; MailType = 'TRANSACTIONAL'; ReviewDetails = @{ CaseId = 'c'; Status = 'GRANTED' }; UseCaseDescription = 'u'; WebsiteURL = 'https://example.com' }
            SendQuota = @{ Max24HourSend = 6; MaxSendRate = 4; SentLast24Hours = 2 }
            SuppressionAttributes = @{ SuppressedReasons = @() }
        }
        try { $script:quotaSes = Start-SesEmulator } finally { Remove-Item Env:AWS_SES_ACCOUNT }
        $script:quotaT = New-MailTransport -Ses -ProfileName mailer -EndpointUrl $quotaSes.BaseUri
    }
    AfterAll { if ($quotaSes) { Stop-TestServer $quotaSes } }

    It 'paces to the account''s max send rate and pauses before its 24-hour quota, with the time and the resume command' {
        $verbose = $null
        New-Rows 8 'q' | Start-MailCampaign -Name 'ses-quota' -Transport $quotaT -From news@example.com -Subject 's' -Body 'b' -NoDelay -Verbose -WarningVariable said -WarningAction SilentlyContinue 4>&1 |
            ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { $verbose += @($_.Message) } }
        ($verbose -join "`n") | Should -Match 'at most 4 per 1 s \(from the Amazon SES account''s quota \(4 a second, 6 in 24 hours, 2 sent'
        ($said -join "`n") | Should -Match '6 recipients in 24 hours.*may resume after .*UTC'
        ($said -join "`n") | Should -Match 'Start-MailCampaign -Name ''ses-quota'''
        @($said | Where-Object { "$_" -match 'recipients in 24 hours' }).Count | Should -Be 1   # the rest of the piped rows are not taken, and said once
        @(Get-SesStore $quotaSes).Count | Should -Be 4   # the account had sent 2 of its 6
        (Get-MailCampaign -Name 'ses-quota').State | Should -Be 'Paused'
    }

    It 'lets an explicit -RateLimit and -MaxRecipientsPerDay win' {
        $c = New-Rows 3 'own' | Start-MailCampaign -Name 'ses-own' -Transport $quotaT -From news@example.com -Subject 's' -Body 'b' -NoDelay -RateLimit '100/second' -MaxRecipientsPerDay 0 |
            Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
        $c.State | Should -Be 'Completed'
        $c.Sent | Should -Be 3
    }
}
