# Starts and stops smtp4dev (the pinned local dotnet tool) on free loopback ports, and reads what it holds.
# Used by the Pester tests and by the demo; nothing here is assumed to be running beforehand.
Set-StrictMode -Version Latest
$script:RepoRoot = Split-Path -Parent $PSScriptRoot

function Get-FreeTcpPort {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $listener.Start()
    try { $listener.LocalEndpoint.Port } finally { $listener.Stop() }
}

function Test-TcpPort([int]$Port, [int]$TimeoutMs = 500) {
    $client = [System.Net.Sockets.TcpClient]::new()
    try { $client.ConnectAsync('127.0.0.1', $Port).Wait($TimeoutMs) -and $client.Connected } catch { $false } finally { $client.Dispose() }
}

function Start-Smtp4dev {
    <# Starts smtp4dev bound to 127.0.0.1 and waits until its SMTP port and web API answer. #>
    [CmdletBinding()]
    param(
        [int]$SmtpPort = (Get-FreeTcpPort),
        [int]$WebPort = (Get-FreeTcpPort),
        [ValidateSet('None', 'StartTls', 'ImplicitTls')][string]$TlsMode = 'None',
        # user=password pairs; with -AuthenticationRequired the server refuses anything else.
        [string[]]$User = @(),
        [switch]$AuthenticationRequired,
        # Where its settings, certificate and (with -Persistent) database live; a new temp folder by default.
        [string]$DataDirectory,
        [switch]$Persistent,
        [int]$StartTimeoutSeconds = 90
    )
    if (-not $DataDirectory) { $DataDirectory = Join-Path ([IO.Path]::GetTempPath()) "smtp4dev-$([guid]::NewGuid().ToString('n').Substring(0, 8))" }
    $null = New-Item -ItemType Directory -Force -Path $DataDirectory
    $db = if ($Persistent) { "--db=$(Join-Path $DataDirectory 'messages.db')" } else { '--db=' }
    $arguments = @('tool', 'run', 'smtp4dev', '--',
        "--baseappdatapath=$DataDirectory", $db, '--nousersettings', '--hostname=localhost',
        '--bindaddress=127.0.0.1', "--smtpport=$SmtpPort", "--urls=http://127.0.0.1:$WebPort",
        '--imapport=', '--pop3port=', "--tlsmode=$TlsMode", '--messagestokeep=100000', '--sessionstokeep=100000')
    foreach ($u in $User) { $arguments += "--user=$u" }
    if ($AuthenticationRequired) { $arguments += '--authenticationrequired'; $arguments += '--smtpallowanycredentials-' }
    $log = Join-Path $DataDirectory 'smtp4dev.log'
    $process = Start-Process -FilePath 'dotnet' -ArgumentList $arguments -WorkingDirectory $script:RepoRoot -PassThru `
        -RedirectStandardOutput $log -RedirectStandardError "$log.err"
    $server = [pscustomobject]@{
        Process = $process; SmtpPort = $SmtpPort; WebPort = $WebPort; ApiUrl = "http://127.0.0.1:$WebPort"
        DataDirectory = $DataDirectory; Log = $log; TlsMode = $TlsMode
    }
    $deadline = [DateTime]::UtcNow.AddSeconds($StartTimeoutSeconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        if ($process.HasExited) { throw "smtp4dev exited at start (code $($process.ExitCode)): $(Get-Content $log -Raw -ErrorAction SilentlyContinue)" }
        if ((Test-TcpPort $SmtpPort) -and (Test-TcpPort $WebPort)) {
            try { $null = Invoke-RestMethod "$($server.ApiUrl)/api/messages" -TimeoutSec 5; return $server } catch { }
        }
        Start-Sleep -Milliseconds 250
    }
    Stop-Smtp4dev $server
    throw "smtp4dev did not start within $StartTimeoutSeconds s; see $log"
}

function Stop-Smtp4dev {
    [CmdletBinding()]
    param([Parameter(Mandatory, ValueFromPipeline)]$Server)
    process {
        if (-not $Server.Process.HasExited) {
            $Server.Process.Kill($true)
            $null = $Server.Process.WaitForExit(15000)
        }
        # The port is free once nothing answers on it.
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while ((Test-TcpPort $Server.SmtpPort 200) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
    }
}

function Get-Smtp4devMessage {
    <# Every message the server holds (summaries: id, from, to, subject). #>
    param([Parameter(Mandatory)]$Server)
    $all = @(); $page = 1
    do {
        $r = Invoke-RestMethod "$($Server.ApiUrl)/api/messages?page=$page&pageSize=500" -TimeoutSec 30
        $all += @($r.results)
        $page++
    } while ($page -le $r.pageCount)
    $all
}

function Get-Smtp4devMessageSource {
    param([Parameter(Mandatory)]$Server, [Parameter(Mandatory)][string]$Id)
    # The raw RFC 5322 text; Invoke-RestMethod would try to parse it by its content type.
    $r = Invoke-WebRequest "$($Server.ApiUrl)/api/messages/$Id/raw" -TimeoutSec 30
    if ($r.Content -is [byte[]]) { [System.Text.Encoding]::UTF8.GetString($r.Content) } else { [string]$r.Content }
}

function Get-Smtp4devSession {
    <# The SMTP sessions (one per connection) the server saw. #>
    param([Parameter(Mandatory)]$Server)
    $r = Invoke-RestMethod "$($Server.ApiUrl)/api/sessions?page=1&pageSize=1000" -TimeoutSec 30
    if ($r.PSObject.Properties['results']) { @($r.results) } else { @($r) }
}

function Clear-Smtp4dev {
    param([Parameter(Mandatory)]$Server)
    $null = Invoke-RestMethod -Method Delete "$($Server.ApiUrl)/api/messages/*" -TimeoutSec 30
    $null = Invoke-RestMethod -Method Delete "$($Server.ApiUrl)/api/sessions/*" -TimeoutSec 30 -ErrorAction SilentlyContinue
}

Export-ModuleMember -Function Get-FreeTcpPort, Test-TcpPort, Start-Smtp4dev, Stop-Smtp4dev, Get-Smtp4devMessage, Get-Smtp4devMessageSource, Get-Smtp4devSession, Clear-Smtp4dev
