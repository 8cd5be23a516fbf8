using Microsoft.Extensions.Time.Testing;
using MimeKit;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Tests.Support;

/// <summary>A Random that returns a fixed sequence, so jittered delays are exact in tests.</summary>
public sealed class FixedRandom : Random
{
    private readonly double[] _values;
    private int _i;
    public FixedRandom(params double[] values) => _values = values.Length > 0 ? values : new[] { 0.5 };
    public override double NextDouble() => _values[_i++ % _values.Length];
    protected override double Sample() => NextDouble();
}

/// <summary>A transport that completes synchronously with scripted outcomes, and notes when each attempt happened.</summary>
public sealed class ScriptedTransport : IMailTransport
{
    private readonly TimeProvider _time;
    private readonly Func<int, Exception?> _outcome;

    public ScriptedTransport(TimeProvider time, Func<int, Exception?> outcome)
    {
        _time = time;
        _outcome = outcome;
    }

    public List<DateTimeOffset> AttemptTimes { get; } = new();
    public int Closed { get; private set; }
    public string Description => "scripted";
    public Endpoint Endpoint { get; } = new("127.0.0.1", 2525);
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    public Task<Receipt> SendAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
    {
        AttemptTimes.Add(_time.GetUtcNow());
        var error = _outcome(AttemptTimes.Count);
        if (error != null) return Task.FromException<Receipt>(error);
        return Task.FromResult(new Receipt(message.MessageId ?? "", "250 OK"));
    }

    public Task CloseAsync(CancellationToken cancellationToken) { Closed++; return Task.CompletedTask; }
    public void Dispose() { }

    public static MailDeliveryException Transient(string why = "451 try later") =>
        new(new Failure(FailureKind.Transient, FailureReason.ServerBusy, why) { ServerReply = why });

    public static MailDeliveryException Network() =>
        new(new Failure(FailureKind.Transient, FailureReason.Network, "connection refused"));

    public static MailDeliveryException Permanent(string why = "550 no such user") =>
        new(new Failure(FailureKind.Permanent, FailureReason.RecipientRejected, why) { ServerReply = why });
}

/// <summary>A probe whose answer depends on the fake clock.</summary>
public sealed class ClockProbe : IConnectivityProbe
{
    private readonly Func<TimeSpan, bool> _reachableAt;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _start;

    public ClockProbe(TimeProvider time, Func<TimeSpan, bool> reachableAt)
    {
        _time = time;
        _start = time.GetUtcNow();
        _reachableAt = reachableAt;
    }

    public int Calls { get; private set; }

    public Task<ProbeResult> ProbeAsync(Endpoint target, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Calls++;
        bool up = _reachableAt(_time.GetUtcNow() - _start);
        return Task.FromResult(new ProbeResult(target, up, TimeSpan.FromMilliseconds(1), up ? null : "Connection refused"));
    }
}

/// <summary>A bounded wait for something a test can observe (never a bare sleep): true once it holds, false at the limit.</summary>
public static class Eventually
{
    public static async Task<bool> Until(Func<bool> condition, TimeSpan? limit = null)
    {
        var end = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow > end) return false;
            await Task.Delay(10);
        }
        return true;
    }
}

public static class Clock
{
    /// <summary>Advances fake time in small steps until the task ends (nothing really sleeps).</summary>
    public static async Task<T> Drive<T>(FakeTimeProvider time, Task<T> task, TimeSpan limit, TimeSpan? step = null)
    {
        var s = step ?? TimeSpan.FromMilliseconds(10);
        var end = time.GetUtcNow() + limit;
        while (!task.IsCompleted && time.GetUtcNow() < end)
        {
            time.Advance(s);
            if (!task.IsCompleted) await Task.Yield();
        }
        if (!task.IsCompleted) throw new TimeoutException($"Still running after {limit} of fake time.");
        return await task;
    }

    /// <summary>
    /// Runs campaign workers on the fake clock: a fake second at a time, each followed by a millisecond of real time. The
    /// workers do real I/O between their timers (the journal forces intents to disk), which no fake clock can see, so
    /// the clock must not run ahead of them; no assertion depends on the real time this takes (bounded at a minute).
    /// </summary>
    public static async Task<T> RunWorkers<T>(FakeTimeProvider time, Task<T> task)
    {
        var giveUp = DateTime.UtcNow.AddSeconds(60);
        while (!task.IsCompleted && DateTime.UtcNow < giveUp) { time.Advance(TimeSpan.FromSeconds(1)); await Task.Delay(1); }
        return await task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    public static Task Drive(FakeTimeProvider time, Task task, TimeSpan limit, TimeSpan? step = null) =>
        Drive(time, task.ContinueWith(t => { t.GetAwaiter().GetResult(); return true; }, TaskContinuationOptions.ExecuteSynchronously), limit, step);

    public static MimeMessage Message(string to = "someone@example.com") => new MimeMessage(
        new[] { MailboxAddress.Parse("sender@example.com") }, new[] { MailboxAddress.Parse(to) }, "Hello", new TextPart("plain") { Text = "Body" });
}

/// <summary>A loopback port that refuses connections (bound, never listening) until <see cref="Free"/> lets a server take it.</summary>
public sealed class RefusingPort : IDisposable
{
    private readonly System.Net.Sockets.Socket _socket = new(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);

    public RefusingPort()
    {
        _socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        Port = ((System.Net.IPEndPoint)_socket.LocalEndPoint!).Port;
    }

    public int Port { get; }

    public void Free() => _socket.Dispose();

    public void Dispose() => _socket.Dispose();
}
