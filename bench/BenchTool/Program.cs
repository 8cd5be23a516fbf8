// Bench helpers. Not shipped and not tests.
//   sink  --port P --delay-ms D   a fast loopback SMTP sink (PIPELINING, 8BITMIME); holds each reply batch D ms
//                                  to simulate a round trip; XCOUNT answers "250 <accepted>", XRESET zeroes it
//   bare  --port P --count N [--warmup W]   the practical ceiling: a bare MailKit loop over one connection, no
//                                 resilience. Timed: connect, send N, QUIT (as Send-ResilientMail does); for the steady
//                                 state, untimed sessions of N first (at least W messages, until the JIT is quiet). Prints
//                                 seconds, count, CPU per message, warm-up sessions and methods compiled while timed;
//                                 BENCH_THREADS=1 adds each thread's CPU (Linux)
//   chart --in results.json --out chart.png
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

static string Arg(string[] a, string name, string fallback)
{
    int i = Array.IndexOf(a, name);
    return i >= 0 && i + 1 < a.Length ? a[i + 1] : fallback;
}

switch (args.FirstOrDefault())
{
    case "sink": await Sink.RunAsync(int.Parse(Arg(args, "--port", "0")), int.Parse(Arg(args, "--delay-ms", "0"))); break;
    case "bare": await Bare.RunAsync(int.Parse(Arg(args, "--port", "25")), int.Parse(Arg(args, "--count", "1000")), int.Parse(Arg(args, "--warmup", "0"))); break;
    case "chart": Chart.Render(Arg(args, "--in", "results.json"), Arg(args, "--out", "chart.png")); break;
    default: Console.Error.WriteLine("usage: sink|bare|chart"); return 2;
}
return 0;

static class Sink
{
    private static long _accepted;

    public static async Task RunAsync(int port, int delayMs)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start(512);
        Console.WriteLine($"READY {((IPEndPoint)listener.LocalEndpoint).Port}");
        Console.Out.Flush();
        _ = Task.Run(() => { Console.In.ReadToEnd(); Environment.Exit(0); }); // ends when the harness closes stdin
        while (true)
        {
            var client = await listener.AcceptTcpClientAsync();
            client.NoDelay = true;
            _ = Task.Run(() => Serve(client, delayMs));
        }
    }

    private static async Task Serve(TcpClient client, int delayMs)
    {
        using var _ = client;
        var stream = client.GetStream();
        var input = new byte[64 * 1024];
        var pending = new StringBuilder();
        var replies = new StringBuilder("220 sink ESMTP\r\n");
        bool inData = false;
        int lineStart = 0;
        var buffer = new List<byte>(64 * 1024);
        try
        {
            await Flush(stream, replies, 0);
            while (true)
            {
                int n = await stream.ReadAsync(input);
                if (n == 0) return;
                buffer.AddRange(input.AsSpan(0, n).ToArray());
                bool quit = false;
                // Handle every complete line that arrived; answer them together after the delay.
                while (true)
                {
                    int nl = buffer.IndexOf((byte)'\n', lineStart);
                    if (nl < 0) break;
                    var line = Encoding.ASCII.GetString(buffer.GetRange(lineStart, nl - lineStart).ToArray()).TrimEnd('\r');
                    lineStart = nl + 1;
                    if (inData)
                    {
                        if (line == ".") { inData = false; Interlocked.Increment(ref _accepted); replies.Append("250 2.0.0 OK queued\r\n"); }
                        continue;
                    }
                    var verb = line.Length >= 4 ? line[..4].ToUpperInvariant() : line.ToUpperInvariant();
                    switch (verb)
                    {
                        case "EHLO": replies.Append("250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n250 SMTPUTF8\r\n"); break;
                        case "HELO": replies.Append("250 sink\r\n"); break;
                        case "DATA": inData = true; replies.Append("354 go\r\n"); break;
                        case "QUIT": replies.Append("221 bye\r\n"); quit = true; break;
                        case "XCOU": replies.Append($"250 {Interlocked.Read(ref _accepted)}\r\n"); break;
                        case "XRES": Interlocked.Exchange(ref _accepted, 0); replies.Append("250 reset\r\n"); break;
                        default: replies.Append("250 OK\r\n"); break;
                    }
                }
                if (lineStart > 0) { buffer.RemoveRange(0, lineStart); lineStart = 0; }
                if (replies.Length > 0) await Flush(stream, replies, delayMs);
                if (quit) return;
            }
        }
        catch (IOException) { }
        catch (SocketException) { }
    }

    private static async Task Flush(NetworkStream stream, StringBuilder replies, int delayMs)
    {
        // A reply batch that only says "354 go" is part of the same round trip as DATA's content.
        if (delayMs > 0 && replies.ToString() != "354 go\r\n") await Task.Delay(delayMs);
        var bytes = Encoding.ASCII.GetBytes(replies.ToString());
        replies.Clear();
        await stream.WriteAsync(bytes);
    }
}

