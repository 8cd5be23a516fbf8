using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Threading;
using System.Threading.Tasks;
using System.Net.Sockets;
using System.Text;

namespace ResilientMail.TestServers;

public enum Phase { Greeting, Ehlo, Mail, Rcpt, DataStart, DataEnd, Quit, Auth }

/// <summary>What the server does at a step: the default reply, another reply, silence, or a reset connection.</summary>
public sealed record Reaction(string? Reply = null, bool Silent = false, bool Reset = false)
{
    public static readonly Reaction Default = new();
    public static Reaction Say(string reply) => new(reply);
    public static readonly Reaction Hang = new(Silent: true);
    public static readonly Reaction Drop = new(Reset: true);
}

/// <summary>One step of a conversation, as the script sees it.</summary>
public sealed record Step(Phase Phase, int Connection, int Message, string Argument);

/// <summary>
/// A tiny SMTP server on loopback whose replies are scripted per step, for fault tests:
/// 4xx then 250, 5xx, silence, and resets before or after the message's final dot. The xunit tests script it with a
/// function; the Pester tests start it as the "smtp" role with rules (see Program.cs) and read what it recorded.
/// </summary>
public sealed class ScriptedSmtpServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Func<Step, Reaction> _script;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = new();
    private int _connectionCount;
    private int _messageCount;
    private readonly object _lock = new();
    private Task _accepting = Task.CompletedTask;
    private readonly string? _auth;

    /// <param name="listen">False: the port is bound (so no one else takes it) but refuses connections until <see cref="Listen"/>.</param>
    /// <param name="auth">SASL mechanisms to offer in EHLO (e.g. "XOAUTH2 PLAIN"); AUTH is a scripted step (Phase.Auth, 235 by default).</param>
    public ScriptedSmtpServer(Func<Step, Reaction>? script = null, int resetAfterDataBytes = -1, bool listen = true, string? auth = null)
    {
        _auth = auth;
        _script = script ?? (_ => Reaction.Default);
        ResetAfterDataBytes = resetAfterDataBytes;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        if (listen) Listen();
    }

    public void Listen()
    {
        _listener.Listen(16);
        _accepting = AcceptLoop();
    }

    public int Port { get; }
    /// <summary>When >= 0, the first DATA on the first connection is cut after this many bytes of the message.</summary>
    public int ResetAfterDataBytes { get; }
    public int Connections => Volatile.Read(ref _connectionCount);
    /// <summary>Connections open right now (a script can refuse the ones over a limit, as a server's per-client limit does).</summary>
    public int Open => Volatile.Read(ref _open);
    /// <summary>The most connections that were open at once.</summary>
    public int MostOpen => Volatile.Read(ref _mostOpen);
    private int _open, _mostOpen;
    public List<string> Accepted { get; } = new();
    public List<string> Log { get; } = new();
    /// <summary>Every command line a client sent, as "connection:line" (AUTH lines without their secret).</summary>
    public List<string> Commands { get; } = new();
    /// <summary>Called with each command line and each accepted message, as they happen (the "smtp" role records them to a file).</summary>
    public Action<string, int, string>? OnRecord { get; set; }
    /// <summary>Judges an XOAUTH2 token ("valid:kind", "expired", "unknown"): anything but valid is refused as Exchange Online and Gmail do (334 JSON, then 535).</summary>
    public Func<string, Task<string>>? TokenCheck { get; set; }


    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = new TcpClient { Client = await _listener.AcceptAsync(_stop.Token) }; }
            catch (Exception) { return; }
            int n = Interlocked.Increment(ref _connectionCount);
            lock (_lock) _connections.Add(Task.Run(() => Serve(client, n)));
        }
    }

    private async Task Serve(TcpClient client, int connection)
    {
        using var _ = client;
        int open = Interlocked.Increment(ref _open);
        for (int m = Volatile.Read(ref _mostOpen); open > m && Interlocked.CompareExchange(ref _mostOpen, open, m) != m; m = Volatile.Read(ref _mostOpen)) { }
        try { await ServeOpen(client, connection); }
        finally { Interlocked.Decrement(ref _open); }
    }

    private async Task ServeOpen(TcpClient client, int connection)
    {
        var stream = client.GetStream();
        var reader = new StreamReader(stream, Encoding.Latin1);
        var token = _stop.Token;
        async Task Write(string s) { var b = Encoding.ASCII.GetBytes(s + "\r\n"); await stream.WriteAsync(b, token); }
        void ResetNow() { client.Client.LingerState = new LingerOption(true, 0); client.Client.Close(); }

        // Returns false when the conversation ends (silence or reset).
        async Task<bool> React(Step step, string defaultReply)
        {
            var r = _script(step);
            lock (Log) Log.Add($"{step.Connection}:{step.Phase}:{r.Reply ?? (r.Silent ? "(silent)" : r.Reset ? "(reset)" : defaultReply)}");
            if (r.Reset) { ResetNow(); return false; }
            if (r.Silent) { try { await Task.Delay(Timeout.Infinite, token); } catch (OperationCanceledException) { } return false; }
            var reply = r.Reply ?? defaultReply;
            await Write(reply);
            return !reply.StartsWith("421", StringComparison.Ordinal);
        }

        try
        {
            int message = Volatile.Read(ref _messageCount) + 1;
            if (!await React(new Step(Phase.Greeting, connection, message, ""), "220 scripted ESMTP ready")) return;
            while (!token.IsCancellationRequested)
            {
                var line = await reader.ReadLineAsync(token);
                if (line == null) return;
                var verb = line.Length >= 4 ? line[..4].ToUpperInvariant() : line.ToUpperInvariant();
                var said = verb == "AUTH" ? string.Join(' ', line.Split(' ').Take(2)) : line;
                lock (Commands) Commands.Add($"{connection}:{said}");
                OnRecord?.Invoke("command", connection, said);
                message = Volatile.Read(ref _messageCount) + 1;
                switch (verb)
                {
                    case "EHLO":
                    case "HELO":
                        if (!await React(new Step(Phase.Ehlo, connection, message, line), _auth == null ? "250 scripted" : "250-scripted\r\n250 AUTH " + _auth)) return;
                        break;
                    case "AUTH" when TokenCheck != null && line.StartsWith("AUTH XOAUTH2 ", StringComparison.OrdinalIgnoreCase):
                        var sasl = Encoding.UTF8.GetString(Convert.FromBase64String(line.Substring(13).Trim())).Split('\x01');
                        var saslUser = sasl.FirstOrDefault(p => p.StartsWith("user="))?.Substring(5) ?? "";
                        var bearer = sasl.FirstOrDefault(p => p.StartsWith("auth=Bearer "))?.Substring(12) ?? "";
                        var verdict = await TokenCheck(bearer);
                        lock (Commands) Commands.Add($"{connection}:XOAUTH2 {saslUser} {verdict}");
                        OnRecord?.Invoke("oauth", connection, $"{saslUser} {verdict}");
                        if (verdict.StartsWith("valid")) { await Write("235 2.7.0 Authentication successful"); break; }
                        await Write("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==");
                        await reader.ReadLineAsync(token);
                        await Write("535 5.7.3 Authentication unsuccessful [token " + verdict + "]");
                        break;
                    case "AUTH":
                        if (!await React(new Step(Phase.Auth, connection, message, line), "235 2.7.0 Authentication successful")) return;
                        break;
                    case "MAIL":
                        if (!await React(new Step(Phase.Mail, connection, message, line), "250 2.1.0 OK")) return;
                        break;
                    case "RCPT":
                        if (!await React(new Step(Phase.Rcpt, connection, message, line), "250 2.1.5 OK")) return;
                        break;
                    case "DATA":
                        if (!await React(new Step(Phase.DataStart, connection, message, line), "354 Go ahead")) return;
                        var body = new StringBuilder();
                        int bytes = 0;
                        while (true)
                        {
                            var dataLine = await reader.ReadLineAsync(token);
                            if (dataLine == null) return;
                            if (dataLine == ".") break;
                            body.Append(dataLine).Append("\r\n");
                            bytes += dataLine.Length + 2;
                            if (ResetAfterDataBytes >= 0 && connection == 1 && bytes >= ResetAfterDataBytes) { ResetNow(); return; }
                        }
                        var step = new Step(Phase.DataEnd, connection, message, body.ToString());
                        var reaction = _script(step);
                        bool accepted = reaction.Reply == null && !reaction.Silent && !reaction.Reset || reaction.Reply?.StartsWith("250") == true;
                        if (accepted || reaction.Silent || reaction.Reset)
                        {
                            // Silent or reset after the dot: the server has the message, the client does not know it.
                            lock (Accepted) Accepted.Add(body.ToString());
                            OnRecord?.Invoke("message", connection, body.ToString());
                            Interlocked.Increment(ref _messageCount);
                        }
                        lock (Log) Log.Add($"{connection}:DataEnd:{reaction.Reply ?? (reaction.Silent ? "(silent)" : reaction.Reset ? "(reset)" : "250")}");
                        if (reaction.Reset) { ResetNow(); return; }
                        if (reaction.Silent) { try { await Task.Delay(Timeout.Infinite, token); } catch (OperationCanceledException) { } return; }
                        var reply = reaction.Reply ?? "250 2.0.0 Queued as " + message;
                        await Write(reply);
                        if (reply.StartsWith("421", StringComparison.Ordinal)) return;
                        break;
                    case "RSET":
                    case "NOOP":
                        await Write("250 OK");
                        break;
                    case "QUIT":
                        lock (Log) Log.Add($"{connection}:Quit");
                        await Write("221 Bye");
                        return;
                    default:
                        await Write("502 Command not implemented");
                        break;
                }
            }
        }
        catch (Exception) when (token.IsCancellationRequested) { }
        catch (IOException) { }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        try { await _accepting; } catch { }
        Task[] open;
        lock (_lock) open = _connections.ToArray();
        try { await Task.WhenAll(open).WaitAsync(TimeSpan.FromSeconds(5)); } catch { }
    }
}
