# Postfix itself, for the tests and benchmarks of real server policy (greylisting, rate and connection limits, access maps).
# Debian's postfix package is fetched and unpacked into out/postfix (never installed: the machine's apt state, /etc and
# services are not touched), and each instance runs from its own folder: its own main.cf and master.cf, queue and data
# directories and log, listening on a free loopback port and relaying everything it accepts to a local smtp4dev.
Set-StrictMode -Version Latest
Import-Module (Join-Path $PSScriptRoot 'Smtp4dev.psm1') -Function Get-FreeTcpPort, Test-TcpPort
$script:RepoRoot = Split-Path -Parent $PSScriptRoot
$script:Home = Join-Path $script:RepoRoot 'out/postfix'
# The version the tests were written against; when the archive has moved on (a security update), its candidate is taken.
$script:Pinned = '3.7.11-0+deb12u1'

function Install-Postfix {
    <#
    Fetches Debian's postfix package into out/postfix with apt's state kept there too (its own package lists and cache: the
    machine's are not changed) and unpacks it there. Returns nothing; writes out/postfix/unavailable.txt with the reason
    when it cannot (not Debian, no apt-get, the archive unreachable), and the Postfix tests say that reason when they skip.
    #>
    $root = Join-Path $script:Home 'root'
    $reason = Join-Path $script:Home 'unavailable.txt'
    $null = New-Item -ItemType Directory -Force $script:Home
    Remove-Item $reason -ErrorAction SilentlyContinue
    if (Test-Path (Join-Path $root 'usr/lib/postfix/sbin/master')) { return }
    try {
        if (-not (Get-Command apt-get -ErrorAction SilentlyContinue) -or -not (Get-Command dpkg-deb -ErrorAction SilentlyContinue)) {
            throw "this machine has no apt-get and dpkg-deb (Postfix is taken from Debian's packages)"
        }
        $apt = Join-Path $script:Home 'apt'
        foreach ($d in 'lists/partial', 'cache/archives/partial') { $null = New-Item -ItemType Directory -Force (Join-Path $apt $d) }
        $options = @('-o', "Dir::State::Lists=$apt/lists", '-o', "Dir::Cache=$apt/cache", '-o', 'Debug::NoLocking=1', '-qq')
        if ((& id -u) -eq '0') { $options += @('-o', 'APT::Sandbox::User=root') }
        $out = & apt-get @options update 2>&1
        if ($LASTEXITCODE -ne 0) { throw "apt-get update failed: $($out | Select-Object -Last 3)" }
        Push-Location $script:Home
        try {
            $out = & apt-get @options download "postfix=$script:Pinned" 2>&1
            if ($LASTEXITCODE -ne 0) { $out = & apt-get @options download postfix 2>&1 }
            if ($LASTEXITCODE -ne 0) { throw "apt-get download postfix failed: $($out | Select-Object -Last 3)" }
        } finally { Pop-Location }
        $deb = Get-ChildItem $script:Home -Filter 'postfix_*.deb' | Sort-Object LastWriteTime | Select-Object -Last 1
        & dpkg-deb -x $deb.FullName $root
        if ($LASTEXITCODE -ne 0) { throw "dpkg-deb could not unpack $($deb.Name)" }
        Write-Host "Postfix $($deb.Name -replace '^postfix_|_[^_]+\.deb$') unpacked in $root (not installed)."
    } catch {
        Set-Content -Path $reason -Value "$_"
        Write-Host "Postfix is not available for the tests: $_"
    }
}

function Get-PostfixUnavailable {
    <# Why Postfix cannot run here, or $null when it can: not unpacked, not root (its master starts as root), no accounts for it. #>
    $why = Join-Path $script:Home 'unavailable.txt'
    if (Test-Path $why) { return (Get-Content $why -Raw).Trim() }
    if (-not (Test-Path (Join-Path $script:Home 'root/usr/lib/postfix/sbin/master'))) { return 'Postfix is not unpacked in out/postfix (build.ps1 -Task Test does that)' }
    if ($IsWindows -or (& id -u) -ne '0') { return "Postfix's master process must start as root (it gives each daemon an unprivileged identity); these tests run as root, as CI does" }
    foreach ($name in 'nobody', 'daemon') { if (-not (& getent passwd $name)) { return "there is no '$name' account for Postfix's mail owner" } }
    if (-not (& getent group mail)) { return "there is no 'mail' group for Postfix's setgid group" }
    $null
}

function Invoke-Postfix([string]$Root, [string[]]$Arguments) {
    $env:LD_LIBRARY_PATH = Join-Path $Root 'usr/lib/postfix'
    try { & (Join-Path $Root 'usr/sbin/postfix') @Arguments 2>&1 } finally { $env:LD_LIBRARY_PATH = $null }
}

function Start-Postfix {
    <#
    A Postfix instance on a free loopback port that relays what it accepts to 127.0.0.1:RelayPort. -Settings are main.cf
    lines (name = value) on top of the base ones; Set-PostfixSettings changes them and reloads. Stop it with Stop-Postfix.
    #>
    param([Parameter(Mandatory)][int]$RelayPort, [hashtable]$Settings = @{})
    $why = Get-PostfixUnavailable
    if ($why) { throw "Postfix cannot run here: $why." }
    $root = Join-Path $script:Home 'root'
    $dir = Join-Path ([IO.Path]::GetTempPath()) "rm-postfix-$([guid]::NewGuid().ToString('n').Substring(0, 8))"
    foreach ($d in 'etc', 'queue', 'data', 'log') { $null = New-Item -ItemType Directory -Force (Join-Path $dir $d) }
    & chown nobody (Join-Path $dir 'data')
    $port = Get-FreeTcpPort
    $server = [pscustomobject]@{ Root = $root; Dir = $dir; Port = $port; RelayPort = $RelayPort; Log = Join-Path $dir 'log/postfix.log'; Settings = @{} }
    $server.Settings = @{
        compatibility_level = '3.6'; config_directory = "$dir/etc"; meta_directory = "$root/etc/postfix"
        command_directory = "$root/usr/sbin"; daemon_directory = "$root/usr/lib/postfix/sbin"; shlib_directory = "$root/usr/lib/postfix"
        queue_directory = "$dir/queue"; data_directory = "$dir/data"; mail_owner = 'nobody'; default_privs = 'daemon'; setgid_group = 'mail'
        myhostname = 'postfix.resilientmail.test'; mydestination = ''; inet_interfaces = '127.0.0.1'; inet_protocols = 'ipv4'
        mynetworks = '127.0.0.0/8'; smtpd_relay_restrictions = 'permit_mynetworks, reject'; relayhost = "[127.0.0.1]:$RelayPort"
        smtp_dns_support_level = 'disabled'; smtpd_peername_lookup = 'no'; smtp_tls_security_level = 'none'
        maillog_file = $server.Log; maillog_file_prefixes = $dir
        import_environment = 'MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH'
        alias_maps = ''; alias_database = ''; local_recipient_maps = ''; smtputf8_enable = 'yes'
        # Limits apply to this loopback client too (by default the client's own network is exempt).
        smtpd_client_event_limit_exceptions = ''
    }
    foreach ($k in $Settings.Keys) { $server.Settings[$k] = $Settings[$k] }
    Write-PostfixConfig $server
    $out = Invoke-Postfix $root @('-c', "$dir/etc", 'start')
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    while (-not (Test-TcpPort $port) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
    if (-not (Test-TcpPort $port)) { throw "Postfix did not start: $out $(Get-Content $server.Log -Raw -ErrorAction SilentlyContinue)" }
    $server
}

function Write-PostfixConfig($Server) {
    $main = foreach ($k in ($Server.Settings.Keys | Sort-Object)) { "$k = $($Server.Settings[$k])" }
    Set-Content -Path (Join-Path $Server.Dir 'etc/main.cf') -Value $main
    $master = @(
        "127.0.0.1:$($Server.Port) inet n - n - - smtpd"
        'pickup unix n - n 60 1 pickup', 'cleanup unix n - n - 0 cleanup', 'qmgr unix n - n 300 1 qmgr'
        'rewrite unix - - n - - trivial-rewrite', 'bounce unix - - n - 0 bounce', 'defer unix - - n - 0 bounce'
        'trace unix - - n - 0 bounce', 'verify unix - - n - 1 verify', 'flush unix n - n 1000? 0 flush'
        'proxymap unix - - n - - proxymap', 'smtp unix - - n - - smtp', 'relay unix - - n - - smtp', 'showq unix n - n - - showq'
        'error unix - - n - - error', 'retry unix - - n - - error', 'discard unix - - n - - discard'
        'anvil unix - - n - 1 anvil', 'scache unix - - n - 1 scache', 'postlog unix-dgram n - n - 1 postlogd'
    )
    Set-Content -Path (Join-Path $Server.Dir 'etc/master.cf') -Value $master
}

function Set-PostfixSettings {
    <# Changes main.cf settings (a value of $null removes one) and reloads: sessions from now on see them, as after an admin's change. #>
    param([Parameter(Mandatory)]$Server, [hashtable]$Settings = @{})
    foreach ($k in $Settings.Keys) { if ($null -eq $Settings[$k]) { $Server.Settings.Remove($k) } else { $Server.Settings[$k] = $Settings[$k] } }
    Write-PostfixConfig $Server
    $null = Invoke-Postfix $Server.Root @('-c', "$($Server.Dir)/etc", 'reload')
    Start-Sleep -Milliseconds 1500 # the master re-reads its configuration and restarts anvil; smtpd processes end after their session
}

function Get-PostfixLog {
    param([Parameter(Mandatory)]$Server, [string]$Match)
    $lines = @(Get-Content $Server.Log -ErrorAction SilentlyContinue)
    if ($Match) { $lines = @($lines | Where-Object { $_ -match $Match }) }
    $lines
}

function Stop-Postfix {
    param([Parameter(Mandatory)]$Server)
    $null = Invoke-Postfix $Server.Root @('-c', "$($Server.Dir)/etc", 'stop')
    $deadline = [DateTime]::UtcNow.AddSeconds(15)
    while ((Test-TcpPort $Server.Port 200) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
    if (Test-TcpPort $Server.Port 200) { $null = Invoke-Postfix $Server.Root @('-c', "$($Server.Dir)/etc", 'abort') }
}

Export-ModuleMember -Function Install-Postfix, Get-PostfixUnavailable, Start-Postfix, Set-PostfixSettings, Get-PostfixLog, Stop-Postfix
