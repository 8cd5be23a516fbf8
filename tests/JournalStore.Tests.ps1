# The journal in Azure Blob Storage (Azurite, Microsoft's emulator, on a loopback port): what only a store shared by
# machines must show. The campaign suite itself runs against both stores in Campaign.Tests.ps1.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Module (Join-Path $RepoRoot 'build/TestServers.psm1') -Force
    $script:azurite = Start-Azurite
    $script:secret = ConvertTo-SecureString $azurite.ConnectionString -AsPlainText -Force
    $env:RESILIENTMAIL_DATA = Join-Path $TestDrive 'data'
    $script:pwsh = Get-PwshArgs

    function New-Store { $azurite.Container("j-$([guid]::NewGuid().ToString('n').Substring(0, 8))") }
    # A case: its own container, outbox (pickup folder) and CSV of -Rows recipients named <Prefix><n>@example.com.
    function New-Case([string]$Name, [int]$Rows, [string]$Prefix) {
        $csv = Join-Path $TestDrive "$Name.csv"
        "Email,FirstName`n" + ((1..$Rows | ForEach-Object { "$Prefix$_@example.com,$($Prefix.ToUpper())$_" }) -join "`n") | Set-Content $csv
        [pscustomobject]@{ Store = New-Store; Outbox = Join-Path $TestDrive "$Name-out"; Csv = $csv }
    }
    function Get-Sent([string]$Folder) {
        @(Get-ChildItem $Folder -Filter *.eml -ErrorAction SilentlyContinue | ForEach-Object {
            (Select-String -Path $_.FullName -Pattern '^To: (.*)$').Matches[0].Groups[1].Value.Trim() })
    }
    # A run in its own process, on "its own machine": its own data folder and working folder; only the store is shared.
    function Start-Worker([string]$Name, [string]$Command, [hashtable]$Environment = @{}) {
        $home_ = Join-Path $TestDrive "machine-$Name"
        $null = New-Item -ItemType Directory -Force $home_
        $script = @"
`$env:RESILIENTMAIL_DATA = '$home_'
$(($Environment.GetEnumerator() | ForEach-Object { "`$env:$($_.Key) = '$($_.Value)'" }) -join "`n")
Set-Location '$home_'
Import-Module '$ModulePath'
`$journalStoreSecret = ConvertTo-SecureString '$($azurite.ConnectionString)' -AsPlainText -Force
$Command
"@
        Start-Process -FilePath $pwsh.File -ArgumentList ($pwsh.Pre + @('-NoProfile', '-NonInteractive', '-Command', $script)) -PassThru `
            -RedirectStandardOutput (Join-Path $home_ 'out.txt') -RedirectStandardError (Join-Path $home_ 'err.txt')
    }
    function Get-WorkerOutput([string]$Name) { Get-Content (Join-Path $TestDrive "machine-$Name/out.txt") -Raw -ErrorAction SilentlyContinue }
}

AfterAll {
    if ($azurite) { Stop-TestServer $azurite }
    Remove-Item Env:RESILIENTMAIL_DATA -ErrorAction SilentlyContinue
}

Describe 'A campaign journal in Azure Blob Storage' {
    It 'refuses a second run while the first holds the lease, naming its expiry; takes over a killed run''s lease once it expired' {
        $case = New-Case 'lease' 40 'l'
        $store = $case.Store; $outbox = $case.Outbox; $csv = $case.Csv
        $p = Start-Worker 'lease-a' @"
`$t = New-MailTransport -PickupDirectory '$outbox'
Start-MailCampaign -Name lease -Path '$csv' -Transport `$t -From a@example.com -Subject s -Body b -NoDelay -RateLimit '4/second' -JournalStore '$store' -JournalStoreSecret `$journalStoreSecret | Out-Null
"@ @{ RESILIENTMAIL_LEASE_SECONDS = '15' }
        try {
            $null = Wait-Until { (Get-Sent $outbox).Count -ge 3 } 60
            $t = New-MailTransport -PickupDirectory $outbox
            $err = $null
            try { Start-MailCampaign -Name lease -Resume -Transport $t -NoDelay -JournalStore $store -JournalStoreSecret $secret -ErrorAction Stop } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'JournalLocked,*'
            $err.Exception.Message | Should -Match 'in use by another run \(.+ pid \d+\)'
            $err.Exception.Message | Should -Match 'expires by \d\d:\d\d:\d\d UTC'
            $p.Kill(); $p.WaitForExit()   # kill -9: the lease is left behind, and nobody renews it
            $killedAt = [DateTime]::UtcNow
            { Start-MailCampaign -Name lease -Resume -Transport $t -NoDelay -JournalStore $store -JournalStoreSecret $secret -ErrorAction Stop } |
                Should -Throw -ErrorId 'JournalLocked,ResilientMail.Commands.StartMailCampaignCommand'
            # Once it expired (at most 15 s after its last renewal), the next run takes the journal over and finishes it.
            $null = Wait-Until { ([DateTime]::UtcNow - $killedAt).TotalSeconds -ge 16 } 30
            $info = Start-MailCampaign -Name lease -Resume -Transport $t -NoDelay -JournalStore $store -JournalStoreSecret $secret -WarningAction SilentlyContinue |
                Where-Object { $_ -is [ResilientMail.MailCampaignInfo] }
            $info.State | Should -Be 'Completed'
            ($info.Sent + $info.Uncertain) | Should -Be 40
            $info.Uncertain | Should -BeLessOrEqual 1   # one connection: at most the one message on its way
            $sent = Get-Sent $outbox
            $uncertain = @(Get-MailCampaign -Name lease -JournalStore $store -JournalStoreSecret $secret -Recipients -Status Uncertain).Key
            foreach ($n in 1..40) {
                $count = @($sent | Where-Object { $_ -eq "l$n@example.com" }).Count
                if ($uncertain -contains "l$n@example.com") { $count | Should -BeLessOrEqual 1 } else { $count | Should -Be 1 -Because "l$n@example.com" }
            }
        }
        finally { if (-not $p.HasExited) { $p.Kill() } }
    }

    It 'sends nothing while the store is down for 20 s, says it is waiting, and then delivers everyone once' {
        $case = New-Case 'outage' 60 'o'
        $store = $case.Store; $outbox = $case.Outbox; $csv = $case.Csv
        $p = Start-Worker 'outage' @"
`$t = New-MailTransport -PickupDirectory '$outbox'
Start-MailCampaign -Name outage -Path '$csv' -Transport `$t -From a@example.com -Subject s -Body b -NoDelay -RateLimit '5/second' -Concurrency 2 ``
    -ConnectionCheckInterval 2 -JournalStore '$store' -JournalStoreSecret `$journalStoreSecret *>&1 | ForEach-Object { "`$_" }
"@
        try {
            $null = Wait-Until { (Get-Sent $outbox).Count -ge 10 } 60
            Stop-Azurite $azurite
            $atStop = (Get-Sent $outbox).Count
            Start-Sleep -Seconds 20   # the outage itself: the store is gone for 20 s
            $during = (Get-Sent $outbox).Count
            # No send without a durable record: at most what had its record in the store before it went (one per connection).
            ($during - $atStop) | Should -BeLessOrEqual 2
            $script:azurite = Start-Azurite -Port $azurite.Port -Location $azurite.Location
            $p.WaitForExit(120000) | Should -BeTrue
            $out = Get-WorkerOutput 'outage'
            $out | Should -Match 'No connection to 127\.0\.0\.1:\d+ \(the journal store'
            $out | Should -Match 'is back after'
            $info = Get-MailCampaign -Name outage -JournalStore $store -JournalStoreSecret $secret
            $info.State | Should -Be 'Completed'
            $info.Sent | Should -Be 60
            $sent = Get-Sent $outbox
            $sent.Count | Should -Be 60
            @($sent | Sort-Object -Unique).Count | Should -Be 60
        }
        finally { if (-not $p.HasExited) { $p.Kill() } }
    }

    It 'splits one 1,000-row list between two workers (-Shard 1/2, 2/2): every recipient once; Get-MailCampaign shows it whole and per shard' {
        $case = New-Case 'shards' 1000 's'
        $store = $case.Store; $outbox = $case.Outbox; $csv = $case.Csv
        $workers = foreach ($k in 1, 2) {
            Start-Worker "shard$k" @"
`$t = New-MailTransport -PickupDirectory '$outbox'
Start-MailCampaign -Name launch -Path '$csv' -Transport `$t -From a@example.com -Subject 'Hi {{FirstName}}' -Body b -NoDelay -Concurrency 4 -Shard $k/2 -JournalStore '$store' -JournalStoreSecret `$journalStoreSecret | Out-Null
"@
        }
        foreach ($w in $workers) { $w.WaitForExit(180000) | Should -BeTrue; $w.ExitCode | Should -Be 0 }
        $sent = Get-Sent $outbox
        $sent.Count | Should -Be 1000
        @($sent | Sort-Object -Unique).Count | Should -Be 1000
        $info = Get-MailCampaign -Name launch -JournalStore $store -JournalStoreSecret $secret
        $info.State | Should -Be 'Completed'
        $info.Sent | Should -Be 1000
        $info.Shard | Should -Be '2 of 2 shards'
        $info.Shards.Shard | Should -Be @('1/2', '2/2')
        ($info.Shards | Measure-Object -Property Sent -Sum).Sum | Should -Be 1000
        foreach ($part in $info.Shards) { $part.Sent | Should -BeGreaterThan 400 }   # a stable hash splits about evenly
        # A worker with another split would send some recipients twice: refused before anything is sent.
        { Start-MailCampaign -Name launch -Path $csv -Transport (New-MailTransport -PickupDirectory $outbox) -From a@example.com -Subject s -Body b `
            -Shard 1/3 -JournalStore $store -JournalStoreSecret $secret -ErrorAction Stop } | Should -Throw -ExpectedMessage '*split into 2 shards*'
        (Get-Sent $outbox).Count | Should -Be 1000
    }

    It 'keeps the store''s key out of every stream, the log and the journal; a store that cannot be reached is a clear error' {
        $store = New-Store
        $outbox = Join-Path $TestDrive 'secret-out'
        $log = Join-Path $TestDrive 'secret.log'
        $t = New-MailTransport -PickupDirectory $outbox
        $all = 1..3 | ForEach-Object { [pscustomobject]@{ Email = "k$_@example.com" } } |
            Start-MailCampaign -Name keyed -Transport $t -From a@example.com -Subject s -Body b -NoDelay -JournalStore $store -JournalStoreSecret $secret `
                -LogPath $log -Verbose *>&1 | Out-String
        $info = Get-MailCampaign -Name keyed -JournalStore $store -JournalStoreSecret $secret
        $info.Sent | Should -Be 3
        $stored = (Get-ChildItem $azurite.Location -Recurse -File | ForEach-Object { [IO.File]::ReadAllText($_.FullName) }) -join "`n"
        $stored | Should -Match 'k3@example.com'   # the journal is in there, as written
        $key = $azurite.AccountKey.Substring(0, 24)
        foreach ($text in @($all, (Get-Content $log -Raw), ($info | Format-List * | Out-String), $stored)) { $text | Should -Not -Match ([regex]::Escape($key)) }

        $dead = "http://127.0.0.1:$(Get-FreeTcpPort)/devstoreaccount1/nowhere"
        $err = $null
        try { Get-MailCampaign -JournalStore $dead -JournalStoreSecret $secret -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'JournalStoreUnavailable,*'
        $err.Exception.Message | Should -Not -Match ([regex]::Escape($key))
        { Start-MailCampaign -Name x -JournalStore 'not a uri' -Transport $t -From a@example.com -Subject s -Body b -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidJournalStore,ResilientMail.Commands.StartMailCampaignCommand'
    }
}
