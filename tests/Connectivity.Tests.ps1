BeforeAll {
    . $PSScriptRoot/Common.ps1
    function New-ClosedPort {
        # Bound but not listening: connections are refused, and no other process can take the port meanwhile.
        $s = [System.Net.Sockets.Socket]::new([System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
        $s.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Loopback, 0))
        $s
    }
}

Describe 'Test-InternetConnection' {
    It 'says a closed loopback port is unreachable, within the timeout' {
        $closed = New-ClosedPort
        try {
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            $r = Test-InternetConnection -Target "127.0.0.1:$($closed.LocalEndPoint.Port)" -TimeoutSeconds 2
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 3
            $r.Reachable | Should -BeFalse
            $r.Error | Should -Not -BeNullOrEmpty
            $r.LatencyMs | Should -BeNullOrEmpty
            $r.Port | Should -Be $closed.LocalEndPoint.Port
            Test-InternetConnection -Target "127.0.0.1:$($closed.LocalEndPoint.Port)" -Quiet | Should -BeFalse
        }
        finally { $closed.Dispose() }
    }

    It 'says an open loopback port is reachable, with its latency' {
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $listener.Start()
        try {
            $r = Test-InternetConnection -Target "127.0.0.1:$($listener.LocalEndpoint.Port)"
            $r.Reachable | Should -BeTrue
            $r.LatencyMs | Should -BeGreaterOrEqual 0
            $r.Target | Should -Be "127.0.0.1:$($listener.LocalEndpoint.Port)"
            Test-InternetConnection -Target "127.0.0.1:$($listener.LocalEndpoint.Port)" -Quiet | Should -BeTrue
        }
        finally { $listener.Stop() }
    }

    It 'probes several targets, IPv6 loopback included, and -Quiet is true when any answers' {
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $listener.Start()
        $closed = New-ClosedPort
        try {
            $targets = "127.0.0.1:$($closed.LocalEndPoint.Port)", "127.0.0.1:$($listener.LocalEndpoint.Port)", "[::1]:$($closed.LocalEndPoint.Port)"
            $r = Test-InternetConnection -Target $targets -TimeoutSeconds 2
            $r.Count | Should -Be 3
            ($r | Where-Object Reachable).Target | Should -Be "127.0.0.1:$($listener.LocalEndpoint.Port)"
            Test-InternetConnection -Target $targets -TimeoutSeconds 2 -Quiet | Should -BeTrue
        }
        finally { $listener.Stop(); $closed.Dispose() }
    }

    It 'reports a malformed target as an InvalidTarget error' {
        $errs = $null
        Test-InternetConnection -Target 'no-port-here' -ErrorVariable errs -ErrorAction SilentlyContinue | Out-Null
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'InvalidTarget,*'
    }

    It 'defaults to the public DNS target its help documents (read from the metadata, never probed)' {
        # No address off this machine is written here: the expected default is the one the help page states.
        $cmd = Get-Command Test-InternetConnection
        $instance = [ResilientMail.Commands.TestInternetConnectionCommand]::new()
        $documented = (Get-Help Test-InternetConnection -Parameter Target).defaultValue
        $instance.Target | Should -Be @($documented)
        $instance.Target[0] | Should -Match '^\d+\.\d+\.\d+\.\d+:53$'
        $instance.Target[0] | Should -Not -Match '^127\.'
        $instance.TimeoutSeconds | Should -Be 5
        $cmd.Parameters['Quiet'].SwitchParameter | Should -BeTrue
    }
}

Describe 'Wait-InternetConnection' {
    It 'returns once the target starts answering' {
        $socket = New-ClosedPort
        $port = $socket.LocalEndPoint.Port
        try {
            $job = Start-ThreadJob -ArgumentList $socket { param($s) Start-Sleep -Seconds 2; $s.Listen(4) }
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            $warnings = $null
            $r = Wait-InternetConnection -Target "127.0.0.1:$port" -CheckInterval 1 -Timeout 30 -PassThru -WarningVariable warnings -WarningAction SilentlyContinue
            $clock.Elapsed.TotalSeconds | Should -BeGreaterThan 1.5
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 10
            $r.Reachable | Should -BeTrue
            @($warnings).Count | Should -Be 2   # one when the wait begins, one when it ends
            $job | Receive-Job -Wait -AutoRemoveJob
        }
        finally { $socket.Dispose() }
    }

    It 'returns at once and writes nothing when the target answers' {
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $listener.Start()
        try {
            Wait-InternetConnection -Target "127.0.0.1:$($listener.LocalEndpoint.Port)" -WarningVariable w | Should -BeNullOrEmpty
            $w | Should -BeNullOrEmpty
        }
        finally { $listener.Stop() }
    }

    It 'fails with ConnectionWaitTimedOut after the timeout' {
        $closed = New-ClosedPort
        try {
            $err = $null
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            try { Wait-InternetConnection -Target "127.0.0.1:$($closed.LocalEndPoint.Port)" -Timeout 3 -CheckInterval 1 -WarningAction SilentlyContinue } catch { $err = $_ }
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 8
            $err.FullyQualifiedErrorId | Should -Be 'ConnectionWaitTimedOut,ResilientMail.Commands.WaitInternetConnectionCommand'
            $err.Exception.Message | Should -Match "127\.0\.0\.1:$($closed.LocalEndPoint.Port)"
        }
        finally { $closed.Dispose() }
    }

    It 'takes plain numbers as seconds for -Timeout and -CheckInterval' {
        $closed = New-ClosedPort
        try {
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            { Wait-InternetConnection -Target "127.0.0.1:$($closed.LocalEndPoint.Port)" -Timeout 2 -CheckInterval 1 -WarningAction SilentlyContinue } | Should -Throw
            $clock.Elapsed.TotalSeconds | Should -BeGreaterThan 1.5
        }
        finally { $closed.Dispose() }
    }
}
