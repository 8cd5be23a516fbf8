# Starts and stops the HTTP fakes the provider tests need, each on a free loopback port:
#   - the SendGrid fake (tests/ResilientMail.TestServers, "sendgrid" role), and
#   - aws-ses-v2-local (npm, pinned in tests/ses) behind the recording, fault-injecting proxy.
# Control of a fake: Get-FakeRequest, Add-FakeFault, Reset-Fake. Nothing is assumed to be running beforehand.
Set-StrictMode -Version Latest
Import-Module (Join-Path $PSScriptRoot 'Smtp4dev.psm1') -Function Get-FreeTcpPort, Test-TcpPort
$script:RepoRoot = Split-Path -Parent $PSScriptRoot

function Get-TestServersDll {
    $dll = Join-Path $script:RepoRoot 'out/testservers/ResilientMail.TestServers.dll'
    if (-not (Test-Path $dll)) { throw "Test servers not built at $dll; run build.ps1 -Task Test." }
    $dll
}

function Wait-Listening($Process, [string]$Log, [int]$Port, [string]$What, [int]$TimeoutSeconds = 60) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        if ($Process.HasExited) { throw "$What exited at start (code $($Process.ExitCode)): $(Get-Content $Log -Raw -ErrorAction SilentlyContinue)" }
        if (Test-TcpPort $Port) { return }
        Start-Sleep -Milliseconds 100
    }
    $Process.Kill($true)
    throw "$What did not start within $TimeoutSeconds s; see $Log"
}

function Start-FakeHttp([string[]]$Arguments, [string]$What) {
    $port = Get-FreeTcpPort
    $log = Join-Path ([IO.Path]::GetTempPath()) "rm-fake-$([guid]::NewGuid().ToString('n').Substring(0, 8)).log"
    $process = Start-Process -FilePath 'dotnet' -ArgumentList (@((Get-TestServersDll)) + $Arguments + @('--port', $port)) -PassThru `
        -RedirectStandardOutput $log -RedirectStandardError "$log.err"
    Wait-Listening $process $log $port $What
    [pscustomobject]@{ Process = $process; Port = $port; BaseUri = "http://127.0.0.1:$port"; Log = $log }
}

function Start-FakeSendGrid {
    <# The SendGrid fake; requests must carry "Bearer <ApiKey>". #>
    param([Parameter(Mandatory)][string]$ApiKey)
    Start-FakeHttp @('sendgrid', '--api-key', $ApiKey) 'The SendGrid fake'
}

function Start-SesEmulator {
    <# aws-ses-v2-local on a free loopback port, and the recording proxy in front of it (BaseUri is the proxy). #>
    $main = Join-Path $script:RepoRoot 'tests/ses/node_modules/aws-ses-v2-local/dist/cli.js'
    if (-not (Test-Path $main)) { throw "aws-ses-v2-local is not installed at $main; run build.ps1 -Task Test (it runs npm ci in tests/ses)." }
    $port = Get-FreeTcpPort
    $log = Join-Path ([IO.Path]::GetTempPath()) "rm-ses-$([guid]::NewGuid().ToString('n').Substring(0, 8)).log"
    # SMTP_TRANSPORT would make the emulator relay what it stores; it must relay nowhere.
    $saved = $env:SMTP_TRANSPORT; $env:SMTP_TRANSPORT = $null
    try {
        $node = Start-Process -FilePath 'node' -ArgumentList @($main, '--host', '127.0.0.1', '--port', $port) -PassThru `
            -RedirectStandardOutput $log -RedirectStandardError "$log.err"
    } finally { $env:SMTP_TRANSPORT = $saved }
    Wait-Listening $node $log $port 'aws-ses-v2-local'
    $proxy = Start-FakeHttp @('proxy', '--upstream', "http://127.0.0.1:$port") 'The SES proxy'
    [pscustomobject]@{ Process = $proxy.Process; Port = $proxy.Port; BaseUri = $proxy.BaseUri; Log = $proxy.Log
                       Emulator = $node; EmulatorUri = "http://127.0.0.1:$port"; EmulatorLog = $log }
}