static class Bare
{
    public static async Task RunAsync(int port, int count, int warmup)
    {
        // Steady state by the rule Scenario.ps1 applies to the cmdlets: sessions of the timed size, at least `warmup`
        // messages, then on until two sessions in a row compile fewer than 25 methods each (at most 16 sessions).
        int warmRuns = 0;
        for (int sent = 0, quiet = 0; warmup > 0 && !(sent >= warmup && (quiet >= 2 || warmRuns >= 16));)
        {
            long jit0 = System.Runtime.JitInfo.GetCompiledMethodCount();
            await SessionAsync(port, count);
            warmRuns++; sent += count;
            quiet = System.Runtime.JitInfo.GetCompiledMethodCount() - jit0 < 25 ? quiet + 1 : 0;
        }
        long jitStart = System.Runtime.JitInfo.GetCompiledMethodCount();
        var jitTime = System.Runtime.JitInfo.GetCompilationTime();
        var me = Process.GetCurrentProcess();
        var cpu = me.TotalProcessorTime;
        var threads = ThreadTicks();
        var clock = Stopwatch.StartNew();
        // Timed as Send-ResilientMail is: connect, send them all over that one connection, say QUIT.
        await SessionAsync(port, count);
        var seconds = clock.Elapsed.TotalSeconds;
        var jitMethods = System.Runtime.JitInfo.GetCompiledMethodCount() - jitStart;
        var jitMs = Math.Round((System.Runtime.JitInfo.GetCompilationTime() - jitTime).TotalMilliseconds);
        me.Refresh();
        var cpuUsPerMessage = (me.TotalProcessorTime - cpu).TotalMilliseconds * 1000 / count;
        if (Environment.GetEnvironmentVariable("BENCH_THREADS") == "1")
            foreach (var (name, ticks) in ThreadTicks())
                if (ticks - threads.GetValueOrDefault(name) > 0) Console.Error.WriteLine($"{name,-30} {(ticks - threads.GetValueOrDefault(name)) * 10000.0 / count:0.0} us/msg");
        Console.WriteLine(JsonSerializer.Serialize(new { seconds, count, cpuUsPerMessage, warmRuns, jitMethods, jitMs }));
    }

    private static async Task SessionAsync(int port, int count)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync("127.0.0.1", port, SecureSocketOptions.None);
        for (int i = 0; i < count; i++) await client.SendAsync(Message(i));
        await client.DisconnectAsync(true);
    }

    // Per-thread CPU (Linux /proc, 10 ms ticks), for finding where a process spends its time.
    private static Dictionary<string, long> ThreadTicks()
    {
        var result = new Dictionary<string, long>();
        if (!Directory.Exists("/proc/self/task")) return result;
        foreach (var dir in Directory.GetDirectories("/proc/self/task"))
        {
            var stat = File.ReadAllText(Path.Combine(dir, "stat"));
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            result[$"{Path.GetFileName(dir)} {File.ReadAllText(Path.Combine(dir, "comm")).Trim()}"] = long.Parse(fields[11]) + long.Parse(fields[12]);
        }
        return result;
    }

    private static MimeMessage Message(int i)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("bench@example.com"));
        message.To.Add(MailboxAddress.Parse($"r{i}@example.com"));
        message.Subject = $"Bench {i}";
        message.Body = new TextPart("plain") { Text = "A benchmark message body.\r\nSecond line." };
        return message;
    }
}

static class Chart
{
    public static void Render(string input, string output)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(input));
        var rows = doc.RootElement.EnumerateArray()
            .Where(e => e.TryGetProperty("ratio", out var r) && r.ValueKind == JsonValueKind.Number)
            .Select(e => (Label: e.GetProperty("label").GetString()!, Ratio: e.GetProperty("ratio").GetDouble()))
            .ToList();
        var plot = new ScottPlot.Plot();
        var bars = plot.Add.Bars(rows.Select(r => r.Ratio).ToArray());
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, rows.Count).Select(i => (double)i).ToArray(), rows.Select(r => r.Label).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 35;
        plot.Axes.Bottom.TickLabelStyle.Alignment = ScottPlot.Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 170;
        plot.Title("Throughput relative to the bare MailKit loop (same run)");
        plot.Axes.Left.Label.Text = "ratio";
        plot.Axes.Margins(bottom: 0);
        plot.Axes.Right.MinimumSize = 60;
        plot.SavePng(output, 1300, 700);
    }
}
