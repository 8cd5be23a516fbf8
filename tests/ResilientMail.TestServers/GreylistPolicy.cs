using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace ResilientMail.TestServers;

/// <summary>
/// A greylisting policy service for Postfix (its policy delegation protocol: name=value lines, an empty line, one
/// "action=..." answer), as postgrey is: a (client address, sender, recipient) triplet seen for the first time is deferred,
/// and taken once <c>delay</c> has passed since then. The answer says how long ("Greylisted for 60 seconds"), as many
/// greylisting services do. Loopback only.
/// </summary>
public static class GreylistPolicy
{
    public static async Task<int> RunAsync(string[] args)
    {
        static string? Arg(string[] a, string name) { int i = Array.IndexOf(a, name); return i >= 0 && i + 1 < a.Length ? a[i + 1] : null; }
        int port = int.TryParse(Arg(args, "--port"), out var p) ? p : 0;
        var delay = TimeSpan.FromSeconds(int.TryParse(Arg(args, "--delay"), out var d) ? d : 60);
        var firstSeen = new Dictionary<string, DateTime>();
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        Console.WriteLine($"listening {((IPEndPoint)listener.LocalEndpoint).Port}");
        Console.Out.Flush();
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var client = await listener.AcceptTcpClientAsync(stop.Token);
                _ = Task.Run(() => ServeAsync(client, delay, firstSeen, stop.Token));
            }
        }
        catch (OperationCanceledException) { }
        return 0;
    }

    private static async Task ServeAsync(TcpClient client, TimeSpan delay, Dictionary<string, DateTime> firstSeen, CancellationToken cancellationToken)
    {
        using var _ = client;
        var stream = client.GetStream();
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            // Postfix keeps the connection and sends one request after another.
            while (await reader.ReadLineAsync(cancellationToken) is string line)
            {
                if (line.Length > 0)
                {
                    int eq = line.IndexOf('=');
                    if (eq > 0) attributes[line[..eq]] = line[(eq + 1)..];
                    continue;
                }
                string answer = "DUNNO";
                if (attributes.TryGetValue("protocol_state", out var state) && state == "RCPT")
                {
                    var triplet = $"{attributes.GetValueOrDefault("client_address")}/{attributes.GetValueOrDefault("sender")}/{attributes.GetValueOrDefault("recipient")}".ToLowerInvariant();
                    var now = DateTime.UtcNow;
                    DateTime first;
                    lock (firstSeen) { if (!firstSeen.TryGetValue(triplet, out first)) firstSeen[triplet] = first = now; }
                    if (now - first < delay) answer = $"DEFER_IF_PERMIT Greylisted for {delay.TotalSeconds:0} seconds";
                }
                var bytes = Encoding.ASCII.GetBytes($"action={answer}\n\n");
                await stream.WriteAsync(bytes, cancellationToken);
                attributes.Clear();
            }
        }
        catch (Exception) { /* Postfix closed the connection */ }
    }
}