function Start-ScriptedSmtp {
    <#
    The scripted SMTP server (tests/ResilientMail.TestServers, "smtp" role) on a free loopback port. Rules answer commands:
    'Rcpt|b@example.com|550 5.1.1 User unknown|0' (phase|line contains|reply|times, 0 = always; "(reset)" drops the connection).
    #>
    param([string[]]$Rule = @(), [string]$Ehlo, [string]$Auth, [string]$OAuthCheck, [int]$MaxConnections,
        # 'N/S': at most N messages (MAIL FROM) taken in any S seconds, 450 4.7.1 "too much mail" beyond (a sliding window).
        [string]$Rate)
    $log = Join-Path ([IO.Path]::GetTempPath()) "rm-smtp-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    $record = "$log.record.jsonl"
    $arguments = @((Get-TestServersDll), 'smtp', '--record', $record)
    foreach ($r in $Rule) { $arguments += @('--rule', "`"$r`"") }
    if ($Ehlo) { $arguments += @('--ehlo', "`"$Ehlo`"") }
    if ($Auth) { $arguments += @('--auth', "`"$Auth`"") }
    if ($OAuthCheck) { $arguments += @('--oauth-check', $OAuthCheck) }
    if ($MaxConnections) { $arguments += @('--max-connections', $MaxConnections) }
    if ($Rate) { $arguments += @('--rate', $Rate) }
    $process = Start-Process -FilePath 'dotnet' -ArgumentList $arguments -PassThru -RedirectStandardOutput "$log.out" -RedirectStandardError "$log.err"
    $deadline = [DateTime]::UtcNow.AddSeconds(60)
    while ([DateTime]::UtcNow -lt $deadline) {
        if ($process.HasExited) { throw "The scripted SMTP server exited at start: $(Get-Content "$log.err" -Raw -ErrorAction SilentlyContinue)" }
        $line = Get-Content "$log.out" -ErrorAction SilentlyContinue | Where-Object { $_ -match '^listening smtp://127\.0\.0\.1:(\d+)' } | Select-Object -First 1
        if ($line -and $line -match ':(\d+)$') { return [pscustomobject]@{ Process = $process; Port = [int]$Matches[1]; Record = $record } }
        Start-Sleep -Milliseconds 100
    }
    $process.Kill($true)
    throw 'The scripted SMTP server did not start within 60 s.'
}

function Get-ScriptedSmtpRecord {
    <# What the scripted server saw: Kind (command or message), Connection, Text; -Commands for the command lines only. #>
    param([Parameter(Mandatory)]$Server, [switch]$Commands, [switch]$Messages)
    $all = @(Get-Content $Server.Record -ErrorAction SilentlyContinue | Where-Object { $_ } | ForEach-Object { $_ | ConvertFrom-Json })
    if ($Commands) { return @($all | Where-Object kind -eq 'command' | ForEach-Object text) }
    if ($Messages) { return @($all | Where-Object kind -eq 'message' | ForEach-Object text) }
    $all
}

function Get-SesStore {
    <# What the emulator holds: one object per email (from, destination, subject, body, attachments). #>
    param([Parameter(Mandatory)]$Ses)
    @((Invoke-RestMethod "$($Ses.EmulatorUri)/store").emails | ForEach-Object { $_ })
}

function Clear-SesStore {
    param([Parameter(Mandatory)]$Ses)
    $null = Invoke-RestMethod -Method Post "$($Ses.EmulatorUri)/clear-store"
    Reset-Fake $Ses
}

function Get-FakeRequest {
    <# Every request the fake (or proxy) received: Method, Path, Headers, Body. #>
    param([Parameter(Mandatory)]$Server)
    # Invoke-RestMethod hands a JSON array over as one object: unroll it.
    @(Invoke-RestMethod "$($Server.BaseUri)/_fake/requests" | ForEach-Object { $_ })
}

function Add-FakeFault {
    <# Scripted answers for the next requests: @{ Status = 429; Headers = @{ 'Retry-After' = '1' }; Body = '...'; DelayMs = 0; Abort = $false; Times = 1 } #>
    param([Parameter(Mandatory)]$Server, [Parameter(Mandatory)][hashtable[]]$Fault)
    $null = Invoke-RestMethod -Method Post "$($Server.BaseUri)/_fake/faults" -ContentType 'application/json' -Body (ConvertTo-Json -InputObject @($Fault) -Depth 5)
}

function Reset-Fake {
    param([Parameter(Mandatory)]$Server)
    $null = Invoke-RestMethod -Method Post "$($Server.BaseUri)/_fake/reset"
}

function Stop-TestServer {
    param([Parameter(Mandatory, ValueFromPipeline)]$Server)
    process {
        foreach ($p in @($Server.Process) + @(if ($Server.PSObject.Properties['Emulator']) { $Server.Emulator })) {
            if ($p -and -not $p.HasExited) { $p.Kill($true); $null = $p.WaitForExit(10000) }
        }
    }
}


function Start-CloudStandIn {
    <#
    The Microsoft Entra / managed identity / Google token / Microsoft Graph stand-in (tests/ResilientMail.TestServers, "cloud"
    role) over HTTPS on a free loopback port, with a certificate made at start. Keys (server.pem to trust, app.pfx and app.cer
    of the app registration, google-sa.json) go to a folder of its own; every message Graph sends lands as .eml in Store.
    #>
    param([string[]]$Mailbox = @('reports@contoso.com'), [string]$DeniedMailbox = 'blocked@contoso.com', [int]$TokenLifetime = 3599)
    $dir = Join-Path ([IO.Path]::GetTempPath()) "rm-cloud-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    $null = New-Item -ItemType Directory -Force $dir
    $secret = 'Zx8~' + [guid]::NewGuid().ToString('n')
    $header = [guid]::NewGuid().ToString('n')
    $arguments = @((Get-TestServersDll), 'cloud', '--keys', (Join-Path $dir 'keys'), '--store', (Join-Path $dir 'store'), '--client-secret', $secret,
        '--identity-header', $header, '--token-lifetime', $TokenLifetime, '--denied-mailbox', $DeniedMailbox)
    foreach ($m in $Mailbox) { $arguments += @('--mailbox', $m) }
    $process = Start-Process -FilePath 'dotnet' -ArgumentList $arguments -PassThru -RedirectStandardOutput "$dir/out.log" -RedirectStandardError "$dir/err.log"
    $deadline = [DateTime]::UtcNow.AddSeconds(60)
    while ([DateTime]::UtcNow -lt $deadline) {
        if ($process.HasExited) { throw "The cloud stand-in exited at start: $(Get-Content "$dir/err.log" -Raw -ErrorAction SilentlyContinue)" }
        $line = Get-Content "$dir/out.log" -ErrorAction SilentlyContinue | Where-Object { $_ -match '^listening (https://127\.0\.0\.1:\d+/) app-thumbprint (\w+)' } | Select-Object -First 1
        if ($line) {
            $null = $line -match '^listening (https://127\.0\.0\.1:\d+/) app-thumbprint (\w+)'
            return [pscustomobject]@{
                Process = $process; BaseUri = $Matches[1]; Thumbprint = $Matches[2]; Keys = (Join-Path $dir 'keys'); Store = (Join-Path $dir 'store')
                ClientSecret = $secret; IdentityHeader = $header; Tenant = 'contoso.onmicrosoft.com'; ClientId = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'
                UserAssignedId = '11111111-2222-3333-4444-555555555555'
            }
        }
        Start-Sleep -Milliseconds 100
    }
    $process.Kill($true)
    throw 'The cloud stand-in did not start within 60 s.'
}

function Invoke-CloudControl {
    <# The stand-in's control endpoints: stats, requests, expire-tokens, faults (with -Body). Its certificate is its own. #>
    param([Parameter(Mandatory)]$Cloud, [Parameter(Mandatory)][string]$Action, $Body)
    $uri = "$($Cloud.BaseUri)_fake/$Action"
    if ($null -ne $Body) { Invoke-RestMethod -Method Post -Uri $uri -SkipCertificateCheck -ContentType 'application/json' -Body (ConvertTo-Json -InputObject @($Body) -Depth 6) }
    elseif ($Action -in 'expire-tokens') { Invoke-RestMethod -Method Post -Uri $uri -SkipCertificateCheck }
    else { Invoke-RestMethod -Uri $uri -SkipCertificateCheck }
}


# Azurite's well-known development account (published in Microsoft's documentation; it opens nothing but a local emulator).
$script:AzuriteAccount = 'devstoreaccount1'
$script:AzuriteKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

function Start-Azurite {
    <#
    Azurite's blob service (Microsoft's Azure Storage emulator, tests/azurite) on a loopback port: a free one, or -Port to
    start it again where it was, on the same -Location (its data folder), after Stop-TestServer. Telemetry is off.
    ConnectionString and Container(name) give what a test hands to -JournalStore and -JournalStoreSecret.
    #>
    param([int]$Port, [string]$Location,
        # HTTPS with this certificate and key (PEM), and Microsoft Entra tokens accepted (Azurite's "basic" OAuth: it reads the
        # token's audience, issuer and times, and does not check the signature); the shared key and SAS still work.
        [string]$Cert, [string]$Key)
    $main = Join-Path $script:RepoRoot 'tests/azurite/node_modules/azurite/dist/src/blob/main.js'
    if (-not (Test-Path $main)) { throw "Azurite is not installed at $main; run build.ps1 -Task Test (it runs npm ci in tests/azurite)." }
    if (-not $Port) { $Port = Get-FreeTcpPort }
    if (-not $Location) { $Location = Join-Path ([IO.Path]::GetTempPath()) "rm-azurite-$([guid]::NewGuid().ToString('n').Substring(0, 8))" }
    $null = New-Item -ItemType Directory -Force $Location
    $log = Join-Path $Location "azurite-$([guid]::NewGuid().ToString('n').Substring(0, 6)).log"
    $arguments = @($main, '--blobHost', '127.0.0.1', '--blobPort', $Port, '--location', $Location, '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry')
    if ($Cert) { $arguments += @('--cert', $Cert, '--key', $Key, '--oauth', 'basic') }
    $process = Start-Process -FilePath 'node' -ArgumentList $arguments -PassThru -RedirectStandardOutput $log -RedirectStandardError "$log.err"
    Wait-Listening $process $log $Port 'Azurite'
    $endpoint = "$(if ($Cert) { 'https' } else { 'http' })://127.0.0.1:$Port/$script:AzuriteAccount"
    [pscustomobject]@{
        Process = $process; Port = $Port; Location = $Location; Log = $log; Endpoint = $endpoint
        ConnectionString = "DefaultEndpointsProtocol=http;AccountName=$script:AzuriteAccount;AccountKey=$script:AzuriteKey;BlobEndpoint=$endpoint;"
        AccountKey = $script:AzuriteKey
    } | Add-Member -PassThru -MemberType ScriptMethod -Name Container -Value { param([string]$Name) "$($this.Endpoint)/$Name" }
}

function Stop-Azurite {
    <#
    Stops Azurite the way a service stops (SIGTERM), so that it saves what it acknowledged: it keeps its blob index in
    memory and writes it every 5 s, and a SIGKILL would lose writes it had already answered for (the real service does not).
    #>
    param([Parameter(Mandatory)]$Server)
    if ($Server.Process.HasExited) { return }
    if ($IsWindows) { $Server.Process.Kill($true) } else { & kill -TERM $Server.Process.Id }
    if (-not $Server.Process.WaitForExit(20000)) { $Server.Process.Kill($true); $null = $Server.Process.WaitForExit(10000) }
}

Export-ModuleMember -Function Start-CloudStandIn, Invoke-CloudControl, Start-ScriptedSmtp, Get-ScriptedSmtpRecord, Start-FakeSendGrid, Start-SesEmulator, Get-SesStore, Clear-SesStore, Get-FakeRequest, Add-FakeFault, Reset-Fake, Stop-TestServer, Start-Azurite, Stop-Azurite
