using System;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.TestServers;

// ResilientMail.TestServers sendgrid [--port N] [--api-key KEY]
// ResilientMail.TestServers proxy --upstream http://127.0.0.1:PORT [--port N]
// ResilientMail.TestServers smtp --record FILE [--ehlo "8BITMIME SMTPUTF8"] [--auth "PLAIN LOGIN"] [--rule "Phase|match|reply|times"]...
//   A scripted SMTP server (as in the xunit tests) for the Pester tests: each rule answers the first `times` commands of
//   that phase (Greeting, Ehlo, Auth, Mail, Rcpt, DataStart, DataEnd; times 0 = always) whose line contains `match`;
//   a reply of "(reset)" drops the connection, "(silent)" never answers.
//   Every command line (AUTH without its secret) and every accepted message go to FILE as JSON lines.
// Prints "listening <base uri>" once ready; stops on Ctrl+C or SIGTERM.
static string? Arg(string[] args, string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

if (args.Length == 0 || (args[0] != "sendgrid" && args[0] != "proxy" && args[0] != "smtp"))
{
    Console.Error.WriteLine("usage: ResilientMail.TestServers sendgrid|proxy|smtp [--port N] [--api-key KEY] [--upstream URI] [--record FILE] [--ehlo EXT] [--auth MECHS] [--rule R]...");
    return 2;
}
if (args[0] == "smtp") return await SmtpRole.RunAsync(args);
var role = args[0] == "proxy" ? Role.Proxy : Role.SendGrid;
int port = int.TryParse(Arg(args, "--port"), out var p) ? p : 0;
var upstream = Arg(args, "--upstream") is string u ? new Uri(u) : null;
if (role == Role.Proxy && upstream == null) { Console.Error.WriteLine("proxy needs --upstream"); return 2; }
if (upstream != null && !upstream.IsLoopback) { Console.Error.WriteLine("the upstream must be a loopback address"); return 2; }

await using var server = await FakeHttpServer.StartAsync(role, port, Arg(args, "--api-key"), upstream);
Console.WriteLine($"listening {server.BaseUri}");
Console.Out.Flush();
var stop = new TaskCompletionSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
await stop.Task;
return 0;
